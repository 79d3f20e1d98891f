"""Mutations of `.tflite` models for `bench/fuzz.py`: raw and schema-aware edits.

`mutate` returns one mutant of a seed and a one-line description of the edit.
Raw edits: bit flips, truncation, an overwritten 32-bit integer. Schema-aware
edits go through the flatbuffer object API and are packed again: operator and
subgraph tensor indices, operand lists, shapes and ranks, tensor types, buffer
indices, quantization scales, zero points and axes, op codes (relabelled or out
of range), builtin options (type and field values), OfflineMemoryAllocation
metadata, buffer data, schema version, operator order, tensor names.
"""

from __future__ import annotations

import copy

import flatbuffers
import numpy as np

from tflite_export import _flatbuffer as fb

__all__ = ["mutate"]

_INTERESTING = (0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 0xFFFFFFFE, 1 << 20)
_BUILTINS = [v for k, v in vars(fb.schema.BuiltinOperator).items() if not k.startswith("_")]
_OPTION_NAMES = {v: k for k, v in vars(fb.schema.BuiltinOptions).items() if not k.startswith("_")}
_OPTION_TYPES = sorted(_OPTION_NAMES)


def _repack(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ---- raw mutations -------------------------------------------------------------------

def _bit_flips(data: bytes, rng) -> tuple[bytes, str]:
    out = bytearray(data)
    k = int(rng.integers(1, 9))
    for _ in range(k):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out), f"flip {k} bits"


def _truncate(data: bytes, rng) -> tuple[bytes, str]:
    n = int(rng.integers(0, len(data)))
    return data[:n], f"truncate to {n} bytes"


def _overwrite_int(data: bytes, rng) -> tuple[bytes, str]:
    out = bytearray(data)
    pos = int(rng.integers(0, max(1, len(out) // 4))) * 4
    value = int(rng.choice(_INTERESTING)) if rng.random() < 0.7 else int(rng.integers(0, len(out) + 64))
    out[pos:pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out[:len(data)]), f"u32 at {pos} = {value}"


# ---- schema-aware mutations ----------------------------------------------------------

def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _index_value(rng, n: int) -> int:
    return int(rng.choice([-1, -2, n, n + 7, 2**31 - 1, int(rng.integers(0, max(n, 1)))]))


def _edit_op_index(m, rng) -> str:
    sg = m.subgraphs[0]
    op = _pick(rng, sg.operators)
    role = "inputs" if rng.random() < 0.6 else "outputs"
    idx = list(getattr(op, role))
    if not idx:
        return "no-op"
    k = int(rng.integers(len(idx)))
    idx[k] = _index_value(rng, len(sg.tensors))
    setattr(op, role, np.asarray(idx, np.int32))
    return f"op {role}[{k}] = {idx[k]}"


def _edit_operands(m, rng) -> str:
    op = _pick(rng, m.subgraphs[0].operators)
    role = "inputs" if rng.random() < 0.7 else "outputs"
    idx = list(getattr(op, role))
    if rng.random() < 0.5 and idx:
        idx.pop(int(rng.integers(len(idx))))
        what = "drop"
    else:
        idx.append(int(rng.integers(len(m.subgraphs[0].tensors))))
        what = "add"
    setattr(op, role, np.asarray(idx, np.int32))
    return f"{what} an op {role[:-1]}"


def _edit_graph_io(m, rng) -> str:
    sg = m.subgraphs[0]
    role = "inputs" if rng.random() < 0.5 else "outputs"
    idx = list(getattr(sg, role))
    idx[0] = _index_value(rng, len(sg.tensors))
    setattr(sg, role, np.asarray(idx, np.int32))
    return f"subgraph {role}[0] = {idx[0]}"


def _edit_shape(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    kind = int(rng.integers(4))
    if kind == 0 and shape:
        k = int(rng.integers(len(shape)))
        shape[k] = int(rng.choice([0, 1, 2, 3, 2**31 - 1, 2**16, -1, -5, shape[k] + 1, 2 * shape[k]]))
    elif kind == 1:
        shape = shape + [1] * int(rng.choice([1, 3, 7, 70]))
    elif kind == 2 and shape:
        shape = shape[:-1]
    else:
        shape = list(reversed(shape))
    t.shape = np.asarray(shape, np.int32)
    return f"tensor shape = {shape[:8]}{'...' if len(shape) > 8 else ''}"


def _edit_type(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    t.type = int(rng.integers(0, 26))
    return f"tensor type = {t.type}"


def _edit_buffer_index(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    t.buffer = int(rng.choice([0, int(rng.integers(len(m.buffers))), len(m.buffers), 2**31]))
    return f"tensor buffer = {t.buffer}"


def _edit_quantization(m, rng) -> str:
    quantized = [t for t in m.subgraphs[0].tensors if t.quantization is not None
                 and t.quantization.scale is not None and len(t.quantization.scale)]
    if not quantized:
        return "no-op"
    q = _pick(rng, quantized).quantization
    kind = int(rng.integers(4))
    if kind == 0:
        scale = np.array(q.scale, np.float32)
        scale[int(rng.integers(len(scale)))] = rng.choice([0.0, -1.0, np.nan, np.inf, 1e30, 1e-38])
        q.scale = scale
        return "quantization scale edited"
    if kind == 1:
        zp = np.array(q.zeroPoint, np.int64)
        zp[int(rng.integers(len(zp)))] = int(rng.choice([-129, 128, 255, -32769, 2**40]))
        q.zeroPoint = zp
        return "zero point edited"
    if kind == 2:
        q.quantizedDimension = int(rng.choice([-1, 1, 3, 4, 9]))
        return f"quantized_dimension = {q.quantizedDimension}"
    q.scale = np.concatenate([np.asarray(q.scale, np.float32), [0.5]])
    return "one more scale than zero points"


def _edit_opcode(m, rng) -> str:
    if rng.random() < 0.5:
        op = _pick(rng, m.subgraphs[0].operators)
        op.opcodeIndex = int(rng.choice([len(m.operatorCodes), 2**31 - 1,
                                         int(rng.integers(len(m.operatorCodes)))]))
        return f"opcode_index = {op.opcodeIndex}"
    code = _pick(rng, m.operatorCodes)
    code.builtinCode = int(_pick(rng, _BUILTINS))
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return f"op code relabelled {fb.op_name(code)}"


def _edit_options(m, rng) -> str:
    op = _pick(rng, m.subgraphs[0].operators)
    if rng.random() < 0.3 or op.builtinOptions is None:
        op.builtinOptionsType = int(_pick(rng, _OPTION_TYPES))
        cls = getattr(fb.schema, f"{_OPTION_NAMES[op.builtinOptionsType]}T", None)
        op.builtinOptions = cls() if cls is not None else None
        return f"options type = {_OPTION_NAMES[op.builtinOptionsType]} (defaults)"
    fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, bool))]
    if not fields:
        return "no-op"
    field = _pick(rng, fields)
    value = int(rng.choice([0, -1, 2, 7, 255, 2**31 - 1]))
    setattr(op.builtinOptions, field, value)
    return f"option {field} = {value}"


def _edit_metadata(m, rng) -> str:
    n = len(m.subgraphs[0].tensors)
    buf = fb.schema.BufferT()
    kind = int(rng.integers(3))
    if kind == 1:
        buf.data = np.frombuffer(np.asarray([0, 1, n + 5] + [0] * n, "<i4").tobytes(), np.uint8)
    elif kind == 2:
        words = [0, 1, n] + [int(rng.choice([-1, -7, 0, 1 << 30])) for _ in range(n)]
        buf.data = np.frombuffer(np.asarray(words, "<i4").tobytes(), np.uint8)
    m.buffers.append(buf)
    entry = fb.schema.MetadataT()
    entry.name = b"OfflineMemoryAllocation"
    entry.buffer = len(m.buffers) - 1
    m.metadata = list(m.metadata or []) + [entry]
    return f"OfflineMemoryAllocation metadata, variant {kind}"


def _edit_buffer_data(m, rng) -> str:
    full = [b for b in m.buffers if b is not None and b.data is not None and len(b.data)]
    if not full:
        return "no-op"
    b = _pick(rng, full)
    data = np.asarray(b.data, np.uint8)
    kind = int(rng.integers(3))
    if kind == 0:
        b.data = data[: int(rng.integers(len(data)))]
    elif kind == 1:
        b.data = np.concatenate([data, np.zeros(int(rng.integers(1, 64)), np.uint8)])
    else:
        b.data = rng.integers(0, 256, len(data)).astype(np.uint8)
    return f"buffer data edit {kind}"


def _edit_structure(m, rng) -> str:
    sg = m.subgraphs[0]
    kind = int(rng.integers(5))
    if kind == 0:
        m.version = int(rng.choice([0, 2, 4, 2**31]))
        return f"version = {m.version}"
    if kind == 1 and len(sg.operators) > 1:
        i, j = rng.choice(len(sg.operators), 2, replace=False)
        sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
        return "two operators swapped"
    if kind == 2 and sg.operators:
        sg.operators.pop(int(rng.integers(len(sg.operators))))
        return "an operator removed"
    if kind == 3:
        _pick(rng, sg.tensors).name = bytes(rng.integers(128, 256, 6).astype(np.uint8))
        return "a tensor name that is not UTF-8"
    sg.tensors.append(copy.deepcopy(_pick(rng, sg.tensors)))
    return "a tensor duplicated"


_RAW = (_bit_flips, _truncate, _overwrite_int)
_SCHEMA = (_edit_op_index, _edit_operands, _edit_graph_io, _edit_shape, _edit_type,
           _edit_buffer_index, _edit_quantization, _edit_opcode, _edit_options, _edit_metadata,
           _edit_buffer_data, _edit_structure)


def mutate(seed: bytes, parsed, rng) -> tuple[bytes, str]:
    """One mutant of ``seed`` (``parsed`` is its unpacked ModelT) and what changed."""
    if rng.random() < 0.4:
        return _pick(rng, _RAW)(seed, rng)
    m = copy.deepcopy(parsed)
    edits = [_pick(rng, _SCHEMA)(m, rng) for _ in range(int(rng.choice([1, 1, 1, 2])))]
    try:
        return _repack(m), "; ".join(edits)
    except Exception as e:  # an edit the builder cannot write: fall back to raw bytes
        data, what = _overwrite_int(seed, rng)
        return data, f"{what} (schema edit unwritable: {type(e).__name__})"
