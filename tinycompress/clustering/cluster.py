"""Wrap a model's layers for clustering, and strip the wrappers for export."""

from __future__ import annotations

import keras

from tinycompress import core
from tinycompress.clustering.wrapper import CLUSTERABLE_KINDS, ClusterWeights, check_settings
from tinycompress.core import LayerSelector
from tinycompress.errors import ClusteringError

__all__ = ["INT8_GRIDS", "cluster_weights", "strip_clustering", "cluster_wrappers"]

#: Values of `strip_clustering`'s ``int8_grid``.
INT8_GRIDS = ("auto", "per_tensor", "per_channel", None)


def cluster_weights(
    model: keras.Model,
    *,
    bits: int = 4,
    layers: LayerSelector = None,
    granularity: str = "auto",
    init: str = "kmeans++",
    preserve_sparsity: bool = True,
    seed: int = 0,
) -> keras.Model:
    """Wrap chosen layers of a trained model in `ClusterWeights`.

    Clusters are initialized from the current weights, so call this on a
    trained (and, for sparsity-preserving clustering, pruned and stripped)
    model, then fine-tune with `fit`. The new model shares its layers and
    weights with ``model``.

    Args:
        model: a built Sequential or functional Keras model.
        bits: index width, 2..7 (K = 2**bits values per table). Default 4.
        layers: the shared `layers=` selector (`tinycompress.core.select_layers`):
            None (default: every clusterable layer, nested models included),
            names, classes or a predicate. A named layer that cannot be
            clustered is an error.
        granularity: "auto" (default), "per_tensor" or "per_channel"; see
            `ClusterWeights`.
        init: "kmeans++" (default) or "linear".
        preserve_sparsity: keep exact zeros at zero. Default True.
        seed: k-means++ seed. Default 0.

    Returns:
        A new model (not compiled) whose chosen layers are wrapped.

    Raises:
        ClusteringError: a setting is out of range, a named layer is
            missing or cannot be clustered, or nothing is selected.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> [type(l).__name__ for l in cluster_weights(m, bits=2).layers]
        ['ClusterWeights']
    """
    settings = dict(bits=bits, granularity=granularity, init=init,
                    preserve_sparsity=preserve_sparsity, seed=seed)
    check_settings(bits, granularity, init)
    chosen = {id(l) for l in core.select_layers(
        model, layers, kinds=CLUSTERABLE_KINDS, verb="clustered", error=ClusteringError)}

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer | None:
        return ClusterWeights(layer, **settings) if id(layer) in chosen else None

    return core.rewrite(model, wrap, copy=False)


def cluster_wrappers(model: keras.Model) -> list[ClusterWeights]:
    """The `ClusterWeights` layers of a model, nested models included."""
    return [l for l in dict.fromkeys(core.walk_layers(model, into_wrappers=True))
            if isinstance(l, ClusterWeights)]


def strip_clustering(model: keras.Model, *, int8_grid: str | None = "auto") -> keras.Model:
    """Replace each `ClusterWeights` by its layer holding the shared values.

    With the default grid this is what `tinycompress.core.prepare_for_export`
    does to a clustered model. `model` is left untouched (its wrappers keep
    their latent kernels and can train on).

    Args:
        model: a model returned by `cluster_weights` (after training).
        int8_grid: snap the shared values to the symmetric int8 grid the
            converter will use, so the int8 model holds exactly the trained
            values: "per_channel" (scale per output channel), "per_tensor",
            "auto" (default: per tensor for Dense, per channel otherwise, as
            `tinycompress.convert` quantizes them), or None (no snapping).
            Quantization maps equal floats to equal integers, so each table
            keeps at most K values either way.

    Returns:
        A new model (not compiled) with no `ClusterWeights` left: copies of
        the wrapped layers whose kernels hold the clustered values, and copies
        of the other layers.

    Raises:
        ClusteringError: ``int8_grid`` is not one of `INT8_GRIDS`.

    Example:
        >>> import keras, numpy as np
        >>> m = cluster_weights(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), bits=2)
        >>> s = strip_clustering(m)
        >>> type(s.layers[0]).__name__, len(np.unique(s.layers[0].kernel.numpy())) <= 4
        ('Dense', True)
    """
    if int8_grid not in INT8_GRIDS:
        raise ClusteringError(f"expected int8_grid in {INT8_GRIDS}. Received int8_grid={int8_grid!r}.")

    return core.rewrite(
        model, lambda layer: layer.export_layers(int8_grid) if isinstance(layer, ClusterWeights) else None)
