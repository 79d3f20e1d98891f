"""Weight clustering (weight sharing) that pays off in flash via TFLM lookup tables.

Cluster each kernel into K = 2**bits shared values (`cluster_weights`), fine-tune
(centroids train; `ReassignClusters` optionally moves weights between clusters),
`strip_clustering`, convert to int8, then store the clustered tensors as
bit-packed indices with `tflite_export.lut.compress_luts`.

Example:
    >>> import keras, tinycompress.clustering as tcc
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> type(tcc.strip_clustering(tcc.cluster_weights(m, bits=3)).layers[0]).__name__
    'Dense'

The technique contract (`tinycompress.core.technique`): `ClusteringConfig`,
`apply`, `callbacks`, `TECHNIQUE`; `tinycompress.core.prepare_for_export`
bakes the shared values like `strip_clustering` (without touching the input).
"""

from tinycompress.clustering.callbacks import ReassignClusters
from tinycompress.clustering.cluster import INT8_GRIDS, cluster_weights, cluster_wrappers, strip_clustering
from tinycompress.clustering.config import ClusteringConfig
from tinycompress.clustering.technique import TECHNIQUE, apply, callbacks
from tinycompress.errors import ClusteringError
from tinycompress.clustering.wrapper import (
    BITS_RANGE,
    GRANULARITIES,
    SUPPORTED_LAYERS,
    ClusterWeights,
    check_settings,
    clusterable_weights,
    is_clusterable,
)

__all__ = [
    "ClusteringConfig",
    "apply",
    "callbacks",
    "TECHNIQUE",
    "cluster_weights",
    "strip_clustering",
    "cluster_wrappers",
    "ClusterWeights",
    "ReassignClusters",
    "ClusteringError",
    "is_clusterable",
    "clusterable_weights",
    "check_settings",
    "BITS_RANGE",
    "GRANULARITIES",
    "INT8_GRIDS",
    "SUPPORTED_LAYERS",
]
