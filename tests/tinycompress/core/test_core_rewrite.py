"""The rewriter: zero, one or several layers in place of one, on every topology."""

import keras
import numpy as np
import pytest

from tinycompress.core import Replacement, rewrite
from tinycompress.errors import UnsupportedLayerError

L = keras.layers
X = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")


def _split_dense(layer, rank=None):
    """Dense(W, b) -> Dense(r, no bias, U) + Dense(units, b, V) with U @ V = W (SVD)."""
    if not isinstance(layer, L.Dense):
        return None
    w, b = layer.get_weights()
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    r = rank or len(s)
    first = L.Dense(r, use_bias=False, name=f"{layer.name}_u")
    second = L.Dense(layer.units, activation=layer.activation, name=f"{layer.name}_v")
    return Replacement((first, second), ([u[:, :r] * s[:r]], [vt[:r], b]))


def _residual_shared_nested():
    inner = keras.Sequential([keras.Input((6,)), L.Dense(6, activation="relu", name="in_d")], name="inner")
    shared = L.Dense(6, name="shared")
    inp = keras.Input((6,), name="x")
    h = L.Dense(6, activation="relu", name="stem")(inp)
    h = L.Add(name="add")([h, shared(h)])      # residual branch
    h = shared(L.Dropout(0.2, name="drop")(h))  # second call of the shared layer
    h = inner(h)
    return keras.Model(inp, L.Dense(3, name="head")(h))


def test_dense_split_into_two_keeps_the_output_at_full_rank():
    m = keras.Sequential([keras.Input((6,)), L.Dense(4, activation="relu", name="a"), L.Dense(3, name="b")])
    r = rewrite(m, _split_dense)
    assert type(r) is keras.Sequential
    assert [l.name for l in r.layers] == ["a_u", "a_v", "b_u", "b_v"]
    np.testing.assert_allclose(r(X), m(X), rtol=1e-5, atol=1e-5)
    low = rewrite(m, lambda l: _split_dense(l, rank=1))
    assert low.count_params() < m.count_params()
    assert not np.allclose(low(X), m(X), atol=1e-3)


def test_functional_residual_shared_and_nested_models():
    keras.utils.set_random_seed(0)
    m = _residual_shared_nested()
    copy = rewrite(m)
    np.testing.assert_allclose(copy(X), m(X), rtol=1e-6)
    assert all(a is not b for a, b in zip(copy.layers[1:], m.layers[1:]))  # fresh layers
    split = rewrite(m, _split_dense)
    np.testing.assert_allclose(split(X), m(X), rtol=1e-4, atol=1e-5)
    # The shared layer stays shared: its two halves are called twice each.
    assert len(split.get_layer("shared_u")._inbound_nodes) == 2
    # Nested models are rewritten too.
    assert [l.name for l in split.get_layer("inner").layers] == ["in_d_u", "in_d_v"]
    for a, b in zip(m.get_weights(), rewrite(m, copy=False).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_zero_replacement_removes_and_multi_input_removal_is_refused():
    m = _residual_shared_nested()
    no_drop = rewrite(m, lambda l: [] if isinstance(l, L.Dropout) else None)
    assert "drop" not in [l.name for l in no_drop.layers]
    np.testing.assert_allclose(no_drop(X), m(X), rtol=1e-6)
    with pytest.raises(UnsupportedLayerError, match="'add'.*2 tensors.*keep_input"):
        rewrite(m, lambda l: [] if isinstance(l, L.Add) else None)


def test_a_residual_block_is_removed_with_its_branch():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    stem = L.Dense(6, activation="relu", name="stem")(inp)
    branch = L.Dense(6, name="b2")(L.Dense(6, activation="relu", name="b1")(stem))
    head = L.Dense(3, name="head")
    m = keras.Model(inp, head(L.Add(name="add")([stem, branch])))
    short = rewrite(m, lambda l: Replacement(keep_input=0) if l.name == "add" else None)
    assert [l.name for l in short.layers[1:]] == ["stem", "head"]  # the branch is gone
    expected = head(m.get_layer("stem")(X))
    np.testing.assert_allclose(short(X), expected, rtol=1e-5, atol=1e-6)


def test_copy_false_shares_the_layers_and_bad_returns_are_errors():
    m = keras.Sequential([keras.Input((6,)), L.Dense(2, name="a")])
    assert rewrite(m, copy=False).layers[0] is m.layers[0]
    with pytest.raises(UnsupportedLayerError, match="must return"):
        rewrite(m, lambda l: "nonsense")
    with pytest.raises(UnsupportedLayerError, match="one weights entry per layer"):
        Replacement((L.Dense(2),), ())


def test_models_without_a_graph_are_refused():
    with pytest.raises(UnsupportedLayerError, match="keras.Input"):
        rewrite(keras.Sequential([L.Dense(2)]))
