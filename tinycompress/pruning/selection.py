"""Which layers and variables are pruned.

A layer is prunable if it is a Keras Dense, Conv1D, Conv2D, DepthwiseConv1D,
DepthwiseConv2D, SeparableConv1D or SeparableConv2D, or if it defines
``get_prunable_weights() -> list[keras.Variable]`` (the escape hatch for
wrappers such as QAT layers and for user layers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Union

import keras

from tinycompress.errors import PruningError

__all__ = ["PRUNABLE_TYPES", "LayerSelector", "is_prunable", "prunable_weights", "select_layers"]

L = keras.layers
#: Layer classes pruned by default (their kernels only; biases stay dense).
PRUNABLE_TYPES: tuple[type, ...] = (
    L.Dense, L.Conv1D, L.Conv2D, L.DepthwiseConv1D, L.DepthwiseConv2D,
    L.SeparableConv1D, L.SeparableConv2D,
)

#: None (all prunable layers), layer names, layer classes, or a predicate on a layer.
LayerSelector = Union[None, str, Sequence[str], type, tuple, Callable[[keras.layers.Layer], bool]]


def is_prunable(layer: keras.layers.Layer) -> bool:
    """Whether `layer` has kernels this package can prune.

    Example:
        >>> is_prunable(keras.layers.Dense(3)), is_prunable(keras.layers.ReLU())
        (True, False)
    """
    return callable(getattr(layer, "get_prunable_weights", None)) or isinstance(layer, PRUNABLE_TYPES)


def prunable_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    """The kernels of `layer` that masks apply to.

    Args:
        layer: a built prunable layer.

    Returns:
        `layer.get_prunable_weights()` when the layer defines it; otherwise the
        kernel (both kernels of a separable convolution).

    Raises:
        PruningError: the layer is not prunable or not built.

    Example:
        >>> d = keras.layers.Dense(3); d.build((None, 4))
        >>> [tuple(v.shape) for v in prunable_weights(d)]
        [(4, 3)]
    """
    if callable(getattr(layer, "get_prunable_weights", None)):
        return list(layer.get_prunable_weights())
    if not isinstance(layer, PRUNABLE_TYPES):
        raise PruningError(
            f"Layer {layer.name!r} ({type(layer).__name__}) is not prunable: expected one of "
            f"{[t.__name__ for t in PRUNABLE_TYPES]} or a layer defining get_prunable_weights()."
        )
    if not layer.built:
        raise PruningError(
            f"Layer {layer.name!r} is not built; build the model (call it once or give it an "
            "Input) before pruning."
        )
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    kernel = getattr(layer, "_kernel", None)
    return [layer.kernel if kernel is None else kernel]


def _walk(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for layer in getattr(model, "layers", []):
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def select_layers(model: keras.Model, layers: LayerSelector = None) -> list[keras.layers.Layer]:
    """Resolve a layer selector to the prunable layers of `model` (nested models included).

    Args:
        model: the model to prune.
        layers: None (default: every prunable layer), a name or list of names,
            a layer class or tuple of classes, or a predicate ``f(layer) -> bool``.
            Only prunable layers are ever selected.

    Returns:
        The selected layers, in model order.

    Raises:
        PruningError: a named layer does not exist or is not prunable, or
            nothing is selected.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
        ...                       keras.layers.Dense(2, name="b")])
        >>> [l.name for l in select_layers(m)], [l.name for l in select_layers(m, "b")]
        (['a', 'b'], ['b'])
    """
    candidates = [l for l in _walk(model) if is_prunable(l)]
    if layers is None:
        chosen = candidates
    elif isinstance(layers, str) or (
        isinstance(layers, Sequence) and all(isinstance(n, str) for n in layers)
    ):
        names = [layers] if isinstance(layers, str) else list(layers)
        by_name = {l.name: l for l in _walk(model)}
        for n in names:
            if n not in by_name:
                raise PruningError(
                    f"No layer named {n!r} in model {model.name!r}. Layers: {sorted(by_name)}."
                )
            if not is_prunable(by_name[n]):
                raise PruningError(
                    f"Layer {n!r} ({type(by_name[n]).__name__}) is not prunable: expected one of "
                    f"{[t.__name__ for t in PRUNABLE_TYPES]} or a layer defining "
                    "get_prunable_weights()."
                )
        chosen = [l for l in candidates if l.name in names]
    elif isinstance(layers, type) or (
        isinstance(layers, tuple) and all(isinstance(t, type) for t in layers)
    ):
        chosen = [l for l in candidates if isinstance(l, layers)]
    elif callable(layers):
        chosen = [l for l in candidates if layers(l)]
    else:
        raise PruningError(
            "`layers` must be None, a layer name, a list of names, a layer class (or tuple) "
            f"or a predicate. Received: layers={layers!r}."
        )
    if not chosen:
        raise PruningError(
            f"No prunable layer selected in model {model.name!r} by layers={layers!r}; "
            f"prunable layers are {[l.name for l in candidates]}."
        )
    return chosen
