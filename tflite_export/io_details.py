"""Input/output tensors of a `.tflite` model and their quantization.

Reads the flatbuffer directly (no interpreter), so it is safe on any bytes that
`tflite_export.validate` accepts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.errors import ModelFormatError

__all__ = ["TensorIO", "input_details", "output_details", "quantize", "dequantize"]


@dataclass(frozen=True)
class TensorIO:
    """One model input or output as the device sees it.

    Attributes:
        index: tensor index in subgraph 0.
        name: tensor name ("" when the model was slimmed).
        shape: shape including the batch dimension.
        dtype: numpy dtype name, e.g. ``"int8"``.
        scale: quantization scale (0.0 for a float tensor).
        zero_point: quantization zero point (0 for a float tensor).
    """

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        """Whether the tensor holds integers with an affine scale."""
        return self.scale > 0.0

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the fields."""
        return asdict(self)


def _details(model: "bytes | fb.ModelView", which: str) -> list[TensorIO]:
    m = model.model if isinstance(model, fb.ModelView) else fb.unpack(model)
    if not m.subgraphs:
        raise ModelFormatError("the model has no subgraph; re-export it.")
    sg = m.subgraphs[0]
    result = []
    for idx in getattr(sg, which) if getattr(sg, which) is not None else []:
        t = sg.tensors[idx]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zp = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        dtype = fb.numpy_dtype(t.type)
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
        result.append(
            TensorIO(
                index=int(idx),
                name=name,
                shape=tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                dtype=dtype.name if dtype is not None else fb.tensor_type_name(t.type),
                scale=scale,
                zero_point=zp,
            )
        )
    return result


def input_details(model: "bytes | fb.ModelView") -> list[TensorIO]:
    """Describe the model's inputs (subgraph 0), in order.

    Args:
        model: `.tflite` flatbuffer bytes, or a model view a stage already parsed.

    Returns:
        One `TensorIO` per input.

    Raises:
        ModelFormatError: the model has no subgraph.
    """
    return _details(model, "inputs")


def output_details(model: "bytes | fb.ModelView") -> list[TensorIO]:
    """Describe the model's outputs (subgraph 0), in order; see `input_details`."""
    return _details(model, "outputs")


def quantize(x: np.ndarray, model: bytes, index: int = 0) -> np.ndarray:
    """Quantize float samples for one model input, as TFLite's QUANTIZE does.

    Args:
        x: float samples.
        model: `.tflite` flatbuffer bytes.
        index: which input. Default 0.

    Returns:
        ``round(x / scale) + zero_point`` clipped to the input dtype, or ``x``
        as float32 when the input is not quantized.
    """
    d = input_details(model)[index]
    x = np.asarray(x, dtype=np.float32)
    if not d.quantized:
        return x
    info = np.iinfo(d.dtype)
    q = np.round(x / np.float32(d.scale)) + d.zero_point
    return np.clip(q, info.min, info.max).astype(d.dtype)


def dequantize(y: np.ndarray, model: bytes, index: int = 0) -> np.ndarray:
    """Turn raw model outputs back into floats: ``(y - zero_point) * scale``.

    Args:
        y: outputs as the model produced them.
        model: `.tflite` flatbuffer bytes.
        index: which output. Default 0.

    Returns:
        float32 array (``y`` unchanged when the output is float).
    """
    d = output_details(model)[index]
    if not d.quantized:
        return np.asarray(y, dtype=np.float32)
    return ((np.asarray(y).astype(np.float32) - d.zero_point) * np.float32(d.scale)).astype(
        np.float32
    )
