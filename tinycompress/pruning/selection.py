"""Which layers and variables are pruned: the core's kernel table, Dense, convolutions, RNNs.

A layer is prunable if it is a Dense, Conv1D/2D/3D, DepthwiseConv1D/2D,
SeparableConv1D/2D, LSTM, GRU or SimpleRNN layer (`tinycompress.core.KERNEL_TABLE`,
kinds `PRUNABLE_KINDS`: a recurrent layer's input and recurrent kernels), or if it defines ``get_compressible_weights()`` (or the
older ``get_prunable_weights()``): the escape hatch for wrappers such as QAT
layers and for user layers.
"""

from __future__ import annotations

import keras

from tinycompress import core
from tinycompress.core import LayerSelector
from tinycompress.errors import PruningError

__all__ = ["PRUNABLE_KINDS", "PRUNABLE_TYPES", "LayerSelector", "is_prunable", "prunable_weights", "select_layers"]

#: Kernel-table kinds pruned: Dense, convolutions and recurrent layers.
PRUNABLE_KINDS = core.LINEAR_KINDS + ("recurrent",)
#: Layer classes pruned by default (their kernels only; biases stay dense).
PRUNABLE_TYPES: tuple[type, ...] = tuple(
    cls for cls, row in core.KERNEL_TABLE.items() if row.kind in PRUNABLE_KINDS)


def is_prunable(layer: keras.layers.Layer) -> bool:
    """Whether `layer` has kernels this package can prune.

    Example:
        >>> is_prunable(keras.layers.Dense(3)), is_prunable(keras.layers.ReLU())
        (True, False)
    """
    return core.is_compressible(layer, PRUNABLE_KINDS)


def prunable_weights(layer: keras.layers.Layer) -> list[keras.Variable]:
    """The kernels of `layer` that masks apply to.

    Args:
        layer: a built prunable layer.

    Returns:
        The layer's protocol weights when it defines the protocol; otherwise
        its kernel (both kernels of a separable convolution).

    Raises:
        PruningError: the layer is not prunable.
        UnsupportedLayerError: the layer is not built.

    Example:
        >>> d = keras.layers.Dense(3); d.build((None, 4))
        >>> [tuple(v.shape) for v in prunable_weights(d)]
        [(4, 3)]
    """
    if not is_prunable(layer):
        raise PruningError(
            f"Layer {layer.name!r} ({type(layer).__name__}) is not prunable: expected one of "
            f"{[t.__name__ for t in PRUNABLE_TYPES]} or a layer defining get_compressible_weights()."
        )
    return [k.variable for k in core.kernels(layer)]


def select_layers(model: keras.Model, layers: LayerSelector = None) -> list[keras.layers.Layer]:
    """Resolve a layer selector to the prunable layers of `model` (nested models included).

    Args:
        model: the model to prune.
        layers: None (default: every prunable layer), a name or list of names,
            a layer class or tuple of classes, or a predicate ``f(layer) -> bool``
            (see `tinycompress.core.select_layers`).

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
    return core.select_layers(model, layers, kinds=PRUNABLE_KINDS, verb="pruned", error=PruningError)
