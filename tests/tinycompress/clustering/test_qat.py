"""Cluster-preserving QAT: ClusterWeights around tinycompress.quantization wrappers."""

import numpy as np

import tinycompress
from tflite_export.lut import compress_luts, lut_candidates
from tinycompress.clustering import ClusterWeights, cluster_weights, strip_clustering
from tinycompress.quantization import QuantizeWrapper, quantize_model

from _cluster_models import compile_, trained_cnn


def test_clusters_survive_qat_training_and_int8_conversion():
    model, x, y = trained_cnn(epochs=2)
    qat = quantize_model(model)
    clustered = compile_(cluster_weights(qat, bits=3))
    wrapped = [l for l in clustered.layers if isinstance(l, ClusterWeights)]
    assert wrapped and all(isinstance(l.layer, QuantizeWrapper) for l in wrapped)
    ranges_before = [v.numpy().copy() for l in wrapped for v in l.layer.non_trainable_variables
                     if "quantizer" in v.path or "output" in v.path]
    clustered.fit(x, y, epochs=1, batch_size=32, verbose=0)
    ranges_after = [v.numpy() for l in wrapped for v in l.layer.non_trainable_variables
                    if "quantizer" in v.path or "output" in v.path]
    # the QAT range statistics updated inside the clustering scope are applied
    assert ranges_before and any(not np.array_equal(a, b) for a, b in zip(ranges_before, ranges_after))

    stripped = strip_clustering(clustered)
    assert not any(isinstance(l, ClusterWeights) for l in stripped._flatten_layers())
    model_bytes = tinycompress.convert(stripped, x[:100])
    kernels = [c for c in lut_candidates(model_bytes) if c.dtype == "INT8"]
    assert len(kernels) == 6 and all(c.distinct <= 8 for c in kernels)
    result = compress_luts(model_bytes, tensors=[c.index for c in kernels], measure_each=False,
                           verify_samples=8)
    assert result.verified_samples == 8 and all(t.bits <= 3 for t in result.tensors)
