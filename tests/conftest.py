"""Real models shared by the tests: built once per session, kept tiny.

Each factory returns ``(keras_model, calibration)``; `converted` caches the
full-integer TFLite bytes of each model.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def _cnn():
    import keras

    return keras.Sequential([
        keras.Input((12, 12, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv_a"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(12, 3, activation="relu", name="conv_b"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ], name="cnn"), (12, 12, 1)


def _residual():
    import keras

    x_in = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(x_in)
    y = keras.layers.Conv2D(8, 3, padding="same", name="branch")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(x_in, out, name="residual"), (10, 10, 3)


def _dwsep():
    import keras

    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu6"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6"),
        keras.layers.Conv2D(16, 1, activation="relu6"),
        keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu"),
        keras.layers.AveragePooling2D(2),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="softmax"),
    ], name="dwsep"), (16, 16, 3)


def _mlp():
    import keras

    return keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(3, activation="softmax"),
    ], name="mlp"), (20,)


def _conv1d():
    import keras

    return keras.Sequential([
        keras.Input((50, 6)),
        keras.layers.Conv1D(8, 5, activation="relu"),
        keras.layers.MaxPooling1D(2),
        keras.layers.Conv1D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(4, activation="softmax"),
    ], name="conv1d"), (50, 6)


FACTORIES = {"cnn": _cnn, "residual": _residual, "dwsep": _dwsep, "mlp": _mlp, "conv1d": _conv1d}


def calibration_for(shape, n: int = 100, seed: int = 0) -> np.ndarray:
    """Seeded float samples in [0, 1) shaped for a model input."""
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


@pytest.fixture(scope="session")
def keras_models():
    """name -> (model, calibration samples); weights seeded."""
    import keras

    cache = {}

    def get(name: str):
        if name not in cache:
            keras.utils.set_random_seed(0)
            model, shape = FACTORIES[name]()
            cache[name] = (model, calibration_for(shape))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def converted(keras_models):
    """name -> full-integer int8 TFLite bytes of that model."""
    from tinycompress import convert

    cache = {}

    def get(name: str) -> bytes:
        if name not in cache:
            model, x = keras_models(name)
            cache[name] = convert(model, x)
        return cache[name]

    return get
