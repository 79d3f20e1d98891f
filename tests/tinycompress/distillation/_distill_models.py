"""Tiny teacher/student factories shared by the distillation tests."""

from __future__ import annotations

import keras
import numpy as np


def conv_net(filters: int, name: str, classes: int = 3, softmax: bool = False) -> keras.Model:
    """Functional 8x8x1 CNN with a named feature map ``{name}_conv`` (8x8xfilters)."""
    x_in = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_conv")(x_in)
    h = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    out = keras.layers.Dense(classes, activation="softmax" if softmax else None, name=f"{name}_out")(h)
    return keras.Model(x_in, out, name=name)


def mlp(units: int, name: str, inputs: int = 6, classes: int = 3) -> keras.Model:
    return keras.Sequential(
        [keras.Input((inputs,)), keras.layers.Dense(units, activation="relu", name=f"{name}_h"),
         keras.layers.Dense(classes, name=f"{name}_out")],
        name=name,
    )


def blobs(n: int = 256, inputs: int = 6, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: separable, so a trained teacher is near-perfect."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=2.0, size=(classes, inputs))
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(scale=0.7, size=(n, inputs))
    return x.astype("float32"), y.astype("int32")
