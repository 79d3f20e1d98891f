"""fold_batchnorm: same outputs, fewer layers, unfoldable BatchNorms kept."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tinycompress.quantization import UnsupportedLayerError, fold_batchnorm

L = keras.layers


def _randomize_bn(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=n))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, n))
            if layer.scale:
                layer.gamma.assign(rng.normal(size=n))
            if layer.center:
                layer.beta.assign(rng.normal(size=n))


def _types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_folds_every_supported_producer_with_equal_outputs():
    x_in = keras.Input((12, 12, 3))
    x = L.Conv2D(4, 3, use_bias=False)(x_in)
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.BatchNormalization()(L.DepthwiseConv2D(3, depth_multiplier=2)(x))
    x = L.BatchNormalization(scale=False, center=False)(L.SeparableConv2D(5, 3, padding="same")(x))
    x = L.GlobalAveragePooling2D()(x)
    x = L.BatchNormalization()(L.Dense(3)(x))
    model = keras.Model(x_in, x)
    _randomize_bn(model)
    folded = fold_batchnorm(model)
    assert _types(folded) == ["InputLayer", "Conv2D", "ReLU", "DepthwiseConv2D",
                              "SeparableConv2D", "GlobalAveragePooling2D", "Dense"]
    xs = np.random.default_rng(1).normal(size=(8, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(folded(xs), model(xs), rtol=1e-4, atol=1e-5)
    assert folded.layers[1].use_bias and not model.layers[1].use_bias


def test_conv1d_sequential_folds_and_original_is_untouched():
    model = keras.Sequential([keras.Input((16, 2)), L.Conv1D(3, 3), L.BatchNormalization(),
                              L.Flatten(), L.Dense(2)])
    _randomize_bn(model, seed=3)
    before = [w.copy() for w in model.get_weights()]
    folded = fold_batchnorm(model)
    assert "BatchNormalization" not in _types(folded)
    xs = np.random.default_rng(2).normal(size=(4, 16, 2)).astype("float32")
    np.testing.assert_allclose(folded(xs), model(xs), rtol=1e-4, atol=1e-5)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unfoldable_batchnorms_are_kept():
    x_in = keras.Input((8, 8, 2))
    a = L.Conv2D(2, 1, activation="relu")(x_in)
    a = L.BatchNormalization(name="after_relu")(a)          # non-linear producer
    b = L.Conv2D(2, 1)(x_in)
    s = L.Add()([a, b])                                      # b read twice below
    c = L.BatchNormalization(name="after_add")(s)
    d = L.BatchNormalization(name="shared_input")(b)
    model = keras.Model(x_in, [c, d])
    _randomize_bn(model)
    folded = fold_batchnorm(model)
    kept = sorted(l.name for l in folded.layers if isinstance(l, L.BatchNormalization))
    assert kept == ["after_add", "after_relu", "shared_input"]
    xs = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    for y_f, y in zip(folded(xs), model(xs)):
        np.testing.assert_allclose(y_f, y, rtol=1e-5, atol=1e-6)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.ones((1, 3), "float32"))
    with pytest.raises(UnsupportedLayerError, match="Functional API"):
        fold_batchnorm(net)
