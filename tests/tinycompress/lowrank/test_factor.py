"""`factor_layer`: SVD and Tucker-2 factors reproduce the layer at full rank, Eckart-Young below."""

import keras
import numpy as np
import pytest

from tinycompress.core import rewrite
from tinycompress.errors import UnsupportedLayerError
from tinycompress.lowrank import LowRankError, factor_layer, rank_for_energy, spectrum

L = keras.layers
TOL = 1e-5


def _model(layer, shape):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(shape), layer])
    for w in model.weights:  # non-zero biases so their placement is tested
        w.assign(np.random.default_rng(2).normal(size=w.shape).astype("float32"))
    return model


def _factored(model, rank):
    return rewrite(model, lambda l: factor_layer(l, rank) if l is model.layers[-1] else None)


def _x(shape, n=8):
    return np.random.default_rng(3).normal(size=(n, *shape)).astype("float32")


CASES = [
    ("dense", lambda: L.Dense(7, activation="tanh", name="t"), (12,)),
    ("dense_3d", lambda: L.Dense(5, activation="relu", name="t"), (4, 9)),
    ("conv2d", lambda: L.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="t"), (9, 9, 4)),
    ("conv2d_dilated", lambda: L.Conv2D(5, (3, 2), dilation_rate=2, name="t"), (10, 10, 3)),
    ("conv1d_causal", lambda: L.Conv1D(6, 3, padding="causal", activation="relu", name="t"), (11, 5)),
]


@pytest.mark.parametrize("name,make,shape", CASES, ids=[c[0] for c in CASES])
def test_full_rank_svd_reproduces_the_layer(name, make, shape):
    model = _model(make(), shape)
    w = model.layers[-1].kernel
    full = min(int(np.prod(w.shape[:-1])), int(w.shape[-1]))
    factored = _factored(model, full)
    x = _x(shape)
    assert [l.name for l in factored.layers] == ["t_lr1", "t_lr2"]
    np.testing.assert_allclose(factored(x), model(x), atol=TOL, rtol=TOL)
    # Bias and activation live on the second layer only.
    first, second = factored.layers
    assert not first.use_bias and first.activation is keras.activations.linear
    assert second.activation is model.layers[-1].activation


@pytest.mark.parametrize("name,make,shape", CASES[2:], ids=[c[0] for c in CASES[2:]])
def test_full_rank_tucker2_reproduces_the_convolution(name, make, shape):
    model = _model(make(), shape)
    w = model.layers[-1].kernel
    factored = _factored(model, (int(w.shape[-2]), int(w.shape[-1])))
    assert [l.name for l in factored.layers] == ["t_lr1", "t_lr2", "t_lr3"]
    assert factored.layers[0].kernel.shape[:-2] == (1,) * (len(w.shape) - 2)
    x = _x(shape)
    np.testing.assert_allclose(factored(x), model(x), atol=TOL, rtol=TOL)


def test_truncated_svd_is_the_best_rank_r_approximation():
    model = _model(L.Dense(10, use_bias=False, name="t"), (16,))
    factored = _factored(model, 3)
    a, b = (np.asarray(l.kernel) for l in factored.layers)
    w = np.asarray(model.layers[-1].kernel, np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    # Eckart-Young: the error is exactly the discarded singular values.
    assert np.linalg.norm(w - a @ b) ** 2 == pytest.approx(float((s[3:] ** 2).sum()), rel=1e-4)
    assert a.shape == (16, 3) and b.shape == (3, 10)


def test_low_multilinear_rank_kernel_is_exact_with_tucker2_at_its_ranks():
    rng = np.random.default_rng(0)
    core = rng.normal(size=(3, 3, 4, 5))
    u_in, u_out = np.linalg.qr(rng.normal(size=(16, 4)))[0], np.linalg.qr(rng.normal(size=(12, 5)))[0]
    layer = L.Conv2D(12, 3, padding="same", name="t")
    model = _model(layer, (8, 8, 16))
    layer.kernel.assign(np.einsum("hwab,ia,ob->hwio", core, u_in, u_out).astype("float32"))
    spec = spectrum(layer)
    assert (np.sum(spec.mode_in > 1e-4), np.sum(spec.mode_out > 1e-4)) == (4, 5)
    x = _x((8, 8, 16), 2)
    np.testing.assert_allclose(_factored(model, (4, 5))(x), model(x), atol=1e-4)


def test_rank_for_energy_is_the_smallest_rank_reaching_the_energy():
    s = np.array([4.0, 2.0, 1.0, 0.5])
    energy = np.cumsum(s ** 2) / np.sum(s ** 2)
    for e in (0.5, energy[1], energy[1] + 1e-6, 0.99, 1.0):
        r = rank_for_energy(s, e)
        assert energy[r - 1] >= e - 1e-12 and (r == 1 or energy[r - 2] < e - 1e-12)


def test_bad_ranks_and_layers_are_refused_with_our_errors():
    model = _model(L.Dense(4, name="t"), (6,))
    with pytest.raises(LowRankError, match="1..4"):
        factor_layer(model.layers[-1], 5)
    with pytest.raises(LowRankError, match="convolutions only"):
        factor_layer(model.layers[-1], (2, 2))
    depthwise = _model(L.DepthwiseConv2D(3, name="dw"), (5, 5, 2)).layers[-1]
    with pytest.raises(UnsupportedLayerError, match="dw"):
        factor_layer(depthwise, 1)
    grouped = _model(L.Conv2D(4, 3, groups=2, name="g"), (5, 5, 4)).layers[-1]
    with pytest.raises(UnsupportedLayerError, match="groups=2"):
        spectrum(grouped)
