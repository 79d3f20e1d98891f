"""Small learnable data and model topologies for the quantization tests."""

from __future__ import annotations

import numpy as np


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
    x = L.Conv2D(6, 3, use_bias=False, name="conv")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dropout(0.1)(x)
    x = L.Dense(4, name="head")(x)
    return keras.Model(x_in, L.Softmax()(x), name="cnn")


def _residual():
    import keras

    L = keras.layers
    x_in = keras.Input((10, 10, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(x_in)
    b = L.Conv2D(4, 3, padding="same", name="branch")(a)
    b = L.ReLU(name="relu")(L.Add(name="add")([a, b]))
    c = L.Conv2D(3, 1, name="left")(b)
    d = L.Conv2D(5, 1, activation="relu", name="right")(b)
    x = L.GlobalAveragePooling2D(name="gap")(L.Concatenate(name="concat")([c, d]))
    return keras.Model(x_in, L.Dense(4, activation="softmax", name="head")(x), name="residual")


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


def _gates():
    import keras

    L = keras.layers
    x_in = keras.Input((16,))
    x = L.Dense(12, activation="tanh", name="tanh_dense")(x_in)
    x = L.Dense(10, name="pre_sigmoid")(x)
    x = L.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model(x_in, L.Dense(4, activation="softmax", name="head")(x), name="gates")


TOPOLOGIES = {"cnn": _cnn, "residual": _residual, "conv1d": _conv1d, "gates": _gates}
