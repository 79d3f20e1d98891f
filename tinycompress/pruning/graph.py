"""Channel dependency graph of a functional Keras model, for structured pruning.

Every output channel of a *producer* (Dense, Conv1D, Conv2D, SeparableConv1D,
SeparableConv2D) is a *slot*. Walking the graph, each tensor gets a map from
its last-axis positions to the slots that fill them (-1 for channels no
producer owns, e.g. the model input): pooling, BatchNorm, activations and
DepthwiseConv carry the map through, Flatten tiles it over the spatial
positions, Concatenate joins maps, and Add-like merges tie the slots they add
into one *group* that is pruned or kept as a whole. Groups that reach a model
output, or pass an activation with ``f(0) != 0``, are frozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from tinycompress.core import KERNEL_TABLE, LayerCall, LayerGraph, kernels
from tinycompress.errors import UnsupportedLayerError
from tinycompress.pruning.masks import prune_count

__all__ = ["ChannelGraph", "build_channel_graph", "PRODUCER_TYPES", "PASS_THROUGH_TYPES"]

L = keras.layers


def _of_kind(*kinds: str) -> tuple[type, ...]:
    return tuple(cls for cls, row in KERNEL_TABLE.items() if row.kind in kinds)


#: Layers whose output channels are prunable (Dense, Conv1D/2D/3D, SeparableConv1D/2D).
PRODUCER_TYPES = _of_kind("dense", "conv", "separable")
_DEPTHWISE = _of_kind("depthwise")
_ACTIVATIONS = (L.Activation, L.ReLU, L.LeakyReLU, L.ELU, L.Softmax)
#: Parameter-free layers that keep channels in place (a zero channel stays zero).
PASS_THROUGH_TYPES = _ACTIVATIONS + (
    L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D, L.GaussianNoise, L.GaussianDropout,
    L.MaxPooling1D, L.MaxPooling2D, L.AveragePooling1D, L.AveragePooling2D,
    L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalMaxPooling1D,
    L.GlobalMaxPooling2D, L.ZeroPadding1D, L.ZeroPadding2D, L.UpSampling1D, L.UpSampling2D,
    L.Cropping1D, L.Cropping2D, L.Identity, L.ActivityRegularization,
)
_MERGES = (L.Add, L.Subtract, L.Average, L.Multiply, L.Maximum, L.Minimum)
_SUPPORTED = [t.__name__ for t in PRODUCER_TYPES + _DEPTHWISE + PASS_THROUGH_TYPES + _MERGES] + [
    "BatchNormalization", "Flatten", "Concatenate"]


def _unsupported(layer: keras.layers.Layer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"Structured pruning cannot handle layer {layer.name!r} ({type(layer).__name__}): {why}. "
        f"Supported layers on pruned channels: {sorted(set(_SUPPORTED))}. Replace it with a "
        "supported layer, or prune this model with granularity='weight', 'block' or 'n_of_m'."
    )


def _zero_preserving(fn) -> bool:
    out = keras.ops.convert_to_numpy(fn(keras.ops.zeros((1, 4))))
    return bool(np.all(out == 0))


@dataclass
class ChannelGraph:
    """Slots, groups and per-layer channel maps of one model (see module doc)."""

    layers: dict[str, keras.layers.Layer]
    owner: list[tuple[str, int]] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    producers: dict[str, np.ndarray] = field(default_factory=dict)
    in_maps: dict[str, np.ndarray] = field(default_factory=dict)
    frozen_slots: set[int] = field(default_factory=set)

    # -- construction -------------------------------------------------------------
    def _new_slots(self, name: str, n: int) -> np.ndarray:
        start = len(self.owner)
        self.owner += [(name, c) for c in range(n)]
        self.parent += list(range(start, start + n))
        return np.arange(start, start + n)

    def find(self, s: int) -> int:
        """Group id (union-find root) of slot `s`."""
        while self.parent[s] != s:
            self.parent[s] = self.parent[self.parent[s]]
            s = self.parent[s]
        return s

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def freeze(self, m: np.ndarray) -> None:
        """Mark every slot of map `m` as one that must be kept."""
        self.frozen_slots.update(int(s) for s in m if s >= 0)

    # -- queries ------------------------------------------------------------------
    def groups_of(self, m: np.ndarray) -> np.ndarray:
        """Group id per position of a map (-1 stays -1)."""
        return np.array([self.find(int(s)) if s >= 0 else -1 for s in m], dtype=np.int64)

    def frozen_groups(self) -> set[int]:
        """Groups that must be kept."""
        return {self.find(s) for s in self.frozen_slots}

    def families(self) -> list[list[int]]:
        """Prunable groups, clustered by the producers they tie together."""
        frozen = self.frozen_groups()
        fam_parent: dict[int, int] = {}

        def root(g: int) -> int:
            while fam_parent.setdefault(g, g) != g:
                g = fam_parent[g]
            return g

        for slots in self.producers.values():
            gs = {self.find(int(s)) for s in slots}
            first = root(min(gs))
            for g in gs:
                fam_parent[root(g)] = first
        clusters: dict[int, list[int]] = {}
        for g in fam_parent:
            if g not in frozen:
                clusters.setdefault(root(g), []).append(g)
        return [sorted(v) for _, v in sorted(clusters.items())]

    def slot_scores(self, criterion: str) -> np.ndarray:
        """Score per slot: mean |w| ("l1"), RMS ("l2") of its filter, or |gamma| ("bn_gamma").

        Slots without a BatchNorm get +inf under "bn_gamma" (never pruned).
        """
        scores = np.zeros(len(self.owner))
        if criterion == "bn_gamma":
            scores[:] = np.inf
            for name, m in self.in_maps.items():
                layer = self.layers[name]
                if isinstance(layer, L.BatchNormalization) and layer.scale:
                    gamma = np.abs(keras.ops.convert_to_numpy(layer.gamma))
                    for pos, s in enumerate(m):
                        if s >= 0:
                            scores[s] = gamma[pos] if np.isinf(scores[s]) else scores[s] + gamma[pos]
            return scores
        for name, slots in self.producers.items():
            k = keras.ops.convert_to_numpy(_out_kernel(self.layers[name]))
            k = k.reshape(-1, k.shape[-1])
            scores[slots] = np.mean(np.abs(k), 0) if criterion == "l1" else np.sqrt(np.mean(k**2, 0))
        return scores

    def select(self, sparsity: float, criterion: str, scope: str) -> set[int]:
        """Groups to prune so each family (or the whole model) reaches `sparsity`.

        Every family keeps at least one group.
        """
        slot_scores = self.slot_scores(criterion)
        group_score: dict[int, float] = {}
        for s, sc in enumerate(slot_scores):
            g = self.find(s)
            group_score[g] = group_score.get(g, 0.0) + sc
        fams = [[g for g in f if np.isfinite(group_score[g])] for f in self.families()]
        fams = [f for f in fams if f]
        pruned: set[int] = set()
        if scope == "global":
            ranked = sorted((group_score[g], g, i) for i, f in enumerate(fams) for g in f)
            left, k = [len(f) for f in fams], prune_count(len(ranked), sparsity)
            for _, g, i in ranked:
                if len(pruned) == k:
                    break
                if left[i] > 1:  # never empty a family
                    pruned.add(g)
                    left[i] -= 1
            return pruned
        for f in fams:
            ranked = sorted(f, key=lambda g: (group_score[g], g))
            pruned.update(ranked[: prune_count(len(f), sparsity)])
        return pruned

    def pruned_from_weights(self) -> set[int]:
        """Groups whose every producer filter is exactly zero (state after masking)."""
        alive: set[int] = set()
        for name, slots in self.producers.items():
            k = keras.ops.convert_to_numpy(_out_kernel(self.layers[name]))
            nonzero = np.any(k.reshape(-1, k.shape[-1]) != 0, axis=0)
            alive.update(self.find(int(s)) for s in slots[nonzero])
        frozen = self.frozen_groups()
        return {g for f in self.families() for g in f if g not in alive and g not in frozen}

    def keep(self, m: np.ndarray, pruned: set[int]) -> np.ndarray:
        """Boolean keep-vector of a map under a set of pruned groups."""
        return np.array([s < 0 or self.find(int(s)) not in pruned for s in m], dtype=bool)

    def masks(self, pruned: set[int]) -> tuple[list[tuple[keras.Variable, np.ndarray]],
                                                list[tuple[keras.Variable, np.ndarray]]]:
        """Masks zeroing the pruned channels, and BatchNorm moving means to zero.

        Returns:
            ``(masks, moving_means)``: ``(variable, float mask)`` pairs for
            producer kernels/biases, BatchNorm gamma/beta and depthwise biases;
            ``(moving_mean, bool positions to zero)`` pairs.
        """
        out: list[tuple[keras.Variable, np.ndarray]] = []
        means: list[tuple[keras.Variable, np.ndarray]] = []
        for name, slots in self.producers.items():
            layer = self.layers[name]
            keep = self.keep(slots, pruned).astype(np.float32)
            kernel = _out_kernel(layer)
            out.append((kernel, np.broadcast_to(keep, tuple(kernel.shape)).copy()))
            if layer.use_bias:
                out.append((layer.bias, keep.copy()))
        for name, m in self.in_maps.items():
            layer = self.layers[name]
            if isinstance(layer, L.BatchNormalization):
                keep = self.keep(m, pruned)
                for var in (layer.gamma if layer.scale else None, layer.beta if layer.center else None):
                    if var is not None:
                        out.append((var, keep.astype(np.float32)))
                means.append((layer.moving_mean, ~keep))
            elif isinstance(layer, _DEPTHWISE) and layer.use_bias:
                keep = self.keep(np.repeat(m, layer.depth_multiplier), pruned)
                out.append((layer.bias, keep.astype(np.float32)))
        return out, means


def _out_kernel(layer: keras.layers.Layer) -> keras.Variable:
    """The kernel whose last axis is the layer's output channels (pointwise for separable)."""
    return kernels(layer)[-1].variable


def _step(graph: ChannelGraph, call: LayerCall, ins: list[np.ndarray]) -> np.ndarray:
    layer = call.layer
    name = layer.name
    has_slots = any(np.any(m >= 0) for m in ins)
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        if has_slots:
            raise _unsupported(layer, "only data_format='channels_last' is supported")
    if isinstance(layer, PRODUCER_TYPES):
        if getattr(layer, "groups", 1) != 1:
            raise _unsupported(layer, f"grouped convolution (groups={layer.groups})")
        graph.in_maps[name] = ins[0]
        slots = graph._new_slots(name, int(_out_kernel(layer).shape[-1]))
        graph.producers[name] = slots
        if not _zero_preserving(layer.activation):
            graph.freeze(slots)
        return slots
    if isinstance(layer, _DEPTHWISE):
        graph.in_maps[name] = ins[0]
        if not _zero_preserving(layer.activation):
            graph.freeze(ins[0])
        return np.repeat(ins[0], layer.depth_multiplier)
    if isinstance(layer, L.BatchNormalization):
        rank = len(call.inputs[0].shape)
        if layer.axis not in (-1, rank - 1) and not (
            isinstance(layer.axis, (list, tuple)) and list(layer.axis) in ([-1], [rank - 1])
        ):
            if has_slots:
                raise _unsupported(layer, f"BatchNormalization over axis={layer.axis}")
        graph.in_maps[name] = ins[0]
        return ins[0]
    if isinstance(layer, PASS_THROUGH_TYPES):
        if isinstance(layer, _ACTIVATIONS) and not _zero_preserving(layer):
            graph.freeze(ins[0])
        return ins[0]
    if isinstance(layer, L.Flatten):
        spatial = int(np.prod(call.inputs[0].shape[1:-1], dtype=np.int64))
        return np.tile(ins[0], spatial)
    if isinstance(layer, L.Concatenate):
        rank = len(call.inputs[0].shape)
        if layer.axis in (-1, rank - 1):
            return np.concatenate(ins)
    if isinstance(layer, _MERGES + (L.Concatenate,)):
        if len({len(m) for m in ins}) != 1:
            if has_slots:
                raise _unsupported(layer, "broadcasting merge of different channel counts")
            return np.full(int(call.outputs[0].shape[-1]), -1)
        stacked = np.stack(ins)
        for pos in range(stacked.shape[1]):
            col = stacked[:, pos]
            if np.any(col < 0):
                graph.freeze(col)
            live = [int(s) for s in col if s >= 0]
            for s in live[1:]:
                graph._union(live[0], s)
        return stacked.max(axis=0)
    if has_slots:
        raise _unsupported(layer, "it is not in the table of supported layers")
    return np.full(int(call.outputs[0].shape[-1]), -1)


def build_channel_graph(model: keras.Model) -> ChannelGraph:
    """Analyse `model` for structured pruning.

    Args:
        model: a built functional or Sequential Keras model.

    Returns:
        The `ChannelGraph`.

    Raises:
        UnsupportedLayerError: a shared layer, a nested model, a subclassed
            model, a Sequential model without input, or a layer outside the
            supported table carries prunable channels; the message names it.

    Example:
        >>> inp = keras.Input((8,))
        >>> h = keras.layers.Dense(4, activation="relu", name="h")(inp)
        >>> m = keras.Model(inp, keras.layers.Dense(2, name="out")(h))
        >>> g = build_channel_graph(m)
        >>> [len(f) for f in g.families()]
        [4]
    """
    calls = LayerGraph(model)
    graph = ChannelGraph(layers={})
    maps: dict[int, np.ndarray] = {id(t): np.full(int(t.shape[-1]), -1) for t in calls.model.inputs}
    for call in calls.calls:
        layer = call.layer
        ins = [maps[id(t)] for t in call.inputs]
        if layer.name in graph.layers:
            if any(np.any(m >= 0) for m in ins) or isinstance(layer, PRODUCER_TYPES):
                raise _unsupported(layer, "the layer is shared (called more than once)")
        if isinstance(layer, keras.Model) and any(np.any(m >= 0) for m in ins):
            raise _unsupported(layer, "nested models are not supported; flatten the model")
        graph.layers[layer.name] = layer
        out = _step(graph, call, ins) if not isinstance(layer, keras.Model) else (
            np.full(int(call.outputs[0].shape[-1]), -1))
        for t in call.outputs:
            maps[id(t)] = out
    for t in calls.model.outputs:
        graph.freeze(maps[id(t)])
    return graph
