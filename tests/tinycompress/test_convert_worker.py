"""The converter runs in a child process: its crashes are errors, not our end."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompress import ConversionError, convert
from tinycompress._convert_worker import run_converter
from tinycompress.data import prepare_samples

OPTIONS = {"mode": "int8", "io_dtype": "int8", "per_channel_dense": False}


def _lstm_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((10, 3)), keras.layers.LSTM(8, name="lstm"), keras.layers.Dense(3)]
    )


@pytest.mark.slow
def test_keras3_lstm_that_crashes_the_converter_is_an_error_and_convert_exports_it():
    import tensorflow as tf

    model = _lstm_model()
    x = np.random.default_rng(0).normal(size=(100, 10, 3)).astype("float32")
    samples = prepare_samples(x, [(None, 10, 3)])
    # The Keras 3 layer as it is (not rewritten by tinycompress.recurrent):
    # the converter's calibrator dies of a segmentation fault on it.
    spec = tf.TensorSpec((1, 10, 3), tf.float32, name="input_000")
    raw = tf.function(lambda a: model(a)).get_concrete_function(spec)
    with pytest.raises(ConversionError, match=r"(?s)('lstm' \(LSTM\).*signal 11|signal 11.*'lstm' \(LSTM\))"):
        run_converter(raw, samples, OPTIONS, suspects=["'lstm' (LSTM)"])
    # This process is alive, and the next conversion starts a new child.
    tflite = convert(model, x)
    assert tflite[4:8] == b"TFL3"


@pytest.mark.slow
def test_a_conversion_past_the_timeout_is_killed():
    import tensorflow as tf

    spec = tf.TensorSpec((1, 4), tf.float32, name="input_000")
    concrete = tf.function(lambda a: a * 2.0).get_concrete_function(spec)
    samples = prepare_samples(np.ones((4, 4), "float32"), [(None, 4)])
    with pytest.raises(ConversionError, match="did not finish within 0 s"):
        run_converter(concrete, samples, OPTIONS, timeout_s=0.01)
    assert run_converter(concrete, samples, OPTIONS)[4:8] == b"TFL3"
