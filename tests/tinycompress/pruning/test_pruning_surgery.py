"""Structured pruning + shrink: same outputs, fewer parameters, for each topology;
dependency groups through Add; network slimming; clear errors; device savings."""

import keras
import numpy as np
import pytest

from tinycompress.pruning import (
    ConstantSparsity,
    PruningCallback,
    UnsupportedLayerError,
    shrink,
)
from tinycompress.pruning.graph import build_channel_graph

L = keras.layers


def _sequential_cnn():
    return keras.Sequential([
        keras.Input((10, 10, 2)),
        L.Conv2D(8, 3, padding="same", use_bias=False, name="c1"),
        L.BatchNormalization(name="bn1"), L.ReLU(),
        L.MaxPooling2D(),
        L.Conv2D(12, 3, activation="relu", name="c2"),
        L.Flatten(),
        L.Dense(16, activation="relu", name="fc"),
        L.Dropout(0.1),
        L.Dense(3, name="head"),
    ])


def _residual():
    inp = keras.Input((8, 8, 3))
    stem = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
    h = L.Conv2D(6, 3, padding="same", name="r1")(stem)
    h = L.BatchNormalization(name="rbn1")(h)
    h = L.Activation("relu")(h)
    h = L.Conv2D(8, 3, padding="same", name="r2")(h)
    h = L.BatchNormalization(name="rbn2")(h)
    h = L.Add(name="add")([stem, h])
    h = L.ReLU()(h)
    h = L.AveragePooling2D(2)(h)
    h = L.Conv2D(10, 1, activation="relu", name="c3")(h)
    h = L.GlobalAveragePooling2D()(h)
    return keras.Model(inp, L.Dense(2, name="head")(h))


def _branches():
    inp = keras.Input((8, 8, 4))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2, activation="relu", name="b")(inp)
    h = L.Concatenate(name="cat")([a, b])
    h = L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="dw")(h)
    h = L.ZeroPadding2D()(h)
    h = L.SeparableConv2D(7, 3, activation="relu", name="sep")(h)
    h = L.GlobalMaxPooling2D()(h)
    h = L.Dense(9, activation="tanh", name="fc")(h)
    return keras.Model(inp, L.Dense(2, name="head")(h))


def _conv1d():
    return keras.Sequential([
        keras.Input((16, 3)),
        L.Conv1D(8, 3, activation="relu", name="c1"),
        L.BatchNormalization(name="bn"),
        L.AveragePooling1D(2),
        L.Conv1D(6, 3, activation="relu", name="c2"),
        L.GlobalMaxPooling1D(),
        L.Dense(2, name="head"),
    ])


def _prune(model, sparsity=0.5, epochs=2, **kwargs):
    x = np.random.default_rng(0).normal(size=(32,) + tuple(model.input_shape[1:])).astype("float32")
    y = np.random.default_rng(1).integers(0, model.output_shape[-1], 32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = PruningCallback(ConstantSparsity(sparsity, frequency=2), granularity="channel", **kwargs)
    model.fit(x, y, epochs=epochs, batch_size=8, verbose=0, callbacks=[cb])
    return x, cb


@pytest.mark.slow
@pytest.mark.parametrize("factory", [_sequential_cnn, _residual, _branches, _conv1d])
def test_shrunk_model_equals_masked_model(factory):
    keras.utils.set_random_seed(0)
    model = factory()
    x, _ = _prune(model)
    before = [w.copy() for w in model.get_weights()]
    small = shrink(model)
    for a, b in zip(model.get_weights(), before):  # the user's model is untouched
        np.testing.assert_array_equal(a, b)
    assert small.count_params() < model.count_params()
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    # Shrinking again removes nothing more.
    assert shrink(small).count_params() == small.count_params()


def test_sequential_cnn_removes_half_of_each_hidden_layer_and_maps_flatten():
    keras.utils.set_random_seed(0)
    model = _sequential_cnn()
    _prune(model)
    small = shrink(model)
    assert [small.get_layer(n).filters for n in ("c1", "c2")] == [4, 6]
    assert small.get_layer("fc").units == 8 and small.get_layer("head").units == 3
    assert small.get_layer("bn1").gamma.shape == (4,)
    assert small.get_layer("fc").kernel.shape == (3 * 3 * 6, 8)  # flattened positions


def test_residual_add_ties_channels_into_one_group():
    keras.utils.set_random_seed(0)
    model = _residual()
    _prune(model)
    stem = model.get_layer("stem").kernel.numpy().reshape(-1, 8)
    r2 = model.get_layer("r2").kernel.numpy().reshape(-1, 8)
    dead_stem, dead_r2 = ~np.any(stem != 0, 0), ~np.any(r2 != 0, 0)
    np.testing.assert_array_equal(dead_stem, dead_r2)
    assert dead_stem.sum() == 4
    small = shrink(model)
    assert small.get_layer("stem").filters == small.get_layer("r2").filters == 4
    assert small.get_layer("r1").filters == 3 and small.get_layer("c3").filters == 5


def test_channels_reaching_outputs_or_nonzero_activations_are_kept():
    inp = keras.Input((6,))
    h = L.Dense(8, activation="sigmoid", name="sig")(inp)  # sigmoid(0) = 0.5: frozen
    h = L.Dense(8, activation="relu", name="mid")(h)
    model = keras.Model(inp, L.Dense(4, name="out")(h))
    graph = build_channel_graph(model)
    families = graph.families()
    assert len(families) == 1 and len(families[0]) == 8  # only "mid" is prunable
    _prune(model)
    small = shrink(model)
    assert [small.get_layer(n).units for n in ("sig", "mid", "out")] == [8, 4, 4]


def test_network_slimming_prunes_smallest_bn_gammas():
    keras.utils.set_random_seed(0)
    model = _sequential_cnn()
    _prune(model, sparsity=0.5, epochs=1, criterion="bn_gamma", slimming_l1=1e-2)
    gamma = model.get_layer("bn1").gamma.numpy()
    assert int((gamma == 0).sum()) == 4
    # Only channels with a BatchNorm are candidates under bn_gamma: c2 and fc keep all.
    assert np.all(np.any(model.get_layer("c2").kernel.numpy().reshape(-1, 12) != 0, 0))
    assert model.get_layer("bn1").gamma.regularizer is None  # penalty removed after fit
    assert shrink(model).get_layer("c1").filters == 4


def test_unsupported_layer_is_named_and_model_untouched():
    inp = keras.Input((4, 4, 2))
    h = L.Conv2D(4, 3, padding="same", name="conv")(inp)
    h = L.Reshape((8, 8), name="odd_reshape")(h)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(h)))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(UnsupportedLayerError, match="odd_reshape.*Reshape"):
        shrink(model)
    with pytest.raises(UnsupportedLayerError, match="odd_reshape"):
        _prune(model)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_subclassed_and_shared_layers_are_refused():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(3)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 4), "float32"))
    with pytest.raises(UnsupportedLayerError, match="subclassed"):
        shrink(sub)
    shared = L.Dense(4, name="shared")
    inp = keras.Input((4,))
    model = keras.Model(inp, shared(shared(inp)))
    with pytest.raises(UnsupportedLayerError, match="shared"):
        shrink(model)


def test_global_channel_scope_prunes_the_overall_fraction():
    keras.utils.set_random_seed(0)
    model = _sequential_cnn()
    x, cb = _prune(model, scope="global")
    graph = cb._graph
    total = sum(len(f) for f in graph.families())  # 8 + 12 + 16 prunable channel groups
    assert total == 36 and len(graph.pruned_from_weights()) == 18
    small = shrink(model)
    assert sum(small.get_layer(n).filters for n in ("c1", "c2")) + small.get_layer("fc").units == 18
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
