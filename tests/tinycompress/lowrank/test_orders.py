"""Low-rank with the other techniques: low-rank then QAT export; structured pruning then low-rank."""

import keras
import numpy as np
import pytest

import tflite_export
import tinycompress
from tinycompress.core import prepare_for_export, toolkit_layers
from tinycompress.lowrank import LowRankConfig, factorize
from tinycompress.pruning import ConstantSparsity, PruningCallback, shrink, strip_pruning
from tinycompress.quantization import QATConfig, quantize_model

L = keras.layers
XENT = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _data(n=128):
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 1)).astype("float32")
    return x, (x[:, :4].mean((1, 2, 3)) > x[:, 4:].mean((1, 2, 3))).astype("int32")


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, activation="relu", name="conv"),
        L.Flatten(name="flat"),
        L.Dense(48, activation="relu", name="fc1"),
        L.Dense(2, name="fc2"),
    ])


@pytest.mark.slow
def test_lowrank_then_qat_exports_plain_fully_connected_ops():
    x, y = _data()
    small, report = factorize(_model(), LowRankConfig(ranks={"fc1": 4}))
    assert [r.name for r in report.factored] == ["fc1"]
    qat = quantize_model(small, QATConfig())
    qat.compile(optimizer="adam", loss=XENT)
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    ready = prepare_for_export(qat)
    tfl = tinycompress.convert(ready, x)
    counts = tflite_export.inspect(tfl, measure=False).op_counts
    assert counts["FULLY_CONNECTED"] == 3  # fc1_lr1, fc1_lr2, fc2
    assert counts["CONV_2D"] == 1
    out = tflite_export.run_tflm(tfl, tflite_export.quantize(x[:16], tfl))
    assert out.shape == (16, 2)


@pytest.mark.slow
def test_structured_pruning_then_lowrank_factors_the_shrunk_layers():
    x, y = _data()
    model = _model()
    model.compile(optimizer="adam", loss=XENT)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[
        PruningCallback(ConstantSparsity(0.5, frequency=1), layers=["conv", "fc1"],
                        granularity="channel", log_summary=False)])
    shrunk = shrink(strip_pruning(model))
    assert shrunk.get_layer("fc1").units == 24
    m = shrunk.get_layer("fc1").kernel.shape[0]
    # Full rank of the shrunk fc1 does not save: kept; a smaller rank saves and stays faithful
    # to the best rank-r approximation of the shrunk kernel.
    _, report = factorize(shrunk, LowRankConfig(ranks={"fc1": 24}))
    assert report.factored == ()
    small, report = factorize(shrunk, LowRankConfig(ranks={"fc1": 6}))
    assert report.factored[0].params_after == 6 * (m + 24)
    assert toolkit_layers(small) == []
    small.compile(optimizer="adam", loss=XENT)
    small.fit(x, y, epochs=1, batch_size=32, verbose=0)
    tfl = tinycompress.convert(small, x)
    assert tflite_export.inspect(tfl, measure=False).params < tflite_export.inspect(
        tinycompress.convert(shrunk, x), measure=False).params


@pytest.mark.slow
def test_factored_model_fine_tunes_by_distillation_from_the_unfactored_one():
    from tinycompress.distillation import distill

    x, y = _data()
    teacher = _model()
    teacher.compile(optimizer="adam", loss=XENT)
    teacher.fit(x, y, epochs=2, batch_size=32, verbose=0)
    student, _ = factorize(teacher, LowRankConfig(ranks={"fc1": 2}))
    before = [w.copy() for w in teacher.get_weights()]
    history = distill(teacher, student, x, y, epochs=1)
    assert np.isfinite(history.history["distillation_loss"][0])
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), before))
    assert not np.array_equal(student.get_layer("fc1_lr1").kernel, factorize(
        teacher, LowRankConfig(ranks={"fc1": 2}))[0].get_layer("fc1_lr1").kernel)
