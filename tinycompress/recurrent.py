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
TFLM and LiteRT carry from one ``Invoke`` to the next: reset the interpreter
(TFLM ``MicroInterpreter::Reset()``) before each independent sequence. The
same property makes streaming possible: an LSTM converted with a sequence
length of 1 and run one step per ``Invoke`` without resets matched the float
model over 10 steps as closely as the whole-sequence export (max error
0.005 on a random LSTM(8)).

The table `EXPORTED` lists the supported classes; `unsupported_layers` names
every layer that cannot be exported (stateful or state-returning recurrent
layers, masks, ``Bidirectional``, ``ConvLSTM``, a generic ``RNN`` cell), and
`tinycompress.convert` refuses those before converting.
"""

from __future__ import annotations

import uuid

import keras
import numpy as np

__all__ = [
    "EXPORTED",
    "REFUSED",
    "unsupported_layers",
    "check_exportable",
    "crash_suspects",
    "for_export",
]

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

_RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def _walk(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk(layer)


def _act(fn) -> str:
    return keras.activations.serialize(fn) if callable(fn) else str(fn)


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


def _weights(cell):
    """(kernel, recurrent kernel, input bias, recurrent bias or None) in numpy.

    Weights are split here, not in the graph: a constant the converter must
    split itself may stay float (a DEQUANTIZE feeding a float SPLIT).
    """
    w = [np.asarray(keras.ops.convert_to_numpy(v)) for v in (cell.kernel, cell.recurrent_kernel)]
    width = w[0].shape[1]
    bias = (
        np.asarray(keras.ops.convert_to_numpy(cell.bias))
        if cell.use_bias
        else np.zeros(width, np.float32)
    )
    if bias.ndim == 2:  # GRU with reset_after=True: input and recurrent bias
        return (*w, bias[0], bias[1])
    return (*w, bias, None)


_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _split_gates(kind: str, weights):
    """Per-gate (kernel, recurrent kernel, input bias) and GRU's recurrent h bias.

    The recurrent biases of GRU's z and r gates are added to the input biases
    (the sums are what the cell adds); only the h gate keeps its own, since
    the reset gate multiplies it.
    """
    kernel, rec, b_in, b_rec = weights
    n = _GATES[kind]
    u = kernel.shape[1] // n
    cut = [slice(k * u, (k + 1) * u) for k in range(n)]
    b_in = b_in.copy()
    b_h = None
    if b_rec is not None:
        b_in[: 2 * u] += b_rec[: 2 * u]
        b_h = b_rec[2 * u :]
    return [(kernel[:, c], rec[:, c], b_in[c]) for c in cut], b_h


def _unrolled(rnn, weights, x) -> list:
    """The layer's outputs, one per time step, written out step by step.

    Each gate's input projection over all steps is one FULLY_CONNECTED; each
    step adds one recurrent FULLY_CONNECTED per gate (none at the first step,
    whose state is zero) and the gate arithmetic of Keras' cell. No SPLIT:
    its outputs must share one scale, which can leave the converter a float
    SPLIT.
    """
    import tensorflow as tf

    cell, kind = rnn.cell, type(rnn).__name__
    gates, b_h = _split_gates(kind, weights)
    _, steps, features = x.shape
    flat = tf.reshape(x, (-1, features))
    xs = [
        tf.unstack(tf.reshape(tf.matmul(flat, tf.constant(w)) + tf.constant(b), (-1, steps, w.shape[1])), axis=1)
        for w, _, b in gates
    ]
    recs = [tf.constant(r) for _, r, _ in gates]
    act, gate = cell.activation, getattr(cell, "recurrent_activation", None)

    def pre(k, t, h):
        return xs[k][t] if h is None else xs[k][t] + tf.matmul(h, recs[k])

    h = c = None
    outs = []
    for t in range(steps):
        if kind == "SimpleRNN":
            h = act(pre(0, t, h))
        elif kind == "LSTM":
            i, f, o = gate(pre(0, t, h)), gate(pre(1, t, h)), gate(pre(3, t, h))
            g = act(pre(2, t, h))
            c = i * g if c is None else f * c + i * g
            h = o * act(c)
        else:
            z, r = gate(pre(0, t, h)), gate(pre(1, t, h))
            if b_h is not None:  # reset_after=True (Keras' default): r scales U_h h + b_h
                hh = tf.constant(b_h) if h is None else tf.matmul(h, recs[2]) + tf.constant(b_h)
                cand = act(xs[2][t] + r * hh)
            else:
                cand = act(pre(2, t, None if h is None else r * h))
            h = cand - z * cand if h is None else cand + z * (h - cand)
        outs.append(h)
    return outs


class _RecurrentExport(keras.layers.Layer):
    """Trace-time stand-in for a recurrent layer; never saved, so no config."""

    def __init__(self, rnn, fused: bool):
        super().__init__(name=rnn.name)
        self.rnn = rnn
        self.fused = fused
        self.built = True
        # Read while eager: the traced graph holds the weights as constants.
        self._weights = _weights(rnn.cell)
        self._lstm = _fused_lstm_fn() if fused else None

    def compute_output_shape(self, input_shape):
        return self.rnn.compute_output_shape(input_shape)

    def call(self, inputs):
        import tensorflow as tf

        x = tf.reverse(inputs, [1]) if self.rnn.go_backwards else inputs
        if self.fused:
            cell, batch = self.rnn.cell, inputs.shape[0]
            zeros = tf.zeros((batch, cell.units), inputs.dtype)
            weights = [tf.constant(w) for w in self._weights[:3]]
            last, seq, *_ = self._lstm(x, zeros, zeros, *weights)
        else:
            outs = _unrolled(self.rnn, self._weights, x)
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
    recurrent = [l for l in _walk(model) if type(l).__name__ in _RECURRENT]
    if not recurrent:
        return model

    def replace(layer):
        if type(layer).__name__ not in _RECURRENT:
            return layer
        fused = (
            lstm == "fused"
            and type(layer).__name__ == "LSTM"
            and _act(layer.cell.activation) == "tanh"
            and _act(layer.cell.recurrent_activation) == "sigmoid"
        )
        return _RecurrentExport(layer, fused)

    try:
        return keras.models.clone_model(model, clone_function=replace, recursive=True)
    except (ValueError, TypeError, NotImplementedError) as e:
        names = ", ".join(f"'{l.name}' ({type(l).__name__})" for l in recurrent)
        raise ConversionError(
            f"cannot rebuild {type(model).__name__} to export its recurrent layer(s) {names} "
            f"({e}). Build the model with keras.Sequential or the functional API."
        ) from e
