"""The step-by-step arithmetic of Keras' LSTM, GRU and SimpleRNN cells, in `keras.ops`.

One implementation serves two callers, so what is trained is what is
exported: `tinycompress.recurrent` traces it with constant weights into the
unrolled ops the converter turns into FULLY_CONNECTED, LOGISTIC, TANH, MUL,
ADD and SUB, and `tinycompress.quantization.QuantizeRecurrent` runs it while
training with fake-quantized kernels and hooks that fake-quantize the
activations and the state where the int8 model has int8 tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

__all__ = ["GATES", "RECURRENT", "activation_name", "cell_weights", "fusable", "split_gates", "unroll"]

#: Gates per recurrent layer class (kernel columns come in this many blocks).
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
#: The recurrent layer classes, by name.
RECURRENT = tuple(GATES)

Hook = Callable[..., object]


def cell_weights(cell, kernel=None, recurrent_kernel=None, *, numpy: bool = True):
    """(kernel, recurrent kernel, input bias, recurrent bias or None) of a cell.

    Args:
        cell: the layer's ``cell``.
        kernel: use this kernel instead of the cell's (e.g. fake-quantized).
        recurrent_kernel: likewise for the recurrent kernel.
        numpy: return numpy arrays (default, for export) or keep tensors.

    Returns:
        The four weights; a GRU with ``reset_after=True`` has a recurrent bias.
    """
    conv = (lambda v: np.asarray(ops.convert_to_numpy(v))) if numpy else (lambda v: v)
    k = conv(cell.kernel if kernel is None else kernel)
    r = conv(cell.recurrent_kernel if recurrent_kernel is None else recurrent_kernel)
    if not cell.use_bias:
        return k, r, np.zeros(k.shape[1], np.float32), None
    bias = conv(cell.bias)
    if len(bias.shape) == 2:  # GRU with reset_after=True: input and recurrent bias
        return k, r, bias[0], bias[1]
    return k, r, bias, None


def split_gates(kind: str, weights) -> tuple[list, object]:
    """Per-gate (kernel, recurrent kernel, input bias) and GRU's recurrent h bias.

    The recurrent biases of GRU's z and r gates are added to the input biases
    (the sums are what the cell adds); only the h gate keeps its own, since
    the reset gate multiplies it.
    """
    kernel, rec, b_in, b_rec = weights
    n = GATES[kind]
    u = kernel.shape[1] // n
    gates = []
    for g in range(n):
        cut = slice(g * u, (g + 1) * u)
        bias = b_in[cut] if b_rec is None or g == 2 else b_in[cut] + b_rec[cut]
        gates.append((kernel[:, cut], rec[:, cut], bias))
    return gates, None if b_rec is None else b_rec[2 * u :]


def _identity(y, fn=None):
    return y


def unroll(layer, weights, x, *, state_q: Hook | None = None, act_q: Hook | None = None) -> list:
    """The layer's outputs, one per time step, written out step by step.

    Each gate's input projection over all steps is one matmul; each step adds
    one recurrent matmul per gate (none at the first step, whose state is
    zero) and the gate arithmetic of Keras' cell. No split of a fused gate
    matmul: a SPLIT's outputs share one scale, which can leave the converter a
    float SPLIT.

    Args:
        layer: the LSTM, GRU or SimpleRNN layer (its cell's activations are used).
        weights: `cell_weights`' four values (numpy arrays or tensors).
        x: input of shape ``(batch, steps, features)`` (already reversed for
            ``go_backwards``).
        state_q: ``state_q(h) -> h`` applied to each step's state (and output).
            Default: none.
        act_q: ``act_q(y, fn) -> y`` applied to every output of the cell's
            ``activation`` / ``recurrent_activation`` ``fn``. Default: none.

    Returns:
        One ``(batch, units)`` tensor per time step.
    """
    cell, kind = layer.cell, type(layer).__name__
    state_q, act_q = state_q or _identity, act_q or _identity
    gates, b_h = split_gates(kind, weights)
    _, steps, features = x.shape
    flat = ops.reshape(x, (-1, features))
    xs = [ops.unstack(ops.reshape(ops.matmul(flat, w) + b, (-1, steps, w.shape[1])), axis=1)
          for w, _, b in gates]
    recs = [r for _, r, _ in gates]
    gate_fn = getattr(cell, "recurrent_activation", None)

    def act(y):
        return act_q(cell.activation(y), cell.activation)

    def gate(y):
        return act_q(gate_fn(y), gate_fn)

    def pre(k, t, h):
        return xs[k][t] if h is None else xs[k][t] + ops.matmul(h, recs[k])

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
                hh = b_h if h is None else ops.matmul(h, recs[2]) + b_h
                cand = act(xs[2][t] + r * hh)
            else:
                cand = act(pre(2, t, None if h is None else r * h))
            h = cand - z * cand if h is None else cand + z * (h - cand)
        h = state_q(h)
        outs.append(h)
    return outs


def activation_name(fn) -> str:
    """Serialized name of an activation function (``"tanh"``, ``"sigmoid"``...)."""
    return keras.activations.serialize(fn) if callable(fn) else str(fn)


def fusable(layer) -> bool:
    """Whether `layer` exports as one fused UNIDIRECTIONAL_SEQUENCE_LSTM op.

    True for an LSTM with tanh activation and sigmoid recurrent activation
    (the converter's fused LSTM computes exactly those).
    """
    return (
        type(layer).__name__ == "LSTM"
        and activation_name(layer.cell.activation) == "tanh"
        and activation_name(layer.cell.recurrent_activation) == "sigmoid"
    )
