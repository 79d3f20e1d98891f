"""The one rewriter: replace layers by zero, one or several layers, keeping the other weights.

Works on Sequential and Functional models alike, through residual branches,
shared layers (every call of a shared layer uses the same replacement, so it
stays shared) and nested models (rewritten recursively). A Sequential model
comes back Sequential. Low-rank factorization splits one Dense into two,
layer pruning removes a block, QAT's strip unwraps, `fold_batchnorm` removes
BatchNormalization and changes its producer's weights: all through `rewrite`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import keras
import numpy as np

from tinycompress.core.graph import LayerCall, LayerGraph, input_name
from tinycompress.errors import UnsupportedLayerError

__all__ = ["Replacement", "ReplaceFn", "rewrite", "copy_layer"]


@dataclass(frozen=True)
class Replacement:
    """What one layer becomes.

    Attributes:
        layers: the new layers, called one after the other on the original
            layer's inputs; empty removes the layer (its single input passes through).
        weights: None, or one entry per layer: the weights to set after the
            layer is first called (None keeps its initial weights).
        keep_input: with no layers, which input of a multi-input layer passes
            through (e.g. 0 for the skip connection of a residual ``Add``:
            the branch then feeds nothing and leaves the model). Default None.
    """

    layers: tuple[keras.layers.Layer, ...] = ()
    weights: tuple[Sequence[np.ndarray] | None, ...] | None = None
    keep_input: int | None = None

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.layers):
            raise UnsupportedLayerError(
                f"a Replacement needs one weights entry per layer: {len(self.layers)} layers, "
                f"{len(self.weights)} weight lists. Pass None for a layer that keeps its own."
            )


#: ``replace(layer)`` returns None (keep the layer), a layer, a list of layers
#: (an empty list removes the layer) or a `Replacement`.
ReplaceFn = Callable[[keras.layers.Layer], Union[None, keras.layers.Layer, Sequence, Replacement]]


def copy_layer(layer: keras.layers.Layer) -> Replacement:
    """A fresh copy of `layer` from its config that gets the same weights.

    The copy has none of the run-time state techniques attach to variables
    (constraints, regularizers set during `fit`).

    Example:
        >>> d = keras.layers.Dense(2, name="d"); d.build((None, 3))
        >>> r = copy_layer(d)
        >>> r.layers[0] is not d, r.layers[0].name, len(r.weights[0])
        (True, 'd', 2)
    """
    new = layer.__class__.from_config(layer.get_config())
    return Replacement((new,), (layer.get_weights() if layer.weights else None,))


def _normalize(result: Any) -> Replacement | None:
    if result is None or isinstance(result, Replacement):
        return result
    if isinstance(result, keras.layers.Layer):
        return Replacement((result,))
    if isinstance(result, (list, tuple)) and all(isinstance(l, keras.layers.Layer) for l in result):
        return Replacement(tuple(result))
    raise UnsupportedLayerError(
        "a replace function must return None, a layer, a list of layers or a Replacement. "
        f"Received: {type(result).__name__}."
    )


class _Rewriter:
    """Plans each layer's replacement once and calls it for every call of the layer."""

    def __init__(self, replace: ReplaceFn | None, copy: bool) -> None:
        self.replace, self.copy = replace, copy
        self.plans: dict[int, Replacement] = {}
        self.pending: dict[int, Sequence[np.ndarray]] = {}

    def plan(self, layer: keras.layers.Layer) -> Replacement:
        if id(layer) not in self.plans:
            chosen = _normalize(self.replace(layer)) if self.replace is not None else None
            if chosen is None and isinstance(layer, keras.Model):
                chosen = Replacement((self.model(layer),))
            elif chosen is None:
                chosen = copy_layer(layer) if self.copy else Replacement((layer,))
            for new, weights in zip(chosen.layers, chosen.weights or ()):
                if weights is not None:
                    self.pending[id(new)] = weights
            self.plans[id(layer)] = chosen
        return self.plans[id(layer)]

    def __call__(self, call: LayerCall, args: tuple, kwargs: dict):
        chosen = self.plan(call.layer)
        if not chosen.layers:
            tensors = keras.tree.flatten(args)
            if chosen.keep_input is not None and 0 <= chosen.keep_input < len(tensors):
                return tensors[chosen.keep_input]
            if len(tensors) != 1:
                raise UnsupportedLayerError(
                    f"cannot remove layer {call.layer.name!r} ({type(call.layer).__name__}): it "
                    f"reads {len(tensors)} tensors; say which passes through with "
                    "Replacement(keep_input=i), or replace it by a layer."
                )
            return tensors[0]
        # Call options (training=, mask=, ...) belong to the original layer's class.
        same = type(chosen.layers[0]) is type(call.layer)
        y = chosen.layers[0](*args, **kwargs) if same else chosen.layers[0](*args)
        for layer in chosen.layers[1:]:
            y = layer(y)
        for layer in chosen.layers:
            weights = self.pending.pop(id(layer), None)
            if weights is not None:
                layer.set_weights(list(weights))
        return y

    def model(self, model: keras.Model, name: str | None = None) -> keras.Model:
        graph = LayerGraph(model)
        new = graph.rebuild(self, name=name or model.name)
        if not isinstance(model, keras.Sequential):
            return new
        spec = graph.model.inputs[0]
        layers = [l for l in new.layers if not isinstance(l, keras.layers.InputLayer)]
        first = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=input_name(spec))
        return keras.Sequential([first, *layers], name=new.name)


def rewrite(
    model: keras.Model,
    replace: ReplaceFn | None = None,
    *,
    copy: bool = True,
    name: str | None = None,
) -> keras.Model:
    """Return a new model in which `replace` decides what every layer becomes.

    `replace` is asked once per layer (a shared layer once for all its calls;
    layers of a nested model when that model is kept, which rewrites it
    recursively). Layers it keeps are fresh copies with the same weights
    (``copy=True``) or the very same objects (``copy=False``: the new model
    shares them, e.g. to wrap layers for training).

    Args:
        model: a Sequential or Functional model with a defined input.
        replace: ``replace(layer)`` -> None (keep), a layer, a list of layers
            (called in a chain; empty removes a single-input layer) or a
            `Replacement` (layers plus the weights they get). Default None:
            keep everything (a plain copy).
        copy: kept layers are copies (default True) or shared.
        name: the new model's name. Default: `model`'s.

    Returns:
        An uncompiled model of the same kind (Sequential stays Sequential).

    Raises:
        UnsupportedLayerError: a subclassed model, a Sequential model without
            an input, or the removal of a layer with several inputs.

    Example:
        >>> import numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
        ...                       keras.layers.Dropout(0.5), keras.layers.Dense(2, name="b")])
        >>> r = rewrite(m, lambda l: [] if isinstance(l, keras.layers.Dropout) else None)
        >>> [l.name for l in r.layers], type(r).__name__
        (['a', 'b'], 'Sequential')
        >>> x = np.ones((1, 4), "float32")
        >>> bool(np.allclose(r(x), m(x)))
        True
    """
    return _Rewriter(replace, copy).model(model, name)
