"""`QuantizeRecurrent`: train an LSTM, GRU or SimpleRNN as its int8 TFLM form computes it.

`tinycompress.recurrent` exports an LSTM (tanh/sigmoid) as one fused
UNIDIRECTIONAL_SEQUENCE_LSTM op and GRU/SimpleRNN unrolled over the sequence.
What those int8 models quantize, and what this wrapper simulates:

- every gate's input kernel and recurrent kernel: symmetric int8, per tensor
  (the converter quantizes each gate's weights as its own tensor);
- the state ``h`` (also the layer's output) after every step: int8 over a
  trained range, which export pins with a fake-quant op; a SimpleRNN whose
  activation is tanh or sigmoid keeps TFLite's fixed range instead;
- in the unrolled forms (GRU, SimpleRNN, LSTMs with other activations), each
  sigmoid/tanh output: int8 with TFLite's fixed ranges (`FIXED_RANGES`).

Not simulated: the fused LSTM's int16 gates and cell state (16 bits; the cell
range is calibrated by the converter) and the int32 biases; the unrolled
forms' other int8 intermediates (gate sums, products), whose ranges the
converter calibrates. Dropout is not applied while training under QAT.
"""

from __future__ import annotations

import keras
from keras import ops

from tinycompress._unroll import GATES, activation_name, cell_weights, fusable, unroll
from tinycompress.errors import UnsupportedLayerError
from tinycompress.quantization.quantizers import (
    FIXED_RANGES,
    ActivationQuantizer,
    fake_quant_kernel,
)

__all__ = ["RECURRENT_LAYERS", "QuantizeRecurrent", "recurrent_problems"]

#: Recurrent layers `QuantizeRecurrent` wraps.
RECURRENT_LAYERS = (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)


def recurrent_problems(layer: keras.layers.Layer) -> list[str]:
    """Reasons `layer` cannot be trained under QAT (empty when it can)."""
    if not isinstance(layer, RECURRENT_LAYERS):
        return [f"{type(layer).__name__} is not an LSTM, GRU or SimpleRNN"]
    problems = []
    if layer.stateful or layer.return_state:
        problems.append("stateful / return_state layers are not exported")
    return problems


def _fixed_act_q(y, fn):
    rng = FIXED_RANGES.get(activation_name(fn))
    return y if rng is None else keras.quantizers.fake_quant_with_min_max_vars(y, *rng, num_bits=8)


@keras.saving.register_keras_serializable(package="tinycompress")
class QuantizeRecurrent(keras.layers.Wrapper):
    """Simulate the int8 TFLM form of an LSTM, GRU or SimpleRNN layer while training.

    See the module docs for what is quantized. The input must have a fixed
    number of time steps (the export is for a fixed length). The output
    needs no `ActivationQuantizer` after it: it is the quantized state, and
    the state's range (`state_quantizer`, None when fixed) becomes the int8
    scale of the exported op's output and state tensors.

    Args:
        layer: the LSTM, GRU or SimpleRNN layer (not stateful, no returned state).
        ema_decay: decay of the state range's moving average. Default 0.99.
        **kwargs: `keras.layers.Layer` arguments (``name``...).

    Raises:
        UnsupportedLayerError: another layer, or a stateful / state-returning one.

    Example:
        >>> import keras, numpy as np
        >>> w = QuantizeRecurrent(keras.layers.GRU(4), name="quant_gru")
        >>> tuple(w(np.zeros((2, 5, 3), "float32")).shape)
        (2, 4)
        >>> [v.name for v in w.get_compressible_weights()]
        ['kernel', 'recurrent_kernel']
    """

    def __init__(self, layer: keras.layers.Layer, ema_decay: float = 0.99, **kwargs) -> None:
        super().__init__(layer, **kwargs)
        problems = recurrent_problems(layer)
        if problems:
            raise UnsupportedLayerError(
                f"cannot quantize recurrent layer '{layer.name}': {'; '.join(problems)}. "
                "Change the layer or keep it out of quantize_model."
            )
        self.ema_decay = float(ema_decay)
        fixed = isinstance(layer, keras.layers.SimpleRNN) and \
            activation_name(layer.cell.activation) in FIXED_RANGES
        self.state_quantizer = None if fixed else ActivationQuantizer(
            ema_decay=ema_decay, name=f"{layer.name}_quant")

    def build(self, input_shape) -> None:
        if input_shape[1] is None:
            raise UnsupportedLayerError(
                f"recurrent layer '{self.layer.name}' needs a fixed number of time steps for "
                "QAT and export; give keras.Input a shape like (steps, features)."
            )
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.state_quantizer is not None:
            self.state_quantizer.build((None, self.layer.cell.units))
        self.built = True

    def get_compressible_weights(self) -> list:
        """The float kernel and recurrent kernel (the core's layer protocol)."""
        cell = self.layer.cell
        return [cell.kernel, cell.recurrent_kernel]

    get_prunable_weights = get_compressible_weights

    def quantizers(self) -> list[ActivationQuantizer]:
        """The wrapper's trained ranges (the state's), for `QATCallback` and ranges."""
        return [] if self.state_quantizer is None else [self.state_quantizer]

    def _quantized_kernels(self):
        cell, n = self.layer.cell, GATES[type(self.layer).__name__]
        u = cell.units

        def per_gate(kernel):
            return ops.concatenate(
                [fake_quant_kernel(kernel[:, g * u:(g + 1) * u], per_channel=False)
                 for g in range(n)], axis=1)

        return per_gate(cell.kernel), per_gate(cell.recurrent_kernel)

    def call(self, inputs, training=None):
        rnn = self.layer
        x = ops.flip(inputs, axis=1) if rnn.go_backwards else inputs
        weights = cell_weights(rnn.cell, *self._quantized_kernels(), numpy=False)
        observed = []

        def state_q(h):
            if self.state_quantizer is None:
                return h
            observed.append(h)
            return self.state_quantizer(h, training=training, update=False)

        act_q = None if fusable(rnn) else _fixed_act_q
        outs = unroll(rnn, weights, x, state_q=state_q, act_q=act_q)
        if training and observed:  # update the state range from the unquantized states
            self.state_quantizer(ops.stack(observed, axis=1), training=True)
        return ops.stack(outs, axis=1) if rnn.return_sequences else outs[-1]

    def recurrent_export(self):
        """What `tinycompress.recurrent.for_export` exports in place of this wrapper.

        Returns:
            ``(recurrent layer, weights on the int8 grid, state range or None)``.
        """
        weights = cell_weights(self.layer.cell, *self._quantized_kernels())
        rng = None if self.state_quantizer is None else self.state_quantizer.range
        return self.layer, weights, rng

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "ema_decay": self.ema_decay}
