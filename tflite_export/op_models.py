"""Single-op models cut out of a `.tflite` model, and what each op may differ by.

Verification runs every op of a model on its own: a flatbuffer with that one
operator, its tensors and constant buffers, and its activation inputs as model
inputs. Both runtimes then get the same input tensors (TFLM's own intermediate
values), so a difference in an op's output is that op's, not rounding carried
in from earlier layers.

How far TFLM and LiteRT may differ on one op given the same inputs
(`op_tolerance`):

* ``"exact"`` (0 LSB): ops that only move, select or compare values
  (RESHAPE, MAX_POOL_2D, CONCATENATION, ...) when every quantized operand has
  the same scale and zero point, so nothing is requantized;
* ``"slope"``: SOFTMAX, LOGISTIC and TANH compute a non-linear function whose
  internal fixed-point steps differ between the runtimes; they may differ by
  ``max_lsb`` plus what a ``max_lsb`` input difference moves the output
  (``max_lsb * slope * input_scale / output_scale``, see `output_tolerances`);
* ``"requantized"`` (``max_lsb``, default 1): every other op rescales its
  result (TFLM's reference kernels round twice, LiteRT once).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import flatbuffers
import numpy as np

from tflite_export import _flatbuffer as fb

__all__ = ["OpModel", "single_op_models", "op_tolerance", "SLOPES", "lsb_unit"]

# Largest total slope of each squashing op: sum over inputs of |d output / d input|
# (softmax: 2 p (1 - p) <= 1/2 per unit of beta * logit; logistic 1/4; tanh 1).
SLOPES = {"SOFTMAX": 0.5, "LOGISTIC": 0.25, "TANH": 1.0}

# Ops whose output values are copies of input values (or comparisons of them).
_MOVING_OPS = frozenset({
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "GATHER", "GATHER_ND", "SLICE",
    "STRIDED_SLICE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "PAD", "PADV2", "MIRROR_PAD",
    "MAX_POOL_2D", "CONCATENATION", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TILE", "BROADCAST_TO", "REDUCE_MAX",
    "REDUCE_MIN", "MAXIMUM", "MINIMUM", "RESIZE_NEAREST_NEIGHBOR", "ARG_MAX", "ARG_MIN",
    "REVERSE_V2", "SELECT", "SELECT_V2", "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL",
    "GREATER", "GREATER_EQUAL", "ZEROS_LIKE", "SHAPE",
})
# Ops that run other subgraphs or keep state between invocations.
_NOT_ISOLABLE = {
    "WHILE": "it runs other subgraphs", "IF": "it runs other subgraphs",
    "CALL_ONCE": "it runs other subgraphs", "CALL": "it runs other subgraphs",
    "VAR_HANDLE": "it keeps state between invocations",
    "READ_VARIABLE": "it keeps state between invocations",
    "ASSIGN_VARIABLE": "it keeps state between invocations",
}


@dataclass(frozen=True)
class OpModel:
    """One operator of a model, cut out to run alone.

    Attributes:
        index: the operator's index in subgraph 0 of the source model.
        opcode: builtin name, e.g. ``"FULLY_CONNECTED"``.
        model: the single-op flatbuffer, or None when the op cannot run alone.
        inputs: source-model tensor indices fed to ``model``'s inputs, in order.
        outputs: source-model tensor indices of the op's outputs, in order.
        reason: why the op cannot run alone ("" when it can).
    """

    index: int
    opcode: str
    model: bytes | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    reason: str = ""


def _has_data(m, t) -> bool:
    buffers = m.buffers or []
    b = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
    return b is not None and ((b.data is not None and len(b.data) > 0) or bool(b.offset))


def _why_not_isolable(m, op, name: str) -> str:
    if name in _NOT_ISOLABLE:
        return f"{name} cannot run alone: {_NOT_ISOLABLE[name]}"
    if name == "CUSTOM" or name.startswith("UNKNOWN"):
        code = m.operatorCodes[op.opcodeIndex].customCode
        label = code.decode(errors="replace") if isinstance(code, bytes) else (code or name)
        return f"custom op {label}: LiteRT has no reference kernel for it"
    sg = m.subgraphs[0]
    if any(t >= 0 and sg.tensors[t].isVariable for t in op.inputs):
        return f"{name} reads a variable tensor, which keeps state between invocations"
    return ""


def _cut(m, op_index: int) -> tuple[bytes, tuple[int, ...], tuple[int, ...]]:
    """Flatbuffer with operator ``op_index`` alone; its activation inputs become inputs."""
    sg = m.subgraphs[0]
    op = sg.operators[op_index]
    outputs = tuple(int(t) for t in op.outputs)
    intermediates = op.intermediates if op.intermediates is not None else []
    used = list(dict.fromkeys(
        int(t) for t in [*op.inputs, *op.outputs, *intermediates] if t >= 0
    ))
    remap = {t: k for k, t in enumerate(used)}
    buffers = [fb.schema.BufferT()]
    tensors = []
    for t in used:
        tensor = copy.copy(sg.tensors[t])
        if _has_data(m, tensor):
            buffers.append(m.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    inputs = tuple(dict.fromkeys(
        int(t) for t in op.inputs
        if t >= 0 and int(t) not in outputs and not _has_data(m, sg.tensors[t])
    ))
    new_op = copy.copy(op)
    new_op.opcodeIndex = 0
    new_op.inputs = [remap[int(t)] if t >= 0 else -1 for t in op.inputs]
    new_op.outputs = [remap[t] for t in outputs]
    if op.intermediates is not None:
        new_op.intermediates = [remap[int(t)] for t in op.intermediates if t >= 0]
    sub = fb.schema.SubGraphT()
    sub.tensors, sub.operators = tensors, [new_op]
    sub.inputs, sub.outputs = [remap[t] for t in inputs], [remap[t] for t in outputs]
    out = fb.schema.ModelT()
    out.version = m.version or 3
    out.operatorCodes = [m.operatorCodes[op.opcodeIndex]]
    out.subgraphs, out.buffers = [sub], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(out.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), inputs, outputs


def single_op_models(model: bytes) -> list[OpModel]:
    """Cut every operator of subgraph 0 out of a model into its own flatbuffer.

    Args:
        model: `.tflite` flatbuffer bytes (validated by the caller).

    Returns:
        One `OpModel` per operator, in execution order; ops that cannot run
        alone (control flow, variables, custom ops) have ``model=None`` and a
        ``reason``.

    Example:
        >>> import tflite_export
        >>> from tflite_export.op_models import single_op_models
        >>> ops = single_op_models(tflite_export.testing.tiny_model())
        >>> [(o.opcode, o.inputs, o.outputs) for o in ops]
        [('FULLY_CONNECTED', (0,), (3,)), ('FULLY_CONNECTED', (3,), (4,))]
    """
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    external = any(b.offset for b in m.buffers or [])
    result = []
    for k, op in enumerate(sg.operators or []):
        name = fb.op_name(m.operatorCodes[op.opcodeIndex])
        reason = _why_not_isolable(m, op, name)
        if external:
            reason = "the model keeps constant data outside the flatbuffer"
        outputs = tuple(int(t) for t in op.outputs)
        if reason:
            result.append(OpModel(k, name, None, (), outputs, reason))
            continue
        blob, inputs, outputs = _cut(m, k)
        result.append(OpModel(k, name, blob, inputs, outputs))
    return result


def _qparams(tensor) -> tuple | None:
    q = tensor.quantization
    if q is None or q.scale is None or not len(q.scale):
        return None
    zp = q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale)
    return tuple(np.asarray(q.scale, np.float32).tolist()), tuple(np.asarray(zp, np.int64).tolist())


def op_tolerance(m, op_index: int, max_lsb: int) -> tuple[int, str]:
    """LSBs by which TFLM and LiteRT may differ on one op given the same inputs.

    Args:
        m: the model unpacked with ``tflite_export._flatbuffer.unpack``.
        op_index: operator index in subgraph 0.
        max_lsb: tolerance of a requantized tensor.

    Returns:
        (tolerance in output LSBs, rule): rule is ``"exact"``, ``"slope"`` or
        ``"requantized"`` (see the module docstring).

    Example:
        >>> import tflite_export
        >>> from tflite_export import _flatbuffer as fb
        >>> op_tolerance(fb.unpack(tflite_export.testing.tiny_model()), 0, max_lsb=1)
        (1, 'requantized')
    """
    sg = m.subgraphs[0]
    op = sg.operators[op_index]
    name = fb.op_name(m.operatorCodes[op.opcodeIndex])
    if name in _MOVING_OPS:
        operands = [int(t) for t in [*op.inputs, *op.outputs] if t >= 0]
        params = {_qparams(sg.tensors[t]) for t in operands} - {None}
        # Integer index operands (shapes, axes, indices) carry no quantization.
        if len(params) <= 1:
            return 0, "exact"
    if name in SLOPES:
        q_in = _qparams(sg.tensors[int(op.inputs[0])])
        q_out = _qparams(sg.tensors[int(op.outputs[0])])
        if q_in is not None and q_out is not None:
            beta = op.builtinOptions.beta if name == "SOFTMAX" else 1.0
            gain = SLOPES[name] * beta * q_in[0][0] / q_out[0][0]
            return max_lsb + int(np.ceil(max_lsb * gain)), "slope"
    return max_lsb, "requantized"


def lsb_unit(m, tensor_index: int) -> float:
    """Size of one LSB of a tensor, in the tensor's own units.

    1 for an integer tensor (its values are counted in LSBs already); for a
    float tensor made by DEQUANTIZE, the scale of the dequantized input; for
    any other float tensor 0.0 (no quantization grid: `tflite_export.verify`
    compares it relative to its magnitude, 1e-5 of it counting as one LSB).

    Args:
        m: the model unpacked with ``tflite_export._flatbuffer.unpack``.
        tensor_index: tensor index in subgraph 0.

    Returns:
        The LSB size.

    Example:
        >>> import tflite_export
        >>> from tflite_export import _flatbuffer as fb
        >>> lsb_unit(fb.unpack(tflite_export.testing.tiny_model()), 4)
        1.0
    """
    sg = m.subgraphs[0]
    if fb.numpy_dtype(sg.tensors[tensor_index].type) not in (np.float32, np.float16, np.float64):
        return 1.0
    for op in sg.operators or []:
        if tensor_index in [int(t) for t in op.outputs]:
            q = _qparams(sg.tensors[int(op.inputs[0])]) if len(op.inputs) else None
            return float(q[0][0]) if q is not None else 0.0
    return 0.0
