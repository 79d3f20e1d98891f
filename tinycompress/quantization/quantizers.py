"""Fake quantization of activations and weights as TFLite's int8 scheme does it.

Activations: asymmetric int8 over a range ``[min, max]`` (always containing 0)
tracked by an exponential moving average of batch minima and maxima during
training. Weights: symmetric, narrow range (``[-127, 127]``), per output channel
for convolutions, per tensor or per channel for Dense, from the current kernel.
Both use `keras.quantizers.fake_quant_with_min_max_vars`, which on the
TensorFlow backend emits the ``FakeQuantWithMinMaxVars*`` ops the TFLite
converter reads the int8 scales from.
"""

from __future__ import annotations

import keras
from keras import ops

from tinycompress.errors import QuantizationError

__all__ = ["ActivationQuantizer", "FixedRangeQuantizer", "FIXED_RANGES", "fake_quant_kernel", "int8_scale"]

#: Smallest width of an activation range, so an all-zero tensor still has a scale.
MIN_RANGE = 1e-6


def int8_scale(minimum: float, maximum: float) -> float:
    """Scale TFLite gives an int8 tensor whose fake-quant range is ``[minimum, maximum]``.

    Args:
        minimum: range minimum (<= 0).
        maximum: range maximum (>= 0).

    Returns:
        ``(maximum - minimum) / 255``.

    Example:
        >>> round(int8_scale(-1.0, 1.55), 6)
        0.01
    """
    return (float(maximum) - float(minimum)) / 255.0


@keras.saving.register_keras_serializable(package="tinycompress")
class ActivationQuantizer(keras.layers.Layer):
    """Fake-quantize a tensor to int8 over a moving-average range.

    In training the batch minimum and maximum (widened to contain 0) update
    ``min``/``max`` by an exponential moving average (the first batch sets
    them); the tensor is then fake-quantized with the updated range. In
    inference, or when called with ``update=False`` (a second use of the same
    range, as AveragePooling's output shares its input's), the stored range is
    used. ``frozen`` (set by `QATCallback` or
    `freeze`) stops the updates. The range becomes the int8 scale and zero point
    of the tensor in the converted TFLite model.

    Args:
        ema_decay: weight of the old range in each update, in [0, 1). Default 0.99.
        **kwargs: `keras.layers.Layer` arguments (``name``...).

    Raises:
        QuantizationError: `ema_decay` is outside [0, 1).

    Example:
        >>> import numpy as np
        >>> q = ActivationQuantizer()
        >>> y = q(np.array([[-1.0, 0.3, 2.0]], "float32"), training=True)
        >>> [round(float(v), 4) for v in q.range]
        [-1.0, 2.0]
    """

    def __init__(self, ema_decay: float = 0.99, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(ema_decay) < 1.0:
            raise QuantizationError(
                f"expected ema_decay in [0, 1). Received: ema_decay={ema_decay!r}; "
                "use e.g. 0.99 (larger = slower range updates)."
            )
        self.ema_decay = float(ema_decay)

    def build(self, input_shape) -> None:
        def scalar(name: str, value: float):
            return self.add_weight(
                name=name, shape=(), initializer=keras.initializers.Constant(value),
                trainable=False,
            )

        self.min = scalar("min", -6.0)
        self.max = scalar("max", 6.0)
        self.initialized = scalar("initialized", 0.0)
        self.frozen = scalar("frozen", 0.0)

    @property
    def range(self) -> tuple[float, float]:
        """The current ``(min, max)`` as Python floats."""
        return float(ops.convert_to_numpy(self.min)), float(ops.convert_to_numpy(self.max))

    def freeze(self, frozen: bool = True) -> None:
        """Stop (or resume) range updates during training.

        Args:
            frozen: True to keep the range fixed. Default True.
        """
        self.frozen.assign(1.0 if frozen else 0.0)

    def call(self, inputs, training=None, update=True):
        if training and update:
            x = ops.stop_gradient(inputs)
            batch_min = ops.minimum(ops.min(x), 0.0)
            batch_max = ops.maximum(ops.max(x), 0.0)
            d, init, keep = self.ema_decay, self.initialized, self.frozen
            ema_min = init * (d * self.min + (1.0 - d) * batch_min) + (1.0 - init) * batch_min
            ema_max = init * (d * self.max + (1.0 - d) * batch_max) + (1.0 - init) * batch_max
            new_min = keep * self.min + (1.0 - keep) * ema_min
            new_max = keep * self.max + (1.0 - keep) * ema_max
            new_max = ops.maximum(new_max, new_min + MIN_RANGE)
            self.min.assign(new_min)
            self.max.assign(new_max)
            self.initialized.assign(ops.maximum(init, 1.0 - keep))
            lo, hi = new_min, new_max
        else:
            lo, hi = self.min, self.max
        return keras.quantizers.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8)

    def compute_output_shape(self, input_shape):
        return input_shape

    def calibrated_export(self) -> keras.layers.Layer:
        """An identity: the converter calibrates this range (see `tinycompress.recurrent`)."""
        return keras.layers.Identity(name=self.name)

    def get_config(self) -> dict:
        return {**super().get_config(), "ema_decay": self.ema_decay}


#: int8 ranges TFLite fixes for the outputs of LOGISTIC (scale 1/256, zero
#: point -128) and TANH (scale 1/128, zero point 0), as fake-quant ``(min, max)``.
FIXED_RANGES = {"sigmoid": (0.0, 255.0 / 256.0), "tanh": (-1.0, 127.0 / 128.0)}


@keras.saving.register_keras_serializable(package="tinycompress")
class FixedRangeQuantizer(keras.layers.Layer):
    """Fake-quantize a sigmoid or tanh output to the int8 range TFLite fixes for it.

    The converter gives LOGISTIC outputs scale 1/256 and zero point -128, and
    TANH outputs scale 1/128 and zero point 0, whatever the data: this layer
    puts exactly that grid after the activation (it has no range to train).

    Args:
        activation: ``"sigmoid"`` or ``"tanh"`` (see `FIXED_RANGES`).
        **kwargs: `keras.layers.Layer` arguments (``name``...).

    Raises:
        QuantizationError: another activation.

    Example:
        >>> import numpy as np
        >>> q = FixedRangeQuantizer("sigmoid")
        >>> [float(v) * 256 for v in q(np.array([0.3, 0.999], "float32"))]
        [77.0, 255.0]
    """

    def __init__(self, activation: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if activation not in FIXED_RANGES:
            raise QuantizationError(
                f"expected activation in {tuple(FIXED_RANGES)}. Received: activation={activation!r}."
            )
        self.activation = activation

    @property
    def range(self) -> tuple[float, float]:
        """The fixed ``(min, max)``."""
        return FIXED_RANGES[self.activation]

    def call(self, inputs, training=None, update=True):
        lo, hi = FIXED_RANGES[self.activation]
        return keras.quantizers.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8)

    def compute_output_shape(self, input_shape):
        return input_shape

    def calibrated_export(self) -> keras.layers.Layer:
        """An identity: TFLite fixes this range anyway."""
        return keras.layers.Identity(name=self.name)

    def get_config(self) -> dict:
        return {**super().get_config(), "activation": self.activation}


def fake_quant_kernel(kernel, *, per_channel: bool, depthwise: bool = False):
    """Fake-quantize a kernel to symmetric narrow-range int8, as TFLite stores it.

    Args:
        kernel: the float kernel (Keras layout, output channels on the last
            axis; for depthwise kernels ``(..., in_channels, multiplier)``).
        per_channel: one scale per output channel, else one for the tensor.
        depthwise: `kernel` is a depthwise kernel (output channel
            ``c * multiplier + m``). Default False.

    Returns:
        The fake-quantized kernel, same shape; values are ``scale * q`` with
        integer ``q`` in [-127, 127] and ``scale = max|w| / 127``.

    Example:
        >>> import numpy as np
        >>> w = np.array([[0.5, -2.0], [1.0, 0.1]], "float32")
        >>> scale = np.abs(w).max(axis=0) / 127
        >>> (np.asarray(fake_quant_kernel(w, per_channel=True)) / scale).round().astype(int).tolist()
        [[64, -127], [127, 6]]
    """
    shape = tuple(kernel.shape)
    k = ops.reshape(kernel, shape[:-2] + (1, shape[-2] * shape[-1])) if depthwise else kernel
    axes = tuple(range(len(k.shape) - 1)) if per_channel else None
    bound = ops.stop_gradient(ops.maximum(ops.max(ops.abs(k), axis=axes), 1e-12))
    q = keras.quantizers.fake_quant_with_min_max_vars(
        k, -bound, bound, num_bits=8, narrow_range=True, axis=-1 if per_channel else None
    )
    return ops.reshape(q, shape) if depthwise else q
