"""Reading TFLite flatbuffers with the schema bundled in ``tflite-micro``.

Private helpers shared by the bytes-side modules: the generated schema module,
names of builtin operators and tensor types, numpy dtypes per tensor type, and
`ModelView`, a typed view of one parsed model (after TFLM's
``compression/model_editor.py``): tensors with a name, shape, dtype,
quantization and constant ``array``; operators with their name and custom code.
A stage parses the bytes once into a view and hands the view to its helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tflite_export.errors import EmitError
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

__all__ = [
    "schema", "op_name", "tensor_type_name", "numpy_dtype", "unpack", "tensor_labels",
    "ModelView", "TensorView", "OpView", "checked_view",
]

_BUILTIN_NAMES = {
    v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")
}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
    "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
    "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
    "BOOL": np.bool_,
}


def unpack(model: bytes) -> "schema.ModelT":
    """Unpack flatbuffer bytes into the schema's object API (no validation)."""
    return schema.ModelT.InitFromPackedBuf(bytearray(model), 0)


def op_name(opcode: "schema.OperatorCodeT") -> str:
    """Builtin name of an operator code, e.g. ``"CONV_2D"`` or ``"CUSTOM"``."""
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    return _BUILTIN_NAMES.get(code, f"UNKNOWN_{code}")


def tensor_type_name(tensor_type: int) -> str:
    """Schema name of a tensor type, e.g. ``"INT8"``."""
    return _TYPE_NAMES.get(tensor_type, f"UNKNOWN_{tensor_type}")


def numpy_dtype(tensor_type: int) -> np.dtype | None:
    """The numpy dtype for a tensor type, or None when numpy has none (INT4...)."""
    t = _NUMPY.get(tensor_type_name(tensor_type))
    return None if t is None else np.dtype(t)


#: Roles of operator inputs by position, for the operators whose constants are weights.
_ROLES = {name: {1: "weights", 2: "bias"} for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}


def tensor_labels(m: "schema.ModelT") -> dict[int, str]:
    """A label for every tensor of subgraph 0 that has a name or an operator reading it: the
    tensor's name, or, for a model slimmed of its names, the first operator that reads it,
    its index and the input's role, e.g. ``"FULLY_CONNECTED 1 weights"``.

    Example:
        >>> import tflite_export
        >>> from tflite_export.testing import tiny_model
        >>> tensor_labels(unpack(tflite_export.slim(tiny_model()).model))[1]
        'FULLY_CONNECTED 1 weights'
    """
    sg = m.subgraphs[0]
    labels = {i: _text(t.name) for i, t in enumerate(sg.tensors or []) if t.name}
    for k, op in enumerate(sg.operators or []):
        name = op_name(m.operatorCodes[op.opcodeIndex])
        for pos, i in enumerate(op.inputs if op.inputs is not None else []):
            if i >= 0 and int(i) not in labels:
                labels[int(i)] = f"{name} {k} {_ROLES.get(name, {}).get(pos, f'input {pos}')}"
    return labels


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class TensorView:
    """One tensor of subgraph 0.

    Attributes:
        index: tensor index in the subgraph.
        name: tensor name ("" when slimmed).
        shape: dimensions.
        type_name: schema type name, e.g. ``"INT8"``.
        dtype: numpy dtype, or None for types numpy lacks (INT4...).
        scales: quantization scales (empty when not quantized).
        zero_points: quantization zero points (empty when not quantized).
        array: constant data reshaped to ``shape``, or None for activations
            and types numpy lacks.
    """

    index: int
    name: str
    shape: tuple[int, ...]
    type_name: str
    dtype: np.dtype | None
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    array: np.ndarray | None


@dataclass(frozen=True)
class OpView:
    """One operator.

    Attributes:
        subgraph: subgraph index.
        index: operator index in the subgraph.
        opcode_index: index into the model's operator codes.
        name: builtin name, ``"CUSTOM"`` for custom operators.
        custom_code: the custom code for custom operators, else None.
        inputs: input tensor indices (-1 for an omitted optional input).
        outputs: output tensor indices.
    """

    subgraph: int
    index: int
    opcode_index: int
    name: str
    custom_code: str | None
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


class ModelView:
    """A model parsed once: the object API tree plus typed tensors and operators.

    The view does not validate: pass bytes `tflite_export.validate` accepted.

    Args:
        data: `.tflite` flatbuffer bytes.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> v = ModelView(tiny_model())
        >>> [op.name for op in v.operators], v.tensors[v.inputs[0]].shape
        (['FULLY_CONNECTED', 'FULLY_CONNECTED'], (1, 4))
    """

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.model = unpack(self.data)

    @cached_property
    def tensors(self) -> list[TensorView]:
        """The tensors of subgraph 0, by index."""
        sg = self.model.subgraphs[0]
        return [self._tensor(i, t) for i, t in enumerate(sg.tensors or [])]

    def _tensor(self, index: int, t: "schema.TensorT") -> TensorView:
        q = t.quantization
        scales = tuple(float(s) for s in (q.scale if q is not None and q.scale is not None else []))
        zps = tuple(int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else []))
        dtype = numpy_dtype(t.type)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        raw = self.model.buffers[t.buffer].data if t.buffer < len(self.model.buffers or []) else None
        array = None
        if raw is not None and len(raw) and dtype is not None:
            array = np.frombuffer(np.asarray(raw, np.uint8).tobytes(), dtype).reshape(shape)
        return TensorView(index, _text(t.name), shape, tensor_type_name(t.type), dtype,
                          scales, zps, array)

    @cached_property
    def operators(self) -> list[OpView]:
        """Every operator of every subgraph, in subgraph then execution order."""
        codes = self.model.operatorCodes or []
        ops = []
        for s, sg in enumerate(self.model.subgraphs or []):
            for i, op in enumerate(sg.operators or []):
                code = codes[op.opcodeIndex]
                name = op_name(code)
                custom = _text(code.customCode) if name == "CUSTOM" else None
                ops.append(OpView(s, i, int(op.opcodeIndex), name, custom,
                                  tuple(int(x) for x in (op.inputs if op.inputs is not None else [])),
                                  tuple(int(x) for x in (op.outputs if op.outputs is not None else []))))
        return ops

    @property
    def inputs(self) -> list[int]:
        """Tensor indices of the model inputs (subgraph 0)."""
        sg = self.model.subgraphs[0]
        return [int(i) for i in (sg.inputs if sg.inputs is not None else [])]

    @property
    def outputs(self) -> list[int]:
        """Tensor indices of the model outputs (subgraph 0)."""
        sg = self.model.subgraphs[0]
        return [int(i) for i in (sg.outputs if sg.outputs is not None else [])]

    @cached_property
    def metadata_names(self) -> frozenset[str]:
        """Names of the model's metadata entries."""
        return frozenset(_text(m.name) for m in (self.model.metadata or []))


def checked_view(model_bytes: "bytes | ModelView") -> ModelView:
    """Validate ``.tflite`` bytes once and parse them into a `ModelView`.

    Args:
        model_bytes: `.tflite` flatbuffer bytes, or a view (returned as is).

    Returns:
        The view the emitters share.

    Raises:
        EmitError: ``model_bytes`` is not bytes.
        ModelFormatError: the bytes are not a valid model.
    """
    from tflite_export.validate import validate  # validate imports this module

    if isinstance(model_bytes, ModelView):
        return model_bytes
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise EmitError(
            f"expected the model as .tflite bytes. Received {type(model_bytes).__name__}. "
            "Read the file with Path(...).read_bytes()."
        )
    data = bytes(model_bytes)
    validate(data)
    return ModelView(data)
