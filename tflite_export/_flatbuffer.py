"""Reading TFLite flatbuffers with the schema bundled in ``tflite-micro``.

Private helpers shared by the bytes-side modules: the generated schema module,
names of builtin operators and tensor types, and numpy dtypes per tensor type.
"""

from __future__ import annotations

import numpy as np

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

__all__ = ["schema", "op_name", "tensor_type_name", "numpy_dtype", "unpack"]

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
