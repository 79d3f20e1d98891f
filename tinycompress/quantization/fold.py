"""Fold BatchNormalization into the Conv/Depthwise/Dense layer before it.

At inference a BatchNormalization after a linear layer is an affine map per
output channel, ``y = g * (x - mean) / sqrt(var + eps) + b``, so it can be
absorbed into that layer's kernel and bias. The folded model computes the same
function (within float rounding) with one layer less, which is what the TFLite
converter emits anyway; quantization-aware training, export and pruning surgery
all start from the folded model.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from tinycompress.core import KERNEL_TABLE, LayerCall, LayerGraph, Replacement, layer_kernels, rewrite

__all__ = ["FOLDABLE_LAYERS", "fold_batchnorm", "foldable_pairs"]

logger = logging.getLogger(__name__)

#: Layers a following BatchNormalization can be folded into: the kernel table's
#: Dense, convolution, depthwise and separable layers (output channels last).
FOLDABLE_LAYERS = tuple(
    cls for cls, row in KERNEL_TABLE.items() if row.kind in ("dense", "conv", "depthwise", "separable"))


def _is_linear(layer: keras.layers.Layer) -> bool:
    return keras.activations.serialize(layer.activation) == "linear"


def _channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _bn_on_last_axis(bn: keras.layers.BatchNormalization, rank: int) -> bool:
    axes = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    return len(axes) == 1 and axes[0] % rank == rank - 1


def foldable_pairs(graph: LayerGraph) -> dict[int, LayerCall]:
    """BatchNormalization calls that can be folded, keyed by id of the BN layer.

    A BatchNormalization (on the channel axis) folds into the call producing its
    input when that call is the only call of a `FOLDABLE_LAYERS` layer with a
    linear activation and channels-last data, and the BN is the only reader of
    its output.

    Args:
        graph: the model graph.

    Returns:
        id(bn layer) -> the producing `LayerCall`.
    """
    pairs: dict[int, LayerCall] = {}
    for call in graph.calls:
        bn = call.layer
        if not isinstance(bn, keras.layers.BatchNormalization) or len(graph.calls_of[id(bn)]) != 1:
            continue
        prod = graph.producers.get(id(call.inputs[0]))
        if (
            prod is not None
            and isinstance(prod.layer, FOLDABLE_LAYERS)
            and len(graph.calls_of[id(prod.layer)]) == 1
            and _is_linear(prod.layer)
            and _channels_last(prod.layer)
            and graph.sole_consumer(call.inputs[0]) is call
            and _bn_on_last_axis(bn, len(call.inputs[0].shape))
        ):
            pairs[id(bn)] = prod
    return pairs


def _bn_affine(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    mean = keras.ops.convert_to_numpy(bn.moving_mean).astype(np.float64)
    var = keras.ops.convert_to_numpy(bn.moving_variance).astype(np.float64)
    gamma = keras.ops.convert_to_numpy(bn.gamma).astype(np.float64) if bn.scale else 1.0
    beta = keras.ops.convert_to_numpy(bn.beta).astype(np.float64) if bn.center else 0.0
    scale = gamma / np.sqrt(var + bn.epsilon)
    return scale * np.ones_like(mean), beta - mean * scale


def _folded_weights(layer: keras.layers.Layer, scale: np.ndarray, shift: np.ndarray) -> list:
    """`layer.get_weights()` with ``scale * out + shift`` absorbed (a bias always last)."""
    np_ = keras.ops.convert_to_numpy
    bias = np_(layer.bias).astype(np.float64) if layer.use_bias else 0.0
    new_bias = (bias * scale + shift).astype(np.float32)
    kind = layer_kernels(layer).kind
    if kind == "separable":
        pw = np_(layer.pointwise_kernel) * scale.astype(np.float32)
        return [np_(layer.depthwise_kernel), pw, new_bias]
    kernel = np_(layer.kernel)
    if kind == "depthwise":
        # Output channel c * depth_multiplier + m comes from kernel[..., c, m].
        kernel = kernel * scale.reshape(kernel.shape[-2:]).astype(np.float32)
    else:
        kernel = kernel * scale.astype(np.float32)
    return [kernel, new_bias]


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """Return a copy of `model` with BatchNormalization folded into the layer before.

    Every BatchNormalization that follows a Dense, Conv, DepthwiseConv or
    SeparableConv layer (`FOLDABLE_LAYERS`; linear activation, channels last,
    output read only by the BN) is removed and its moving statistics are absorbed into
    that layer's kernel and bias (a bias is added when the layer had none).
    Other BatchNormalization layers are kept and logged. The input model is not
    modified; the copy has new layers with copied weights.

    Args:
        model: a Functional or Sequential Keras model.

    Returns:
        A model of the same kind (Sequential or Functional) computing the
        same outputs (within float rounding).

    Raises:
        UnsupportedLayerError: the model is subclassed or has no defined input.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
        ...                       keras.layers.BatchNormalization()])
        >>> folded = fold_batchnorm(m)
        >>> [type(l).__name__ for l in folded.layers]
        ['Dense']
        >>> x = np.ones((2, 4), "float32")
        >>> bool(np.allclose(m(x), folded(x), atol=1e-5))
        True
    """
    graph = LayerGraph(model)
    pairs = foldable_pairs(graph)
    layers = {id(c.layer): c.layer for c in graph.calls}
    bn_of = {id(prod.layer): layers[bn_id] for bn_id, prod in pairs.items()}

    def fold(layer: keras.layers.Layer) -> Replacement | list | None:
        if id(layer) in pairs:
            return []
        bn = bn_of.get(id(layer))
        if bn is None:
            return None
        config = layer.get_config()
        config["use_bias"] = True
        return Replacement((layer.__class__.from_config(config),), (_folded_weights(layer, *_bn_affine(bn)),))

    result = rewrite(model, fold)
    left = [c.layer.name for c in graph.calls
            if isinstance(c.layer, keras.layers.BatchNormalization) and id(c.layer) not in pairs]
    logger.info("folded %d BatchNormalization layers; kept %s", len(pairs), left or "none")
    return result
