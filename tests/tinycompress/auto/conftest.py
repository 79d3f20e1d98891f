"""A tiny trained classifier and its data, shared by the search tests."""

from __future__ import annotations

import numpy as np
import pytest


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, np.argmax(x[:, :3] + 0.5 * x[:, 3:6], axis=1)


@pytest.fixture(scope="session")
def tiny_task():
    """``(model, train, val)``: an MLP of ~1.2k parameters trained to >85% on a 3-class
    synthetic task (logits output; one shape-preserving Dense, a layer-pruning candidate)."""
    import keras

    keras.utils.set_random_seed(0)
    train, val = _data(480, 0), _data(160, 1)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu", name="a"),
                              keras.layers.Dense(32, activation="relu", name="b"),
                              keras.layers.Dense(3, name="head")], name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(*train, epochs=30, batch_size=32, verbose=0)
    return model, train, val
