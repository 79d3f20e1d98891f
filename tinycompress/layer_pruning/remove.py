"""Remove candidates (residual blocks, layer groups): their input passes through."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tinycompress.core import LayerGraph, copy_layer, rewrite
from tinycompress.layer_pruning.candidates import Candidate
from tinycompress.layer_pruning.config import LayerPruningError

__all__ = ["remove_candidates"]


def _check(model: keras.Model, candidates: Sequence[Candidate]) -> dict[str, str]:
    owner: dict[str, str] = {}
    names = {l.name for l in model.layers}
    for cand in candidates:
        if not isinstance(cand, Candidate):
            raise LayerPruningError(f"expected Candidate objects (from find_candidates). Received: "
                                    f"{type(cand).__name__}.")
        for layer in cand.layers:
            if layer not in names:
                raise LayerPruningError(f"candidate {cand.name!r} names layer {layer!r}, which model "
                                        f"{model.name!r} does not have. Find candidates on this model.")
            if layer in owner:
                raise LayerPruningError(f"candidates {owner[layer]!r} and {cand.name!r} overlap (both "
                                        f"remove layer {layer!r}); remove only one of them.")
            owner[layer] = cand.name
    return owner


class _Bypass:
    """`LayerGraph.rebuild` call function: removed calls return their block's input."""

    def __init__(self, graph: LayerGraph, candidates: Sequence[Candidate]) -> None:
        by_name = {c.layer.name: c for c in graph.calls}
        self.source = {}
        for cand in candidates:
            block_input = by_name[cand.layers[0]].inputs[0]
            self.source.update({name: block_input for name in cand.layers})
        self.new: dict[int, object] = {}
        self.copies: dict[int, keras.layers.Layer] = {}
        self.old_inputs = iter(graph.model.inputs)

    def on_input(self, x):
        self.new[id(next(self.old_inputs))] = x
        return x

    def _copy(self, layer: keras.layers.Layer):
        if id(layer) not in self.copies:
            if isinstance(layer, keras.Model):
                self.copies[id(layer)] = (rewrite(layer), None)
            else:
                plan = copy_layer(layer)
                self.copies[id(layer)] = (plan.layers[0], plan.weights[0])
        return self.copies[id(layer)]

    def __call__(self, call, args, kwargs):
        if call.layer.name in self.source:
            out = self.new[id(self.source[call.layer.name])]
        else:
            layer, weights = self._copy(call.layer)
            out = layer(*args, **kwargs)
            if weights is not None:
                layer.set_weights(list(weights))
                self.copies[id(call.layer)] = (layer, None)
        for old, new in zip(call.outputs, keras.tree.flatten(out)):
            self.new[id(old)] = new
        return out


def remove_candidates(model: keras.Model, candidates: Sequence[Candidate]) -> keras.Model:
    """A copy of `model` without the given candidates (each passes its input through).

    Args:
        model: the model the candidates were found on (`find_candidates`); not modified.
        candidates: non-overlapping candidates.

    Returns:
        An uncompiled model with the other layers' weights (Sequential stays
        Sequential when only layer groups are removed).

    Raises:
        LayerPruningError: overlapping candidates, or a candidate of another model.

    Example:
        >>> from tinycompress.layer_pruning import find_candidates
        >>> x = keras.Input((8,)); h = keras.layers.Dense(8, activation="relu", name="stem")(x)
        >>> y = keras.layers.Add(name="add")([h, keras.layers.Dense(8, name="f")(h)])
        >>> m = keras.Model(x, keras.layers.Dense(2, name="head")(y))
        >>> block = [c for c in find_candidates(m) if c.kind == "residual"]
        >>> [l.name for l in remove_candidates(m, block).layers][1:]
        ['stem', 'head']
    """
    owner = _check(model, candidates)
    if not candidates:
        return rewrite(model)
    if all(c.kind == "layer" for c in candidates):
        return rewrite(model, lambda layer: [] if layer.name in owner else None)
    graph = LayerGraph(model)
    bypass = _Bypass(graph, candidates)
    return graph.rebuild(bypass, input_fn=bypass.on_input)
