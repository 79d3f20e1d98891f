"""Cluster-preserving QAT: ClusterWeights around tinycompress.quantization wrappers."""

import numpy as np
import pytest

import tinycompress
from tflite_export.lut import compress_luts, lut_candidates
from tinycompress.clustering import ClusterWeights, cluster_weights, strip_clustering
from tinycompress.quantization import QuantizeWrapper, quantize_model

from _cluster_models import compile_, trained_cnn


@pytest.mark.slow
def test_clusters_survive_qat_training_and_int8_conversion():
    model, x, y = trained_cnn(epochs=2)
    qat = quantize_model(model)
    clustered = compile_(cluster_weights(qat, bits=3))
    wrapped = [l for l in clustered.layers if isinstance(l, ClusterWeights)]
    assert wrapped and all(isinstance(l.layer, QuantizeWrapper) for l in wrapped)
    ranges = [v for v in clustered.non_trainable_variables
              if v.path.endswith(("_quant/min", "_quant/max"))]
    ranges_before = [v.numpy().copy() for v in ranges]
    clustered.fit(x, y, epochs=1, batch_size=32, verbose=0)
    # the QAT activation ranges keep training around the clustered layers
    assert ranges and any(not np.array_equal(a, v.numpy()) for a, v in zip(ranges_before, ranges))

    stripped = strip_clustering(clustered)
    assert not any(isinstance(l, ClusterWeights) for l in stripped._flatten_layers())
    model_bytes = tinycompress.convert(stripped, x[:100])
    kernels = [c for c in lut_candidates(model_bytes) if c.dtype == "INT8"]
    assert len(kernels) == 6 and all(c.distinct <= 8 for c in kernels)
    result = compress_luts(model_bytes, tensors=[c.index for c in kernels], measure_each=False,
                           verify_samples=8)
    assert result.verified_samples == 8 and all(t.bits <= 3 for t in result.tensors)
