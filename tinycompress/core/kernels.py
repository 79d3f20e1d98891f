"""The one table of compressible kernels, and the protocol for user layers.

Every technique asks this module which variables of a layer it may rewrite
(pruning masks them, clustering shares their values, QAT fake-quantizes them,
low-rank factorizes them) and how their output channels are laid out. A layer
outside the table takes part by defining
``get_compressible_weights() -> list[keras.Variable]`` (``get_prunable_weights``
is accepted as the older name of the same protocol); wrappers that define it
(e.g. `QuantizeWrapper`) are looked through to their inner layer for the
channel layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

__all__ = [
    "KernelSpec",
    "LayerKernels",
    "Kernel",
    "KERNEL_TABLE",
    "LINEAR_KINDS",
    "PROTOCOL_METHODS",
    "base_layer",
    "layer_kernels",
    "kernels",
    "is_compressible",
]

L = keras.layers


@dataclass(frozen=True)
class KernelSpec:
    """Where one kernel of a table layer lives and how its channels are laid out.

    Attributes:
        attr: attribute path of the variable (``"cell.kernel"`` for recurrent layers).
        depthwise: output channels span the last two axes (``in * multiplier``,
            TFLite's order ``c * multiplier + m``).
        channel_axis: axis of the output channels when not depthwise (-1, or -2
            for transposed convolutions).
    """

    attr: str
    depthwise: bool = False
    channel_axis: int = -1


@dataclass(frozen=True)
class LayerKernels:
    """One row of `KERNEL_TABLE`.

    Attributes:
        kind: ``"dense"``, ``"conv"``, ``"depthwise"``, ``"separable"``,
            ``"transpose"``, ``"embedding"`` or ``"recurrent"``.
        width: config key of the output width (``"units"``, ``"filters"``,
            ``"output_dim"``), or None.
        kernels: the layer's compressible kernels (biases never are).
    """

    kind: str
    width: str | None
    kernels: tuple[KernelSpec, ...]


_K, _DW = (KernelSpec("kernel"),), (KernelSpec("kernel", depthwise=True),)
_SEP = (KernelSpec("depthwise_kernel", depthwise=True), KernelSpec("pointwise_kernel"))
_RNN = (KernelSpec("cell.kernel"), KernelSpec("cell.recurrent_kernel"))

#: Layer class -> its kernels, checked in order with `isinstance`.
KERNEL_TABLE: dict[type, LayerKernels] = {
    L.Dense: LayerKernels("dense", "units", _K),
    L.Conv1D: LayerKernels("conv", "filters", _K),
    L.Conv2D: LayerKernels("conv", "filters", _K),
    L.Conv3D: LayerKernels("conv", "filters", _K),
    L.DepthwiseConv1D: LayerKernels("depthwise", None, _DW),
    L.DepthwiseConv2D: LayerKernels("depthwise", None, _DW),
    L.SeparableConv1D: LayerKernels("separable", "filters", _SEP),
    L.SeparableConv2D: LayerKernels("separable", "filters", _SEP),
    L.Conv1DTranspose: LayerKernels("transpose", "filters", (KernelSpec("kernel", channel_axis=-2),)),
    L.Conv2DTranspose: LayerKernels("transpose", "filters", (KernelSpec("kernel", channel_axis=-2),)),
    L.Embedding: LayerKernels("embedding", "output_dim", (KernelSpec("embeddings"),)),
    L.LSTM: LayerKernels("recurrent", "units", _RNN),
    L.GRU: LayerKernels("recurrent", "units", _RNN),
    L.SimpleRNN: LayerKernels("recurrent", "units", _RNN),
}

#: Kinds whose kernels pruning and clustering handle by default (Dense and convolutions).
LINEAR_KINDS = ("dense", "conv", "depthwise", "separable")

#: Methods of the user-layer protocol, preferred name first.
PROTOCOL_METHODS = ("get_compressible_weights", "get_prunable_weights")


@dataclass(frozen=True)
class Kernel:
    """A compressible variable of a layer, with its channel layout.

    Attributes:
        variable: the `keras.Variable`.
        kind: row kind of the layer that owns it (see `LayerKernels`), or
            ``"custom"`` for a protocol layer outside the table.
        depthwise: output channels span the last two axes.
        channel_axis: output-channel axis when not depthwise.
    """

    variable: keras.Variable
    kind: str
    depthwise: bool = False
    channel_axis: int = -1

    @property
    def channels(self) -> int:
        """Number of output channels (1 for a scalar or vector)."""
        shape = tuple(self.variable.shape)
        if len(shape) < 2:
            return 1
        return int(shape[-1] * shape[-2]) if self.depthwise else int(shape[self.channel_axis])


def _protocol(layer) -> list | None:
    for method in PROTOCOL_METHODS:
        fn = getattr(layer, method, None)
        if callable(fn):
            return list(fn())
    return None


def _has_protocol(layer) -> bool:
    return any(callable(getattr(layer, m, None)) for m in PROTOCOL_METHODS)


def layer_kernels(layer: keras.layers.Layer) -> LayerKernels | None:
    """The `KERNEL_TABLE` row of `layer` (wrappers are not looked through), or None.

    Example:
        >>> layer_kernels(keras.layers.Conv2D(4, 3)).kind, layer_kernels(keras.layers.ReLU())
        ('conv', None)
    """
    for cls, row in KERNEL_TABLE.items():
        if isinstance(layer, cls):
            return row
    return None


def base_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """The layer under `keras.layers.Wrapper` chains (the layer itself if none).

    Example:
        >>> base_layer(keras.layers.TimeDistributed(keras.layers.Dense(2))).__class__.__name__
        'Dense'
    """
    while layer_kernels(layer) is None and isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        layer = layer.layer
    return layer


def is_compressible(layer: keras.layers.Layer, kinds: tuple[str, ...] | None = None) -> bool:
    """Whether `layer` has kernels a technique may rewrite.

    Args:
        layer: any Keras layer.
        kinds: accept only table rows of these kinds (protocol layers are
            always accepted). Default None: every row.

    Returns:
        True for table layers (of `kinds`) and protocol layers.

    Example:
        >>> is_compressible(keras.layers.LSTM(2)), is_compressible(keras.layers.LSTM(2), LINEAR_KINDS)
        (True, False)
    """
    if _has_protocol(layer):
        return True
    row = layer_kernels(layer)
    return row is not None and (kinds is None or row.kind in kinds)


def _resolve(layer, attr: str):
    owner = layer
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    # Keras keeps the variable in `_kernel` when `kernel` is a computed property
    # (LoRA); the variable is what techniques must rewrite.
    private = getattr(owner, f"_{name}", None)
    return private if isinstance(private, keras.Variable) else getattr(owner, name)


def kernels(layer: keras.layers.Layer) -> list[Kernel]:
    """The compressible kernels of a built layer.

    Args:
        layer: a built table layer, protocol layer or wrapper defining the protocol.

    Returns:
        One `Kernel` per variable: the protocol's variables when the layer
        defines it (laid out as the wrapped table layer lays them out),
        otherwise the table row's kernels. Empty for other layers.

    Raises:
        UnsupportedLayerError: the layer is in the table but not built.

    Example:
        >>> s = keras.layers.SeparableConv2D(4, 3); s.build((None, 8, 8, 2))
        >>> [(k.variable.name, k.depthwise, k.channels) for k in kernels(s)]
        [('depthwise_kernel', True, 2), ('pointwise_kernel', False, 4)]
    """
    from tinycompress.errors import UnsupportedLayerError

    base = base_layer(layer)
    row = layer_kernels(base)
    if row is not None and not base.built:
        raise UnsupportedLayerError(
            f"layer {base.name!r} ({type(base).__name__}) is not built; call the model once or "
            "start it with keras.Input(shape) before compressing it."
        )
    table = {}
    if row is not None:
        for spec in row.kernels:
            var = _resolve(base, spec.attr)
            table[id(var)] = Kernel(var, row.kind, spec.depthwise, spec.channel_axis)
    chosen = _protocol(layer)
    if chosen is None:
        return list(table.values())
    return [table.get(id(v), Kernel(v, "custom")) for v in chosen]
