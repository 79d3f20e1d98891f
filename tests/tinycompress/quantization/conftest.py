"""Fixtures of the quantization tests: float models trained once per session."""

from __future__ import annotations

import pytest
from qat_topologies import TOPOLOGIES, blobs


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
