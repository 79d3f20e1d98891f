"""`shrink`: remove pruned channels and build a physically smaller model.

A channel is removed when the output filters of its producer (and of every
producer tied to it through an Add-like merge) are exactly zero, as left by
``PruningCallback(granularity="channel")``. The producing layer loses the
output channel and every consumer loses the matching input slice: Conv, Dense
(after Flatten, at every flattened position of the channel), DepthwiseConv,
SeparableConv and BatchNorm, through pooling, global pooling, Add and
Concatenate. The zeroed channel contributes nothing downstream, so the smaller
model computes the same function.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from tinycompress.core import Replacement, layer_kernels, rewrite
from tinycompress.pruning.graph import _DEPTHWISE, PRODUCER_TYPES, ChannelGraph, build_channel_graph

__all__ = ["shrink"]

logger = logging.getLogger(__name__)
L = keras.layers


def _new_weights(layer, graph: ChannelGraph, pruned: set[int]) -> list[np.ndarray]:
    weights = layer.get_weights()
    name = layer.name
    if name not in graph.in_maps:
        return weights
    in_keep = graph.keep(graph.in_maps[name], pruned)
    if isinstance(layer, L.BatchNormalization):
        return [w[in_keep] for w in weights]
    if isinstance(layer, _DEPTHWISE):
        out = [weights[0][..., in_keep, :]]
        if layer.use_bias:
            out.append(weights[1].reshape(-1, layer.depth_multiplier)[in_keep].ravel())
        return out
    out_keep = graph.keep(graph.producers[name], pruned)
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        mid_keep = np.repeat(in_keep, layer.depth_multiplier)
        out = [weights[0][..., in_keep, :], weights[1][..., mid_keep, :][..., out_keep]]
    else:
        out = [weights[0][..., in_keep, :][..., out_keep]]
    if layer.use_bias:
        out.append(weights[-1][out_keep])
    return out


def shrink(model: keras.Model) -> keras.Model:
    """Return a new, smaller model without the channels whose filters are all zero.

    Args:
        model: a functional or Sequential Keras model after structured pruning
            (``PruningCallback(granularity="channel")``). It is not modified.

    Returns:
        A new uncompiled model with fewer channels and the same outputs as
        `model` (within float rounding). Channels that reach a model output, or
        pass an activation with ``f(0) != 0``, are kept.

    Raises:
        UnsupportedLayerError: a layer or topology on a prunable channel is not
            supported (the message names it); `model` is untouched.

    Example:
        >>> import numpy as np
        >>> inp = keras.Input((6,))
        >>> h = keras.layers.Dense(4, activation="relu", name="h")(inp)
        >>> m = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
        >>> k, b = m.get_layer("h").get_weights()
        >>> k[:, :2] = 0; b[:2] = 0; m.get_layer("h").set_weights([k, b])
        >>> small = shrink(m)
        >>> small.get_layer("h").units, small.count_params() < m.count_params()
        (2, True)
        >>> x = np.random.rand(3, 6).astype("float32")
        >>> bool(np.allclose(small.predict(x, verbose=0), m.predict(x, verbose=0), atol=1e-6))
        True
    """
    graph = build_channel_graph(model)
    pruned = graph.pruned_from_weights()

    def smaller(layer: keras.layers.Layer) -> Replacement | None:
        if not layer.weights or layer.name not in graph.in_maps:
            return None
        config = layer.get_config()
        if isinstance(layer, PRODUCER_TYPES):
            kept = int(graph.keep(graph.producers[layer.name], pruned).sum())
            config[layer_kernels(layer).width] = kept
        new = layer.__class__.from_config(config)
        return Replacement((new,), (_new_weights(layer, graph, pruned),))

    small = rewrite(model, smaller)
    logger.info("shrink: %d -> %d parameters (%d channel groups removed)",
                model.count_params(), small.count_params(), len(pruned))
    return small
