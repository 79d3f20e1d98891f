"""Wrap a model's layers for clustering, and strip the wrappers for export."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np

from tinycompress.errors import ClusteringError
from tinycompress.clustering.wrapper import (
    ClusterWeights,
    _channels,
    check_settings,
    clusterable_weights,
    is_clusterable,
)

__all__ = ["INT8_GRIDS", "cluster_weights", "strip_clustering", "cluster_wrappers"]

#: Values of `strip_clustering`'s ``int8_grid``.
INT8_GRIDS = ("auto", "per_tensor", "per_channel", None)


def _selector(model: keras.Model, layers) -> Callable[[keras.layers.Layer], bool]:
    if layers is None:
        return is_clusterable
    if callable(layers):
        return layers
    names = [layers] if isinstance(layers, str) else list(layers)
    known = {layer.name: layer for layer in model.layers}
    for name in names:
        if name not in known:
            raise ClusteringError(
                f"expected names of top-level layers of '{model.name}' "
                f"({sorted(known)}). Received layer name {name!r}."
            )
        if not is_clusterable(known[name]):
            clusterable_weights(known[name])
    chosen = set(names)
    return lambda layer: layer.name in chosen


def cluster_weights(
    model: keras.Model,
    *,
    bits: int = 4,
    layers: Iterable[str] | str | Callable[[keras.layers.Layer], bool] | None = None,
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
        layers: top-level layer names, or a predicate on layers. Default None:
            every clusterable layer (others are left alone). A named layer
            that cannot be clustered is an error.
        granularity: "auto" (default), "per_tensor" or "per_channel"; see
            `ClusterWeights`.
        init: "kmeans++" (default) or "linear".
        preserve_sparsity: keep exact zeros at zero. Default True.
        seed: k-means++ seed. Default 0.

    Returns:
        A new model (not compiled) whose chosen layers are wrapped.

    Raises:
        ClusteringError: a setting is out of range or a named layer is
            missing or cannot be clustered.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> [type(l).__name__ for l in cluster_weights(m, bits=2).layers]
        ['ClusterWeights']
    """
    choose = _selector(model, layers)
    settings = dict(bits=bits, granularity=granularity, init=init,
                    preserve_sparsity=preserve_sparsity, seed=seed)
    check_settings(bits, granularity, init)

    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, ClusterWeights) or not choose(layer):
            return layer
        return ClusterWeights(layer, **settings)

    return keras.models.clone_model(model, clone_function=wrap)


def cluster_wrappers(model: keras.Model) -> list[ClusterWeights]:
    """The `ClusterWeights` layers of a model, nested models included."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, ClusterWeights):
            found.append(layer)
    return found


def _snap(w: np.ndarray, cols: int, per_channel: bool) -> np.ndarray:
    w2d = w.reshape(-1, cols).astype(np.float64)
    amax = np.max(np.abs(w2d), axis=0 if per_channel else None, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.round(w2d / scale) * scale).astype(np.float32).reshape(w.shape)


def strip_clustering(model: keras.Model, *, int8_grid: str | None = "auto") -> keras.Model:
    """Replace each `ClusterWeights` by its layer holding the shared values.

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
        A new model (not compiled) with no `ClusterWeights` left; the layers
        are the wrapped ones, whose kernels now hold the clustered values.

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

    def unwrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if not isinstance(layer, ClusterWeights):
            return layer
        for (var, depthwise, dense), values in zip(
            clusterable_weights(layer.layer), layer.clustered_values()
        ):
            if int8_grid is not None:
                per_channel = not dense if int8_grid == "auto" else int8_grid == "per_channel"
                values = _snap(values, _channels(tuple(var.shape), depthwise), per_channel)
            var.assign(values)
        return layer.layer

    return keras.models.clone_model(model, clone_function=unwrap)
