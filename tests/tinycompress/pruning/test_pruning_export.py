"""What the device pays: int8 export of a shrunk model vs the masked model."""

import keras
import numpy as np
import pytest

import tflite_export
import tinycompress
from tinycompress.pruning import ConstantSparsity, PruningCallback, shrink, strip_pruning

L = keras.layers


def _trained(granularity):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12, 12, 1)),
        L.Conv2D(8, 3, activation="relu", name="c1"),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, activation="relu", name="c2"),
        L.Flatten(),
        L.Dense(24, activation="relu", name="fc"),
        L.Dense(4, name="head"),
    ])
    rng = np.random.default_rng(0)
    x = rng.random((128, 12, 12, 1)).astype("float32")
    y = rng.integers(0, 4, 128)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[
        PruningCallback(ConstantSparsity(0.5, frequency=2), granularity=granularity)])
    return strip_pruning(model), x


@pytest.mark.slow
def test_shrunk_export_has_fewer_params_macs_flash_and_no_larger_arena():
    masked, x = _trained("channel")
    small = shrink(masked)
    big_bytes = tinycompress.convert(masked, x)
    small_bytes = tinycompress.convert(small, x)
    big, little = tflite_export.inspect(big_bytes), tflite_export.inspect(small_bytes)
    assert little.params < big.params
    assert little.macs < 0.5 * big.macs
    assert little.flash_bytes < big.flash_bytes
    assert little.arena_bytes <= big.arena_bytes
    # The int8 models agree too (same float function, separately calibrated).
    y_big = tflite_export.dequantize(tflite_export.run_tflm(big_bytes, tflite_export.quantize(x, big_bytes)), big_bytes)
    y_small = tflite_export.dequantize(
        tflite_export.run_tflm(small_bytes, tflite_export.quantize(x, small_bytes)), small_bytes)
    assert np.mean(np.argmax(y_big, -1) == np.argmax(y_small, -1)) >= 0.9


@pytest.mark.slow
def test_unstructured_sparsity_is_visible_in_inspect():
    pruned, x = _trained("weight")
    report = tflite_export.inspect(tinycompress.convert(pruned, x), measure=False)
    assert report.weight_sparsity >= 0.45
