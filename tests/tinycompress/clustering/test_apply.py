import keras
import numpy as np
import pytest

import tinycompress
from tflite_export import _flatbuffer as fb
from tflite_export.lut import lut_candidates
from tinycompress.clustering import (
    ClusteringError,
    ClusterWeights,
    cluster_weights,
    strip_clustering,
)

from _cluster_models import compile_, trained_cnn


@pytest.fixture(scope="module")
def clustered():
    model, x, y = trained_cnn()
    c = compile_(cluster_weights(model, bits=4))
    c.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return c, x, y


def test_layer_selection_and_errors():
    model, _, _ = trained_cnn(epochs=0)
    c = cluster_weights(model, bits=2, layers=["conv", "fc"])
    assert [type(l).__name__ for l in c.layers] == [
        "ClusterWeights", "DepthwiseConv2D", "SeparableConv2D", "Flatten", "ClusterWeights", "Dense"
    ]
    picked = cluster_weights(model, layers=lambda l: isinstance(l, keras.layers.Dense))
    assert sum(isinstance(l, ClusterWeights) for l in picked.layers) == 2
    with pytest.raises(ClusteringError, match=r"layer 'flat' \(Flatten\) cannot be clustered"):
        cluster_weights(model, layers=["flat"])
    with pytest.raises(ClusteringError, match="Received layer name 'nope'"):
        cluster_weights(model, layers=["nope"])
    with pytest.raises(ClusteringError, match="bits"):
        cluster_weights(model, bits=9)


@pytest.mark.slow
def test_strip_without_snapping_is_bit_exact(clustered):
    c, x, _ = clustered
    y = c.predict(x[:16], verbose=0)
    stripped = strip_clustering(c, int8_grid=None)
    assert not any(isinstance(l, ClusterWeights) for l in stripped._flatten_layers())
    assert all("tinycompress" not in str(type(l)) for l in stripped._flatten_layers())
    np.testing.assert_array_equal(stripped.predict(x[:16], verbose=0), y)


def _int8_kernels(model_bytes: bytes) -> dict[str, np.ndarray]:
    m = fb.unpack(model_bytes)
    sg = m.subgraphs[0]
    out = {}
    for t in sg.tensors:
        data = m.buffers[t.buffer].data
        if data is not None and fb.tensor_type_name(t.type) == "INT8" and len(t.shape) >= 2:
            out[t.name.decode()] = np.frombuffer(bytes(data), np.int8).reshape(t.shape)
    return out


@pytest.mark.slow
def test_every_clustered_int8_tensor_keeps_at_most_k_values(clustered):
    c, x, y = clustered
    stripped = strip_clustering(c)
    model_bytes = tinycompress.convert(stripped, x[:100])
    kernels = [cand for cand in lut_candidates(model_bytes) if cand.dtype == "INT8"]
    # conv, depthwise, separable (depthwise + pointwise), fc, logits
    assert len(kernels) == 6
    for cand in kernels:
        assert cand.distinct <= 16, cand
        assert cand.bits <= 4
    # Dense tables are per tensor, convolution tables per output channel
    axes = {cand.name: cand.axis for cand in kernels}
    assert sum(a is None for a in axes.values()) == 2


@pytest.mark.slow
def test_snapping_makes_int8_weights_equal_the_float_ones(clustered):
    c, x, _ = clustered
    stripped = strip_clustering(c, int8_grid="auto")
    kernel = stripped.get_layer("fc").kernel.numpy()  # Dense: per-tensor grid
    scale = np.abs(kernel).max() / 127
    np.testing.assert_allclose(kernel / scale, np.round(kernel / scale), atol=1e-3)
    conv = stripped.get_layer("conv").kernel.numpy().reshape(-1, 6)  # per-channel grid
    scales = np.abs(conv).max(axis=0) / 127
    np.testing.assert_allclose(conv / scales, np.round(conv / scales), atol=1e-3)
    with pytest.raises(ClusteringError, match="int8_grid"):
        strip_clustering(c, int8_grid="per_row")
