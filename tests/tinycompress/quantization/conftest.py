"""Small learnable data and topologies shared by the quantization tests."""

from __future__ import annotations

import numpy as np
import pytest


def blobs(shape: tuple[int, ...], n_classes: int, n: int, seed: int = 0):
    """Seeded samples whose class is a fixed random pattern plus noise."""
    rng = np.random.default_rng(seed)
    patterns = np.random.default_rng(123).normal(size=(n_classes, *shape)).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    x = patterns[y] + 0.5 * rng.normal(size=(n, *shape)).astype(np.float32)
    return x.astype(np.float32), y


def _cnn():
    import keras

    L = keras.layers
    x_in = keras.Input((12, 12, 2))
    x = L.ZeroPadding2D(1)(x_in)
    x = L.Conv2D(6, 3, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.1)(x)
    x = L.Dense(4)(x)
    return keras.Model(x_in, L.Softmax()(x), name="cnn")


def _residual():
    import keras

    L = keras.layers
    x_in = keras.Input((10, 10, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu")(x_in)
    b = L.Conv2D(4, 3, padding="same")(a)
    b = L.ReLU()(L.Add()([a, b]))
    c = L.Conv2D(3, 1)(b)
    d = L.Conv2D(5, 1, activation="relu")(b)
    x = L.GlobalAveragePooling2D()(L.Concatenate()([c, d]))
    return keras.Model(x_in, L.Dense(4, activation="softmax")(x), name="residual")


def _conv1d():
    import keras

    L = keras.layers
    x_in = keras.Input((20, 3))
    x = L.Conv1D(6, 3, padding="causal", activation="relu")(x_in)
    x = L.Conv1D(6, 3, strides=2)(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.MaxPooling1D(2)(x)
    x = L.Reshape((-1,))(x)
    x = L.Dense(8, activation="relu")(x)
    return keras.Model(x_in, L.Dense(4)(x), name="conv1d")


TOPOLOGIES = {"cnn": _cnn, "residual": _residual, "conv1d": _conv1d}


@pytest.fixture(scope="session")
def trained_float():
    """name -> (float model trained a few epochs on `blobs`, (x, y) test data)."""
    import keras

    cache = {}

    def get(name: str):
        if name not in cache:
            keras.utils.set_random_seed(0)
            model = TOPOLOGIES[name]()
            shape = tuple(model.input_shape[1:])
            x, y = blobs(shape, 4, 600, seed=1)
            logits = name == "conv1d"
            model.compile(
                optimizer=keras.optimizers.Adam(3e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=logits),
            )
            model.fit(x, y, epochs=4, batch_size=32, verbose=0)
            cache[name] = (model, blobs(shape, 4, 300, seed=2))
        return cache[name]

    return get
