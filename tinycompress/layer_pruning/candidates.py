"""What layer pruning may remove: identity residual blocks and shape-preserving layer groups.

A **residual block** is ``Add([x, F(x)])`` where `F` is a chain of
single-input layers starting at `x` whose tensors nothing else reads (an
identity shortcut); a ReLU right after the Add joins the block when `x` is
itself a ReLU output (so ``relu(x) == x`` once the block is gone).
A **layer group** is a layer with a kernel (Dense, convolution) plus the
BatchNormalization/activation/dropout layers that follow it, whose output
has the shape of its input. Removing either passes its input through
unchanged. Only the top-level graph is searched (not inside nested models);
layers called more than once (shared) are never candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tinycompress.core import LayerGraph, kernels, layer_kernels
from tinycompress.core.graph import LayerCall
from tinycompress.layer_pruning.config import KINDS

__all__ = ["Candidate", "find_candidates", "macs", "COMPANION_TYPES"]

L = keras.layers

#: Layers without a kernel that join the layer before them in a layer group.
COMPANION_TYPES = (L.BatchNormalization, L.LayerNormalization, L.Activation, L.ReLU, L.LeakyReLU,
                   L.PReLU, L.ELU, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
                   L.GaussianNoise)


@dataclass(frozen=True)
class Candidate:
    """A removable block or layer group of one model.

    Attributes:
        name: the Add layer's name (residual) or the first layer's (layer group).
        kind: ``"residual"`` or ``"layer"``.
        layers: names of the layers removed with it, in execution order.
        macs: Dense/convolution MACs per sample it costs (see `macs`).
        params: parameters of its layers.
    """

    name: str
    kind: str
    layers: tuple[str, ...]
    macs: int
    params: int


def _call_macs(call: LayerCall) -> int:
    if isinstance(call.layer, keras.Model):
        return macs(call.layer)
    row = layer_kernels(call.layer)
    if row is None or row.kind not in ("dense", "conv", "depthwise", "separable"):
        return 0
    shape = call.outputs[0].shape
    positions = int(np.prod([d for d in shape[1:-1] if d is not None], dtype=np.int64))
    return positions * sum(int(np.prod(k.variable.shape)) for k in kernels(call.layer))


def macs(model: keras.Model) -> int:
    """Multiply-accumulates per sample of the model's Dense and convolution layers.

    Each such call costs its output positions times its kernel size (the
    count TFLM's FULLY_CONNECTED/CONV_2D/DEPTHWISE_CONV_2D do); other layers
    count 0, transposed convolutions, recurrent layers and embeddings too.
    Nested models are counted.

    Example:
        >>> m = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
        ...                       keras.layers.Flatten(), keras.layers.Dense(2)])
        >>> macs(m) == 6 * 6 * 3 * 3 * 3 * 4 + 6 * 6 * 4 * 2
        True
    """
    return sum(_call_macs(c) for c in LayerGraph(model).calls)


def _single(graph: LayerGraph, call: LayerCall | None) -> bool:
    return (call is not None and len(call.inputs) == 1 and len(call.outputs) == 1
            and len(graph.calls_of[id(call.layer)]) == 1)


def _relu(layer: keras.layers.Layer) -> bool:
    if isinstance(layer, L.ReLU):
        cfg = layer.get_config()
        return not cfg.get("negative_slope") and not cfg.get("threshold") and cfg.get("max_value") is None
    return isinstance(layer, (L.Activation, L.Dense, L.Conv1D, L.Conv2D, L.BatchNormalization)) and \
        getattr(layer, "activation", None) is keras.activations.relu


def _branch(graph: LayerGraph, skip, end) -> list[LayerCall] | None:
    chain, t = [], end
    while id(t) != id(skip):
        call = graph.producers.get(id(t))
        if not _single(graph, call) or graph.sole_consumer(t) is None or len(chain) > 64:
            return None
        chain.append(call)
        t = call.inputs[0]
    return chain[::-1] or None


def _residual(graph: LayerGraph, add: LayerCall) -> list[LayerCall] | None:
    if not isinstance(add.layer, L.Add) or len(add.inputs) != 2 or len(graph.calls_of[id(add.layer)]) != 1:
        return None
    for skip, other in (add.inputs, add.inputs[::-1]):
        chain = _branch(graph, skip, other)
        if chain is None:
            continue
        block = [*chain, add]
        after = graph.sole_consumer(add.outputs[0])
        source = graph.producers.get(id(skip))
        if _single(graph, after) and _relu(after.layer) and source is not None and _relu(source.layer):
            block.append(after)
        if id(skip) in graph.input_ids and id(block[-1].outputs[0]) in graph.output_ids:
            return None
        return block
    return None


def _group(graph: LayerGraph, call: LayerCall) -> list[LayerCall] | None:
    if not _single(graph, call) or layer_kernels(call.layer) is None:
        return None
    group, t = [call], call.outputs[0]
    while True:
        nxt = graph.sole_consumer(t)
        if not _single(graph, nxt) or not isinstance(nxt.layer, COMPANION_TYPES):
            break
        group.append(nxt)
        t = nxt.outputs[0]
    x = call.inputs[0]
    if tuple(x.shape) != tuple(t.shape) or (id(x) in graph.input_ids and id(t) in graph.output_ids):
        return None
    return group


def _candidate(name: str, kind: str, calls: list[LayerCall]) -> Candidate:
    return Candidate(name, kind, tuple(c.layer.name for c in calls), sum(_call_macs(c) for c in calls),
                     sum(c.layer.count_params() for c in calls))


def find_candidates(model: keras.Model, kinds: tuple[str, ...] = KINDS) -> list[Candidate]:
    """The residual blocks and layer groups of `model` that can be removed (see module docs).

    Args:
        model: a Functional or Sequential model.
        kinds: ``"residual"`` and/or ``"layer"``. Default both.

    Returns:
        The candidates in execution order (they may overlap: a layer group
        inside a residual branch is a candidate too).

    Raises:
        UnsupportedLayerError: a subclassed model or one without an input.

    Example:
        >>> x = keras.Input((4,)); h = keras.layers.Dense(8, activation="relu", name="stem")(x)
        >>> y = keras.layers.Dense(8, name="f")(h)
        >>> out = keras.layers.Dense(2, name="head")(keras.layers.Add(name="add")([h, y]))
        >>> [(c.name, c.kind, c.layers) for c in find_candidates(keras.Model(x, out))]
        [('f', 'layer', ('f',)), ('add', 'residual', ('f', 'add'))]
    """
    graph = LayerGraph(model)
    found = []
    for call in graph.calls:
        if "residual" in kinds and (block := _residual(graph, call)) is not None:
            found.append(_candidate(call.layer.name, "residual", block))
        if "layer" in kinds and (group := _group(graph, call)) is not None:
            found.append(_candidate(call.layer.name, "layer", group))
    return found
