"""`QuantizeWrapper`: run a Conv/Depthwise/Dense layer with an int8 kernel.

The wrapper owns the float layer (whose kernel keeps training), fake-quantizes
its kernel on every call, computes the layer with that kernel and applies the
layer's activation. Output ranges are separate `ActivationQuantizer` layers in
the graph (placed by `quantize_model`). Pruning and clustering reach the float
kernel through `get_prunable_weights`.
"""

from __future__ import annotations

import keras
from keras import ops

from tinycompress.core import kernels
from tinycompress.errors import UnsupportedLayerError
from tinycompress.quantization.quantizers import fake_quant_kernel

__all__ = ["WRAPPABLE_LAYERS", "FUSED_ACTIVATIONS", "SPLIT_ACTIVATIONS", "QuantizeWrapper"]

#: Layers whose op `QuantizeWrapper._linear` computes (FULLY_CONNECTED, CONV_2D,
#: DEPTHWISE_CONV_2D). This is the wrapper's capability, not a kernel table:
#: which variables are kernels comes from `tinycompress.core`.
WRAPPABLE_LAYERS = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Dense,
)
#: Activations TFLite fuses into the layer (the output range is taken after them).
FUSED_ACTIVATIONS = ("linear", "relu", "relu6")
#: Activations `quantize_model` splits off into their own layer (TFLite runs
#: them as SOFTMAX, LOGISTIC and TANH ops with fixed output ranges).
SPLIT_ACTIVATIONS = ("softmax", "sigmoid", "tanh")


def activation_name(layer: keras.layers.Layer) -> str:
    """Serialized name of a layer's ``activation`` (e.g. ``"relu"``)."""
    name = keras.activations.serialize(layer.activation)
    return name if isinstance(name, str) else str(name)


def wrap_problems(layer: keras.layers.Layer, *, allow_split: bool = False) -> list[str]:
    """Reasons `layer` cannot be wrapped (empty when it can).

    Args:
        layer: the layer to check.
        allow_split: accept a softmax, sigmoid or tanh activation
            (`quantize_model` splits it off into its own layer). Default False.

    Returns:
        One line per problem.
    """
    problems = []
    if not isinstance(layer, WRAPPABLE_LAYERS) or isinstance(
        layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
    ):
        problems.append(f"{type(layer).__name__} has no int8 QAT kernel here")
        return problems
    act = activation_name(layer)
    if act not in FUSED_ACTIVATIONS and not (allow_split and act in SPLIT_ACTIVATIONS):
        problems.append(f"activation '{act}' (use linear, relu, relu6, sigmoid, tanh or softmax)")
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        problems.append("data_format='channels_first' (TFLite runs channels_last)")
    if getattr(layer, "groups", 1) != 1:
        problems.append(f"groups={layer.groups} (grouped convolution)")
    return problems


@keras.saving.register_keras_serializable(package="tinycompress")
class QuantizeWrapper(keras.layers.Wrapper):
    """Simulate TFLite int8 inference of a Conv1D/Conv2D/DepthwiseConv2D/Dense layer.

    Args:
        layer: the float layer to wrap (see `WRAPPABLE_LAYERS`).
        per_channel: quantize the kernel per output channel. Default True
            (TFLite does so for convolutions; pass False for per-tensor Dense).
        **kwargs: `keras.layers.Layer` arguments (``name``...).

    Raises:
        UnsupportedLayerError: the layer type, activation, data format or
            groups cannot be simulated.

    Example:
        >>> import keras, numpy as np
        >>> w = QuantizeWrapper(keras.layers.Dense(2), per_channel=False)
        >>> y = w(np.ones((1, 3), "float32"))
        >>> [v.name for v in w.get_compressible_weights()]
        ['kernel']
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        per_channel: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(layer, **kwargs)
        problems = wrap_problems(layer)
        if problems:
            raise UnsupportedLayerError(
                f"cannot quantize layer '{layer.name}': {'; '.join(problems)}. "
                "Change the layer or keep it out of quantize_model."
            )
        self.per_channel = bool(per_channel)

    def get_compressible_weights(self) -> list:
        """The float kernel, for pruning and clustering (the core's layer protocol)."""
        return [k.variable for k in kernels(self.layer)]

    #: The protocol's older name.
    get_prunable_weights = get_compressible_weights

    def _kernel(self):
        layer = self.layer
        kernel = layer.kernel
        if isinstance(layer, keras.layers.Conv1D):
            # TFLite runs Conv1D as CONV_2D on (1, k, in, out) kernels; quantize
            # that tensor so the per-channel axis is the converter's.
            kernel = ops.expand_dims(kernel, 0)
        return fake_quant_kernel(
            kernel,
            per_channel=self.per_channel,
            depthwise=isinstance(layer, keras.layers.DepthwiseConv2D),
        )

    def _linear(self, x, kernel):
        layer = self.layer
        if isinstance(layer, keras.layers.Dense):
            y = ops.matmul(x, kernel)
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                   dilation_rate=layer.dilation_rate)
        elif isinstance(layer, keras.layers.Conv1D):
            padding = layer.padding
            if padding == "causal":
                left = layer.dilation_rate[0] * (layer.kernel_size[0] - 1)
                x = ops.pad(x, [[0, 0], [left, 0], [0, 0]])
                padding = "valid"
            y = ops.conv(ops.expand_dims(x, 1), kernel, strides=[1, layer.strides[0]],
                         padding=padding, dilation_rate=[1, layer.dilation_rate[0]])
            y = ops.squeeze(y, 1)
        else:
            y = ops.conv(x, kernel, strides=list(layer.strides), padding=layer.padding,
                         dilation_rate=layer.dilation_rate)
        return y + layer.bias if layer.use_bias else y

    def call(self, inputs):
        return self.layer.activation(self._linear(inputs, self._kernel()))

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def calibrated_export(self) -> keras.layers.Layer:
        """The plain layer with its kernel on the int8 grid (see `tinycompress.recurrent`).

        The converter's per-tensor / per-channel scale of a grid kernel is
        the grid's, so the int8 weights are the trained ones.
        """
        inner = self.layer
        new = inner.__class__.from_config(inner.get_config())
        kernel = ops.convert_to_numpy(ops.reshape(self._kernel(), tuple(inner.kernel.shape)))
        new.build((None,) * (len(kernel.shape) - 1) + (kernel.shape[-2],))
        new.set_weights([kernel] + [ops.convert_to_numpy(w) for w in inner.weights[1:]])
        return new

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "per_channel": self.per_channel,
        }
