"""Check that `.tflite` bytes are a well-formed model before anything reads them.

TFLM loads flatbuffers without a verifier: an index out of range or a buffer
shorter than its tensor makes the interpreter read or write outside the model,
which crashes the process (or worse, a device). `validate` is the gate every
bytes-side stage passes first. It is pure Python (the generated schema reader
plus numpy), so corrupt bytes can only make it raise `ModelFormatError`.

What is checked, in order:

* the header: at least 8 bytes, file identifier ``TFL3`` at bytes 4..8;
* one raw walk over the flatbuffer (`tflite_export._structure`) visits each
  table and vector once: every offset, vector and string lies inside the file,
  and both the walk and what the object API would unpack (shared tables
  counted once per reference) stay within 2 units of work per file byte, so
  validation is linear in the file size;
* the flatbuffer parses (any reader exception), schema version 3, at least
  one subgraph; tensor names, custom codes and metadata names are UTF-8;
* buffers: data placed outside the flatbuffer lies inside the file;
* per subgraph: the tensors, inputs and outputs vectors exist
  (TFLM dereferences them unchecked), input/output tensor indices in range;
* per operator: opcode index in range, inputs and outputs vectors exist,
  input (``-1`` = optional) and output tensor indices in range, subgraph
  indices of IF/WHILE/CALL_ONCE in range;
* per operator, what TFLM's kernel assumes (`tflite_export._op_checks`):
  operand counts, the options table of the operator with strides, windows
  and dilations ``>= 1``, ranks, fitting shapes (channels, filter sizes,
  element counts, broadcasting) and types (int8/int16 data, int8/int4
  filters, int32/int64 biases, element-wise ops keep the type);
* per tensor: known type, rank ``<= 6`` (TFLM's ``RuntimeShape``), buffer
  index in range, dims ``>= 0`` (``-1`` is
  allowed in the shape signature), element count below 2**31, a constant's
  byte size equal to elements times item size, quantization scales finite and
  ``> 0`` (``0`` allowed on one channel of a per-channel filter or bias, which
  TFLM only multiplies by: the converter's all-zero channels), zero points inside the type's range, per-axis scale and zero point
  counts equal to the quantized dimension, quantized dimension in range;
* metadata entries name buffers in range; an ``OfflineMemoryAllocation``
  plan (which TFLM reads unchecked) has inline data of int32 words
  ``[version, subgraphs, n, n offsets]`` with ``n`` = tensors of subgraph 0
  and offsets ``>= -1``.
"""

from __future__ import annotations

import math

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export._op_checks import MAX_RANK, check_operator
from tflite_export._ops_cost import DECODE_CUSTOM_CODE, WEIGHT_INPUTS
from tflite_export._structure import StructureError, WorkBoundError, check_structure
from tflite_export.errors import ModelFormatError

__all__ = ["validate", "SCHEMA_VERSION", "MAX_TENSOR_ELEMENTS"]

#: The TFLite schema version this toolkit reads.
SCHEMA_VERSION = 3

#: Largest element count accepted for one tensor (TFLM indexes with int32).
MAX_TENSOR_ELEMENTS = 2**31 - 1

#: Metadata name of an offline memory plan, which TFLM reads.
OFFLINE_PLAN = "OfflineMemoryAllocation"

_FIX = (
    "The file is corrupt, truncated, or was written or edited by an incompatible tool; "
    "re-export the model (tinycompress.convert) and copy the bytes unchanged."
)

#: Bytes per element of types without a numpy dtype (INT4/UINT4 pack two per byte).
_PACKED_BITS = {"INT4": 4, "UINT4": 4, "INT2": 2, "BFLOAT16": 16, "COMPLEX64": 64,
                "COMPLEX128": 128, "FLOAT8_E4M3FN": 8, "FLOAT8_E5M2": 8}
#: Types whose constant data has no fixed size per element.
_UNSIZED = {"STRING", "RESOURCE", "VARIANT"}
_ZERO_POINT_RANGE = {"INT4": (-8, 7), "UINT4": (0, 15), "INT2": (-2, 1)}
_SUBGRAPH_FIELDS = {
    "IfOptions": ("thenSubgraphIndex", "elseSubgraphIndex"),
    "WhileOptions": ("condSubgraphIndex", "bodySubgraphIndex"),
    "CallOnceOptions": ("initSubgraphIndex",),
}
_OPTION_NAMES = {v: k for k, v in vars(fb.schema.BuiltinOptions).items() if not k.startswith("_")}


def _fail(what: str) -> ModelFormatError:
    return ModelFormatError(f"invalid .tflite model: {what}. {_FIX}")


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _check_utf8(value, where: str) -> None:
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail(f"{where} is not valid UTF-8 ({e.reason} at byte {e.start})") from e


def _tensor_label(s: int, t: int, tensor) -> str:
    name = _text(tensor.name)
    return f"subgraph {s} tensor {t} ({name!r})" if name else f"subgraph {s} tensor {t}"


def _check_header(data: bytes) -> None:
    if len(data) < 8:
        raise _fail(
            f"expected at least 8 bytes (root offset and the 'TFL3' identifier), "
            f"received {len(data)} bytes"
        )
    ident = bytes(data[4:8])
    if ident != b"TFL3":
        raise _fail(f"expected file identifier b'TFL3' at bytes 4..8, received {ident!r}")


def _parse(data: bytes) -> "fb.schema.ModelT":
    try:
        check_structure(data)
    except WorkBoundError as e:
        raise _fail(str(e)) from e
    except StructureError as e:
        raise _fail(f"the flatbuffer structure does not parse: {e}") from e
    try:
        return fb.schema.ModelT.InitFromPackedBuf(data, 0)
    except Exception as e:  # the generated reader raises whatever the bytes provoke
        raise _fail(
            f"the flatbuffer structure does not parse ({type(e).__name__}: {e}); "
            "an offset or length points outside the file"
        ) from e


def _buffer_sizes(m, data: bytes) -> list[int]:
    sizes = []
    for b, buf in enumerate(m.buffers or []):
        if buf is None:
            sizes.append(0)
        elif buf.data is not None and len(buf.data):
            sizes.append(len(buf.data))
        elif buf.offset > 1:
            if buf.offset + buf.size > len(data):
                raise _fail(
                    f"buffer {b} places {buf.size} bytes at offset {buf.offset}, past the end "
                    f"of the {len(data)}-byte file"
                )
            sizes.append(int(buf.size))
        else:
            sizes.append(0)
    return sizes


def _check_index(i: int, n: int, where: str, what: str, *, optional: bool = False) -> None:
    if optional and i == -1:
        return
    if not 0 <= i < n:
        valid = f"valid: 0..{n - 1}" if n else "none exists"
        raise _fail(f"{where} refers to {what} {i}, but there are {n} {what}s ({valid})")


def _element_count(label: str, shape: list[int], signature: list[int]) -> int:
    for k, d in enumerate(shape):
        if d < 0:
            raise _fail(f"{label} has shape {shape} with negative dimension {d} at axis {k}")
    for k, d in enumerate(signature):
        if d < -1:
            raise _fail(f"{label} has shape signature {signature} with dimension {d} at axis {k} "
                        "(only -1, meaning dynamic, may be negative)")
    n = math.prod(shape)
    if n > MAX_TENSOR_ELEMENTS:
        raise _fail(f"{label} has shape {shape} with {n} elements, more than the "
                    f"{MAX_TENSOR_ELEMENTS} a TFLite tensor can hold")
    return n


def _expected_bytes(type_name: str, elements: int) -> int | None:
    if type_name in _UNSIZED:
        return None
    dtype = fb.numpy_dtype(getattr(fb.schema.TensorType, type_name))
    if dtype is not None:
        return elements * dtype.itemsize
    return (elements * _PACKED_BITS[type_name] + 7) // 8


def _zero_point_range(type_name: str) -> tuple[int, int] | None:
    if type_name in _ZERO_POINT_RANGE:
        return _ZERO_POINT_RANGE[type_name]
    dtype = fb.numpy_dtype(getattr(fb.schema.TensorType, type_name))
    if dtype is None or dtype.kind not in "iu":
        return None
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _weight_operands(m, sg) -> set[int]:
    """Tensors of ``sg`` used only as weight operands (filter, bias: `WEIGHT_INPUTS`), whose
    scales TFLM multiplies by and never divides by, so a per-channel scale of 0 (the
    converter's all-zero channel) is harmless: never a subgraph input or output, another
    operand, or written by an operator other than DECODE."""
    codes = m.operatorCodes or []
    weights = set()
    other = set(_ints(sg.inputs)) | set(_ints(sg.outputs))
    for op in sg.operators or []:
        code = codes[op.opcodeIndex] if 0 <= op.opcodeIndex < len(codes) else None
        name = "" if code is None else fb.op_name(code)
        allowed = WEIGHT_INPUTS.get(name, ())
        for pos, i in enumerate(_ints(op.inputs)):
            (weights if pos in allowed else other).add(i)
        if not (name == "CUSTOM" and fb._text(code.customCode) == DECODE_CUSTOM_CODE):
            other.update(_ints(op.outputs))
    return weights - other


def _check_quantization(label: str, type_name: str, shape: list[int], q, weight: bool = False) -> None:
    scale = np.asarray(q.scale if q.scale is not None else [], dtype=np.float64)
    zero = _ints(q.zeroPoint)
    if scale.size == 0 and not zero:
        return
    bad = np.flatnonzero(~np.isfinite(scale) | (scale < 0) | ((scale == 0) & (not weight or scale.size == 1)))
    if bad.size:
        k = int(bad[0])
        raise _fail(f"{label} has quantization scale {float(scale[k])!r} at position {k}; "
                    "expected a finite scale > 0 (0 only on a channel of a per-channel filter or bias)")
    if len(zero) != scale.size:
        raise _fail(f"{label} has {scale.size} quantization scales but {len(zero)} zero points; "
                    "expected one zero point per scale")
    bounds = _zero_point_range(type_name)
    if bounds is not None:
        for k, z in enumerate(zero):
            if not bounds[0] <= z <= bounds[1]:
                raise _fail(f"{label} ({type_name}) has zero point {z} at position {k}, outside "
                            f"the type's range {bounds[0]}..{bounds[1]}")
    axis = int(q.quantizedDimension)
    rank = len(shape)
    if not 0 <= axis < max(rank, 1):
        raise _fail(f"{label} has quantized_dimension {axis}, but its shape {shape} has rank {rank}")
    if scale.size > 1:
        if rank == 0:
            raise _fail(f"{label} is a scalar but has {scale.size} per-axis scales")
        if scale.size != shape[axis]:
            raise _fail(
                f"{label} has {scale.size} per-axis scales and zero points, but its shape "
                f"{shape} has {shape[axis]} entries along quantized_dimension {axis}"
            )


def _check_tensor(s: int, t: int, tensor, buffer_sizes: list[int], weight: bool = False) -> None:
    _check_utf8(tensor.name, f"the name of subgraph {s} tensor {t}")
    label = _tensor_label(s, t, tensor)
    type_name = fb.tensor_type_name(tensor.type)
    if type_name.startswith("UNKNOWN_"):
        raise _fail(f"{label} has tensor type {tensor.type}, which the TFLite schema does not define")
    _check_index(int(tensor.buffer), len(buffer_sizes), f"{label}", "buffer")
    shape = _ints(tensor.shape)
    if len(shape) > MAX_RANK:
        raise _fail(f"{label} has rank {len(shape)}; TFLite Micro handles at most {MAX_RANK} "
                    "dimensions")
    elements = _element_count(label, shape, _ints(tensor.shapeSignature))
    size = buffer_sizes[tensor.buffer]
    if size and tensor.sparsity is None:
        expected = _expected_bytes(type_name, elements)
        if expected is not None and size != expected:
            raise _fail(
                f"{label} ({type_name}, shape {shape}) is constant with {size} bytes in buffer "
                f"{tensor.buffer}, but its shape needs {expected} bytes"
            )
    if tensor.quantization is not None:
        _check_quantization(label, type_name, shape, tensor.quantization, weight)


def _check_operator(s: int, k: int, op, m, tensors: list) -> None:
    n_tensors = len(tensors)
    n_codes = len(m.operatorCodes or [])
    where = f"subgraph {s} operator {k}"
    _check_index(int(op.opcodeIndex), n_codes, where, "operator code")
    where = f"{where} ({fb.op_name(m.operatorCodes[op.opcodeIndex])})"
    if op.inputs is None or op.outputs is None:
        raise _fail(f"{where} has no {'inputs' if op.inputs is None else 'outputs'} vector; TFLM "
                    "reads it without checking (an empty vector is allowed, a missing one is not)")
    for role, optional, idxs in (("input", True, op.inputs), ("output", False, op.outputs),
                                 ("intermediate", False, op.intermediates)):
        for pos, i in enumerate(_ints(idxs)):
            _check_index(i, n_tensors, f"{where} {role} {pos}", "tensor", optional=optional)
    fields = _SUBGRAPH_FIELDS.get(_OPTION_NAMES.get(op.builtinOptionsType, ""), ())
    for field in fields:
        _check_index(int(getattr(op.builtinOptions, field)), len(m.subgraphs),
                     f"{where} option {field}", "subgraph")
    check_operator(where, fb.op_name(m.operatorCodes[op.opcodeIndex]), op, tensors, _fail)


def _check_offline_plan(buffer, n_tensors: int) -> None:
    # TFLM reads this metadata as int32 words [version, subgraphs, n, n offsets]
    # straight from the buffer's inline data, without checking its length.
    data = buffer.data if buffer is not None else None
    size = 0 if data is None else len(data)
    where = f"the {OFFLINE_PLAN} metadata"
    if size < 12 or size % 4:
        raise _fail(f"{where} has {size} inline bytes in its buffer; TFLM reads int32 words "
                    "[version, subgraphs, tensor count, one offset per tensor]")
    words = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype="<i4")
    if int(words[2]) != n_tensors or size != 4 * (3 + n_tensors):
        raise _fail(f"{where} plans {int(words[2])} tensors in {size} bytes, but subgraph 0 has "
                    f"{n_tensors} tensors (expected {4 * (3 + n_tensors)} bytes)")
    bad = np.flatnonzero(words[3:] < -1)
    if bad.size:
        raise _fail(f"{where} places tensor {int(bad[0])} at offset {int(words[3 + bad[0]])}; "
                    "expected an offset >= 0, or -1 for 'planned by TFLM'")


def validate(model: bytes) -> None:
    """Check that bytes are a well-formed TFLite model, without native code.

    See the module docstring for the full list of checks.

    Args:
        model: `.tflite` flatbuffer bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Returns:
        None when the model is well formed.

    Raises:
        ModelFormatError: the bytes are not a valid model. The message says what
            is wrong and where (subgraph, operator and tensor index and name).

    Example:
        >>> import tflite_export
        >>> from tflite_export.validate import validate
        >>> validate(tflite_export.testing.tiny_model())
        >>> validate(b"not a model")
        Traceback (most recent call last):
        ...
        tflite_export.errors.ModelFormatError: invalid .tflite model: expected file identifier ...
    """
    if not isinstance(model, (bytes, bytearray, memoryview)):
        raise ModelFormatError(
            f"expected the model as bytes, received {type(model).__name__}. "
            "Read the .tflite file with open(path, 'rb').read()."
        )
    data = bytearray(model)
    _check_header(data)
    m = _parse(data)
    if m.version != SCHEMA_VERSION:
        raise _fail(f"expected schema version {SCHEMA_VERSION}, received version {m.version}")
    if not m.subgraphs or any(sg is None for sg in m.subgraphs):
        raise _fail("the model has no subgraphs (expected at least one)")
    for c, code in enumerate(m.operatorCodes or []):
        if code is None:
            raise _fail(f"operator code {c} is missing")
        _check_utf8(code.customCode, f"the custom code of operator code {c}")
    buffer_sizes = _buffer_sizes(m, data)
    for s, sg in enumerate(m.subgraphs):
        missing = [f for f in ("tensors", "inputs", "outputs") if getattr(sg, f) is None]
        if missing:
            raise _fail(f"subgraph {s} has no {' and no '.join(missing)} vector; TFLM reads them "
                        "without checking (an empty vector is allowed, a missing one is not)")
        tensors = sg.tensors
        if any(t is None for t in tensors) or any(op is None for op in sg.operators or []):
            raise _fail(f"subgraph {s} has a missing tensor or operator entry")
        for role, idxs in (("input", sg.inputs), ("output", sg.outputs)):
            for pos, i in enumerate(_ints(idxs)):
                _check_index(i, len(tensors), f"subgraph {s} {role} {pos}", "tensor")
        weights = _weight_operands(m, sg)
        for t, tensor in enumerate(tensors):
            _check_tensor(s, t, tensor, buffer_sizes, t in weights)
        for k, op in enumerate(sg.operators or []):
            _check_operator(s, k, op, m, tensors)
    for e, entry in enumerate(m.metadata or []):
        if entry is not None:
            _check_utf8(entry.name, f"the name of metadata entry {e}")
            _check_index(int(entry.buffer), len(buffer_sizes),
                         f"metadata entry {e} ({_text(entry.name)!r})", "buffer")
            if _text(entry.name) == OFFLINE_PLAN:
                _check_offline_plan(m.buffers[entry.buffer], len(m.subgraphs[0].tensors or []))
