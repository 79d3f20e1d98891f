"""The technique contract (`tinycompress.core.technique`) for low-rank and layer pruning.

The core's parametrized ``tests/tinycompress/test_technique_contract.py`` did
not exist when these techniques were written; this file runs the same checks
for both: config value object (validates with a `CompressionError`, flat,
round trips through JSON), ``apply`` returns a model that trains with
``fit``, unsupported structures raise `UnsupportedLayerError` before
anything is built, ``callbacks`` are registered/serializable (none needed
here), and `prepare_for_export` leaves plain Keras layers computing the same
function. Add ``lowrank.TECHNIQUE`` and ``layer_pruning.TECHNIQUE`` (with the
``apply`` context below) to the core test's parametrization when merging.
"""

import json

import keras
import numpy as np
import pytest

from tinycompress import layer_pruning, lowrank
from tinycompress.core import Technique, prepare_for_export, toolkit_layers
from tinycompress.errors import CompressionError, UnsupportedLayerError

L = keras.layers
XENT = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    y = L.Conv2D(8, 3, padding="same", name="branch")(x)
    x = L.Add(name="add")([x, y])
    x = L.Flatten(name="flat")(x)
    x = L.Dense(32, activation="relu", name="fc")(x)
    return keras.Model(inp, L.Dense(3, name="head")(x), name="net")


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.random((n, 6, 6, 2)).astype("float32"), rng.integers(0, 3, n)


CASES = {
    "lowrank": (lowrank.TECHNIQUE, lowrank.LowRankConfig(ranks={"fc": 4, "stem": (2, 4)}),
                lambda: {}, dict(energy=2.0)),
    "layer_pruning": (layer_pruning.TECHNIQUE, layer_pruning.LayerPruningConfig(kinds=["residual"]),
                      lambda: {"validation_data": _data(), "loss": XENT}, dict(remove=-1)),
}


@pytest.fixture(params=list(CASES))
def case(request):
    return CASES[request.param]


def test_technique_entry_is_complete(case):
    technique, config, _, _ = case
    assert isinstance(technique, Technique) and isinstance(config, technique.config)


def test_config_is_a_flat_value_object(case):
    technique, config, _, bad = case
    flat = config.get_config()
    assert json.loads(json.dumps(flat)) == flat
    assert technique.config.from_config(json.loads(json.dumps(flat))) == config
    with pytest.raises(CompressionError):
        technique.config(**bad)


def test_apply_returns_a_model_that_trains_and_leaves_the_input(case):
    technique, config, context, _ = case
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    applied = technique.apply(model, config, **context())
    assert isinstance(applied, keras.Model) and applied is not model
    for callback in technique.callbacks(config):
        assert isinstance(callback, keras.callbacks.Callback)
        assert type(callback).from_config(callback.get_config()) is not None
    applied.compile(optimizer="adam", loss=XENT)
    x, y = _data()
    applied.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=technique.callbacks(config))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_prepare_for_export_leaves_plain_layers_with_the_same_function(case):
    technique, config, context, _ = case
    applied = technique.apply(_model(), config, **context())
    ready = prepare_for_export(applied)
    assert toolkit_layers(ready) == []
    x, _ = _data(4)
    np.testing.assert_allclose(ready(x), applied(x), atol=1e-6)


def test_a_subclassed_model_is_refused_before_anything_is_built(case):
    technique, config, context, _ = case

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(4)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 4), "float32"))
    with pytest.raises(UnsupportedLayerError):
        technique.apply(sub, config, **context())
