"""Export Keras 3 recurrent layers as operators TFLM runs.

The TFLite converter cannot take a Keras 3 recurrent layer as it is: its
``while`` loop over TensorLists either fails ("Lowering tensor list ops is
failed") or crashes the calibrator. `for_export` rewrites a model's recurrent
layers, for tracing only, into forms the converter turns into integer ops:

- ``LSTM`` (tanh / sigmoid activations) becomes one function carrying the
  ``api_implements="lstm_..."`` attribute of Keras 2's LSTM, which the
  converter fuses into one ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op: int8 weights,
  input, output and output state, int16 cell state, int32 biases: the
  integer kernel TFLM has.
- ``GRU``, ``SimpleRNN`` and LSTMs with other activations are unrolled over the
  fixed sequence length: FULLY_CONNECTED, ADD, LOGISTIC, TANH, MUL, SUB per
  time step (TFLM has no fused GRU). A ``while`` loop is no alternative: the
  converter's calibrator crashes on a WHILE op even without TensorLists
  (measured on a hand-written GRU loop).

The fused LSTM keeps its output and cell state in *variable* tensors, which
TFLM's reference kernel and LiteRT carry from one ``Invoke`` to the next:
reset the interpreter (TFLM ``MicroInterpreter::Reset()``; the firmware
self-tests do) before each independent sequence. The same property makes
streaming possible with those kernels: an LSTM converted with a sequence
length of 1 and run one step per ``Invoke`` without resets matched the float
model over 10 steps as closely as the whole-sequence export (max error
0.005 on a random LSTM(8)). TFLM's CMSIS-NN LSTM kernel (TFLM 90b983c)
starts every ``Invoke`` from a zero state instead: on Cortex-M builds with
CMSIS-NN, export whole sequences; one step per ``Invoke`` does not stream.

QAT (`tinycompress.quantization.QuantizeRecurrent`) trains the same
arithmetic (`tinycompress._unroll`). A wrapped layer exports through
`EXPORT_HOOK` with its int8-grid weights; GRU/SimpleRNN keep the trained state
range as fake-quant ops. TF 2.21's converter cannot quantize a fused LSTM next
to fake-quant ops, so a QAT model with one converts by calibration
(`CALIBRATED_HOOK`: quantizers become identities, kernels stay on the grid).

The table `EXPORTED` lists the supported classes; `unsupported_layers` names
every layer that cannot be exported (stateful or state-returning recurrent
layers, masks, ``Bidirectional``, ``ConvLSTM``, a generic ``RNN`` cell), and
`tinycompress.convert` refuses those before converting.
"""

from __future__ import annotations

import uuid

import keras

from tinycompress._unroll import RECURRENT as _RECURRENT
from tinycompress._unroll import cell_weights, fusable, unroll

__all__ = [
    "EXPORTED",
    "EXPORT_HOOK",
    "CALIBRATED_HOOK",
    "REFUSED",
    "unsupported_layers",
    "check_exportable",
    "crash_suspects",
    "for_export",
]

#: Method of a layer wrapping a recurrent layer (e.g. `QuantizeRecurrent`) that
#: returns ``(recurrent layer, cell_weights-style weights, state range or None)``.
EXPORT_HOOK = "recurrent_export"

#: Method of a QAT layer returning its plain replacement (a layer, or None to
#: drop it) for a model converted by calibration: TF 2.21's converter cannot
#: quantize a fused LSTM next to fake-quant ops ("'tfl.unidirectional_sequence_lstm'
#: op operand #0 must be tensor of 32-bit float values"), so a QAT model with
#: a fused LSTM converts with its int8-grid weights and calibrated ranges.
CALIBRATED_HOOK = "calibrated_export"

#: Recurrent layer classes we export -> the form used.
EXPORTED = {
    "LSTM": "UNIDIRECTIONAL_SEQUENCE_LSTM (unrolled when the activations are not tanh/sigmoid)",
    "GRU": "unrolled over the sequence length",
    "SimpleRNN": "unrolled over the sequence length",
}

#: Layer classes refused before conversion -> what to do instead.
REFUSED = {
    "Bidirectional": "use two LSTM/GRU layers, one with go_backwards=True, and Concatenate",
    "ConvLSTM1D": "TFLM has no convolutional LSTM; use Conv1D followed by LSTM",
    "ConvLSTM2D": "TFLM has no convolutional LSTM; use Conv2D followed by LSTM",
    "ConvLSTM3D": "TFLM has no convolutional LSTM; use Conv3D followed by LSTM",
    "RNN": "a generic RNN cell has no export; use LSTM, GRU or SimpleRNN",
    "Masking": "masks are not exported; pad sequences to the fixed length without a mask",
}

def _walk(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk(layer)


def _problem(layer) -> str | None:
    cls = type(layer).__name__
    if cls in REFUSED:
        return REFUSED[cls]
    if getattr(layer, "mask_zero", False):
        return "mask_zero=True makes a mask, which is not exported; set mask_zero=False"
    if cls not in _RECURRENT:
        return None
    if getattr(layer, "stateful", False):
        return "stateful=True is not exported; convert with stateful=False"
    if getattr(layer, "return_state", False):
        return "return_state=True is not exported; use return_sequences"
    return None


def unsupported_layers(model) -> list[str]:
    """Describe every layer of a Keras model that cannot be exported.

    Args:
        model: a Keras 3 model (nested models are searched).

    Returns:
        One ``"'name' (Class): reason and fix"`` line per layer; empty when
        every layer can be exported.

    Example:
        >>> import keras
        >>> lstm = keras.layers.LSTM(3, stateful=True, name="lstm")
        >>> unsupported_layers(keras.Sequential([keras.Input((5, 2), batch_size=1), lstm]))
        ["'lstm' (LSTM): stateful=True is not exported; convert with stateful=False"]
    """
    found = []
    for layer in _walk(model):
        reason = _problem(layer)
        if reason:
            found.append(f"'{layer.name}' ({type(layer).__name__}): {reason}")
    return found


def check_exportable(model) -> None:
    """Refuse a model with a layer `unsupported_layers` names.

    Args:
        model: a Keras 3 model.

    Raises:
        ConversionError: naming each layer and what to do.
    """
    from tinycompress.errors import ConversionError

    found = unsupported_layers(model)
    if found:
        lines = "\n".join(f"  - {f}" for f in found)
        raise ConversionError(
            f"the model has layer(s) that cannot be exported to TFLM:\n{lines}"
        )


def crash_suspects(model) -> list[str]:
    """Layers to name when the converter crashes on a model.

    Args:
        model: the Keras model that was converted (any other object: none).

    Returns:
        ``"'name' (Class)"`` for each recurrent layer (exported or not) and
        each layer from outside Keras.
    """
    suspects = []
    for layer in _walk(model):
        cls = type(layer)
        inner = getattr(layer, "rnn", None) if cls is _RecurrentExport else None
        if inner is not None:
            suspects.append(f"'{inner.name}' ({type(inner).__name__})")
        elif cls.__name__ in _RECURRENT or not cls.__module__.startswith("keras."):
            suspects.append(f"'{layer.name}' ({cls.__name__})")
    return suspects


def _fused_lstm_fn():
    """A new LSTM function the converter fuses (its body is the float reference)."""
    import tensorflow as tf

    def lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        # Argument order, the five results and the attributes are what the
        # converter's Keras-LSTM fusion expects (Keras 2's standard_lstm).
        h, c, outs = init_h, init_c, []
        for t in range(inputs.shape[1]):
            z = tf.matmul(inputs[:, t], kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outs.append(h)
        return h, tf.stack(outs, axis=1), h, c, tf.constant(0.0)

    return tf.function(lstm, autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4()}",
        "api_preferred_device": "CPU",
        "time_major": False,
        "go_backwards": False,
    })


class _RecurrentExport(keras.layers.Layer):
    """Trace-time stand-in for a recurrent layer; never saved, so no config.

    ``weights`` replaces the layer's own (a QAT layer passes its int8-grid
    kernels); ``state_range`` pins the int8 range of the output and state
    with a fake-quant op the converter reads (None: calibrated).
    """

    def __init__(self, rnn, fused: bool, weights=None, state_range=None):
        super().__init__(name=rnn.name)
        self.rnn = rnn
        self.fused = fused
        self.built = True
        # Read while eager: the traced graph holds the weights as constants.
        self._weights = cell_weights(rnn.cell) if weights is None else weights
        self._range = state_range
        self._lstm = _fused_lstm_fn() if fused else None

    def compute_output_shape(self, input_shape):
        return self.rnn.compute_output_shape(input_shape)

    def _state_q(self, h):
        import tensorflow as tf

        if self._range is None:
            return h
        return tf.quantization.fake_quant_with_min_max_vars(h, *self._range, num_bits=8)

    def call(self, inputs):
        import tensorflow as tf

        x = tf.reverse(inputs, [1]) if self.rnn.go_backwards else inputs
        if self.fused:
            cell, batch = self.rnn.cell, inputs.shape[0]
            zeros = tf.zeros((batch, cell.units), inputs.dtype)
            weights = [tf.constant(w) for w in self._weights[:3]]
            _, seq, *_ = self._lstm(x, zeros, zeros, *weights)
            seq = self._state_q(seq)
            last = seq[:, -1]
        else:
            outs = unroll(self.rnn, self._weights, x, state_q=self._state_q)
            last, seq = outs[-1], tf.stack(outs, axis=1)
        return seq if self.rnn.return_sequences else last


def for_export(model, *, lstm: str = "fused"):
    """A model computing the same function whose recurrent layers convert.

    The recurrent layers' weights are copied as constants when the clone is
    made; the other layers are shared. It is for tracing and conversion only
    (do not train or save it).

    Args:
        model: a Keras 3 Sequential or Functional model.
        lstm: ``"fused"`` (default: one UNIDIRECTIONAL_SEQUENCE_LSTM op per
            LSTM layer with tanh/sigmoid activations) or ``"unrolled"``.

    Returns:
        ``model`` itself when it has no recurrent layer, else a clone in which
        each LSTM/GRU/SimpleRNN is replaced by its export form.

    Raises:
        ArgumentError: ``lstm`` is neither "fused" nor "unrolled".
        ConversionError: a layer cannot be exported, or the model is
            subclassed and has recurrent layers (it cannot be rebuilt).

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((5, 2)), keras.layers.GRU(3)])
        >>> type(for_export(m).layers[0]).__name__
        '_RecurrentExport'
    """
    from tinycompress.errors import ArgumentError, ConversionError

    if lstm not in ("fused", "unrolled"):
        raise ArgumentError(f"expected lstm in ('fused', 'unrolled'). Received: lstm={lstm!r}.")
    check_exportable(model)
    recurrent = [l for l in _walk(model)
                 if type(l).__name__ in _RECURRENT or callable(getattr(l, EXPORT_HOOK, None))]
    if not recurrent:
        return model

    hooked = [l for l in recurrent if callable(getattr(l, EXPORT_HOOK, None))]
    calibrated = lstm == "fused" and any(fusable(l.recurrent_export()[0]) for l in hooked)

    def replace(layer):
        hook = getattr(layer, EXPORT_HOOK, None)
        if callable(hook):  # a wrapped recurrent layer (QAT): its weights and state range
            rnn, weights, state_range = hook()
            fused = lstm == "fused" and fusable(rnn)
            return _RecurrentExport(rnn, fused, weights, None if calibrated else state_range)
        plain = getattr(layer, CALIBRATED_HOOK, None)
        if calibrated and callable(plain):
            return plain()
        if type(layer).__name__ not in _RECURRENT:
            return layer
        return _RecurrentExport(layer, lstm == "fused" and fusable(layer))

    try:
        return keras.models.clone_model(model, clone_function=replace, recursive=True)
    except (ValueError, TypeError, NotImplementedError) as e:
        names = ", ".join(f"'{l.name}' ({type(l).__name__})" for l in recurrent)
        raise ConversionError(
            f"cannot rebuild {type(model).__name__} to export its recurrent layer(s) {names} "
            f"({e}). Build the model with keras.Sequential or the functional API."
        ) from e
