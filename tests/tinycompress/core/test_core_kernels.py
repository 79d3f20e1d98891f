"""The kernel table covers every compressible layer type with the right channel layout."""

import keras
import pytest

from tinycompress.core import KERNEL_TABLE, is_compressible, kernels, layer_kernels
from tinycompress.errors import UnsupportedLayerError

L = keras.layers

# layer, input shape, expected (variable name, channels, depthwise) per kernel
CASES = [
    (L.Dense(5), (None, 3), [("kernel", 5, False)]),
    (L.Conv1D(4, 3), (None, 8, 2), [("kernel", 4, False)]),
    (L.Conv2D(4, 3), (None, 8, 8, 2), [("kernel", 4, False)]),
    (L.Conv3D(4, 3), (None, 6, 6, 6, 2), [("kernel", 4, False)]),
    (L.DepthwiseConv1D(3, depth_multiplier=2), (None, 8, 3), [("kernel", 6, True)]),
    (L.DepthwiseConv2D(3, depth_multiplier=2), (None, 8, 8, 3), [("kernel", 6, True)]),
    (L.SeparableConv1D(5, 3), (None, 8, 2), [("depthwise_kernel", 2, True), ("pointwise_kernel", 5, False)]),
    (L.SeparableConv2D(5, 3), (None, 8, 8, 2), [("depthwise_kernel", 2, True), ("pointwise_kernel", 5, False)]),
    (L.Conv1DTranspose(4, 3), (None, 8, 2), [("kernel", 4, False)]),
    (L.Conv2DTranspose(4, 3), (None, 8, 8, 2), [("kernel", 4, False)]),
    (L.Embedding(10, 6), (None, 3), [("embeddings", 6, False)]),
    (L.LSTM(3), (None, 5, 2), [("kernel", 12, False), ("recurrent_kernel", 12, False)]),
    (L.GRU(3), (None, 5, 2), [("kernel", 9, False), ("recurrent_kernel", 9, False)]),
    (L.SimpleRNN(3), (None, 5, 2), [("kernel", 3, False), ("recurrent_kernel", 3, False)]),
]


@pytest.mark.parametrize("layer,shape,expected", CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_table_kernels_and_channels(layer, shape, expected):
    layer.build(shape)
    got = [(k.variable.name, k.channels, k.depthwise) for k in kernels(layer)]
    assert got == expected
    assert is_compressible(layer)


def test_every_table_row_is_covered_by_a_case():
    assert {type(c[0]) for c in CASES} == set(KERNEL_TABLE)


def test_protocol_both_names_and_wrappers():
    class New(L.Layer):
        def build(self, s):
            self.w = self.add_weight(shape=(s[-1], 2))

        def call(self, x):
            return x @ self.w

        def get_compressible_weights(self):
            return [self.w]

    class Old(New):
        get_prunable_weights = New.get_compressible_weights
        get_compressible_weights = None

    for cls in (New, Old):
        layer = cls()
        layer.build((None, 3))
        assert is_compressible(layer) and [k.kind for k in kernels(layer)] == ["custom"]
    assert not is_compressible(L.ReLU()) and layer_kernels(L.ReLU()) is None


def test_unbuilt_table_layer_is_a_clear_error():
    with pytest.raises(UnsupportedLayerError, match="not built"):
        kernels(L.Dense(2, name="lazy"))
