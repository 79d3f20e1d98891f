"""Tiny trained models for the clustering tests (built once per module)."""

from __future__ import annotations

import keras
import numpy as np


def toy_data(n: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose label says which half (top or bottom) is brighter."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10, 10, 1)).astype("float32")
    y = (x[:, :5].mean(axis=(1, 2, 3)) > x[:, 5:].mean(axis=(1, 2, 3))).astype("int32")
    x[np.arange(n), :5] += np.where(y, 0.5, -0.5)[:, None, None, None]
    return x, y


def compile_(model: keras.Model) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def trained_cnn(epochs: int = 3) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    """Conv2D, DepthwiseConv2D (multiplier 2), SeparableConv2D and two Dense."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((10, 10, 1)),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv"),
        keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="dw"),
        keras.layers.SeparableConv2D(6, 3, activation="relu", name="sep"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(16, activation="relu", name="fc"),
        keras.layers.Dense(2, name="logits"),
    ], name="toy_cnn")
    x, y = toy_data()
    compile_(model).fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model, x, y
