"""Refuse models that are not pure integer models TFLM can run.

TFLM runs none of: float tensors inside an "int8" model, hybrid
(dynamic-range) operators, Flex (SELECT_TF_OPS) operators, and builtin ops it
has no kernel for. `check_deployable` finds all of them at once and names each
operator and tensor, so the user can change the layer that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tflite_export import _flatbuffer as fb
from tflite_export.errors import UnsupportedModelError
from tflite_export.tflm_ops import is_supported

__all__ = ["Problem", "find_problems", "check_deployable"]

_INTEGER_TYPES = {"INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL", "INT4", "UINT16", "UINT32"}


@dataclass(frozen=True)
class Problem:
    """One reason a model cannot run as a full-integer TFLM model."""

    op_index: int
    op_name: str
    reason: str

    def __str__(self) -> str:
        return f"op {self.op_index} {self.op_name}: {self.reason}"


def _name(t) -> str:
    n = t.name
    return (n.decode() if isinstance(n, bytes) else n) or "<unnamed>"


def find_problems(model: bytes, *, float_io: bool = False) -> list[Problem]:
    """List every operator that keeps a model from running as integer TFLM.

    Args:
        model: `.tflite` flatbuffer bytes (assumed valid).
        float_io: the user asked for float inputs/outputs: float tensors are
            then allowed at QUANTIZE ops fed by a model input and DEQUANTIZE ops
            producing a model output. Default False.

    Returns:
        The problems found; empty when the model is deployable.

    Example:
        >>> import tflite_export
        >>> tflite_export.find_problems(tflite_export.testing.tiny_model())
        []
    """
    m = fb.unpack(model)
    problems: list[Problem] = []
    for sg in (m.subgraphs or [])[:1]:
        graph_in = set(int(i) for i in (sg.inputs if sg.inputs is not None else []))
        graph_out = set(int(i) for i in (sg.outputs if sg.outputs is not None else []))
        for k, op in enumerate(sg.operators or []):
            code = m.operatorCodes[op.opcodeIndex]
            name = fb.op_name(code)
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            if name == "CUSTOM" and custom and custom.startswith("Flex"):
                problems.append(Problem(k, f"Flex:{custom[4:]}", (
                    "a TensorFlow (SELECT_TF_OPS) op; TFLM cannot run TensorFlow ops. "
                    "Replace the layer with builtin-op layers.")))
                continue
            if not is_supported(name, custom):
                label = f"CUSTOM:{custom}" if name == "CUSTOM" else name
                problems.append(Problem(k, label, (
                    "TFLM has no kernel for this op. Replace the layer that produces it "
                    "(see tflite_export.tflm_ops for what TFLM runs).")))
            ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
            outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
            for role, idxs in (("input", ins), ("output", outs)):
                for i in idxs:
                    t = sg.tensors[i]
                    tname = fb.tensor_type_name(t.type)
                    if tname in _INTEGER_TYPES:
                        continue
                    allowed = float_io and (
                        (name == "QUANTIZE" and role == "input" and i in graph_in)
                        or (name == "DEQUANTIZE" and role == "output" and i in graph_out)
                    )
                    if not allowed:
                        problems.append(Problem(k, name, (
                            f"{role} tensor {i} '{_name(t)}' is {tname}, so the op is not "
                            "integer-only (a hybrid or float op). Give the converter "
                            "representative data and integer-only ops, or remove the layer.")))
    return problems


def check_deployable(model: bytes, *, float_io: bool = False) -> None:
    """Raise unless the model is a full-integer model TFLM can run.

    Args:
        model: `.tflite` flatbuffer bytes.
        float_io: float model inputs/outputs were requested. Default False.

    Raises:
        UnsupportedModelError: listing every offending op and tensor.
    """
    problems = find_problems(model, float_io=float_io)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise UnsupportedModelError(
            f"the converted model cannot run as an integer model on TFLM "
            f"({len(problems)} problem(s)):\n{lines}"
        )
