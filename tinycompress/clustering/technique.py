"""Clustering's side of the technique contract (`tinycompress.core.technique`)."""

from __future__ import annotations

import keras

from tinycompress.clustering.callbacks import ReassignClusters
from tinycompress.clustering.cluster import cluster_weights
from tinycompress.clustering.config import ClusteringConfig
from tinycompress.core import Technique

__all__ = ["apply", "callbacks", "TECHNIQUE"]


def apply(model: keras.Model, config: ClusteringConfig) -> keras.Model:
    """Wrap the selected layers of `model` in `ClusterWeights` (see `cluster_weights`).

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> [type(l).__name__ for l in apply(m, ClusteringConfig(bits=2)).layers]
        ['ClusterWeights']
    """
    return cluster_weights(model, bits=config.bits, layers=config.layers,
                           granularity=config.granularity, init=config.init,
                           preserve_sparsity=config.preserve_sparsity, seed=config.seed)


def callbacks(config: ClusteringConfig) -> list[keras.callbacks.Callback]:
    """`ReassignClusters` when ``config.reassign_every`` is set, else none.

    Example:
        >>> callbacks(ClusteringConfig()), [type(c).__name__ for c in callbacks(ClusteringConfig(reassign_every=1))]
        ([], ['ReassignClusters'])
    """
    return [ReassignClusters(config.reassign_every)] if config.reassign_every else []


#: Clustering's contract entry points.
TECHNIQUE = Technique("clustering", ClusteringConfig, apply, callbacks)
