"""Remove what TFLM never reads from a `.tflite` flatbuffer.

The converter's output carries tensor names, signature definitions, metadata
buffers, a description string, one empty buffer per activation tensor, and a
separate copy of every quantization vector (per-channel weights of N channels
store N scales and N int64 zero points; equal vectors repeat across tensors).
`slim` rewrites the flatbuffer without those bytes:

* tensor and subgraph names, signature defs, the description, and metadata
  other than TFLM's ``OfflineMemoryAllocation`` are dropped;
* every tensor without constant data points at the shared empty buffer 0 and
  unreferenced buffers are removed;
* identical numeric vectors (scales, zero points, shapes, operator index lists,
  constant data) are written once and referenced from every place that uses
  them, which flatbuffers allow and both TFLM and LiteRT read transparently;
* constant data stays 16-byte aligned, as the converter writes it.

`tinycompress.build` (and so `tinycompress.export`) checks the result with
`tflite_export.verify_identical` (bit-exact outputs on TFLM against the
unslimmed model).
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.validate import validate

__all__ = ["SlimResult", "slim"]

_KEEP_METADATA = {b"OfflineMemoryAllocation"}
_DATA_ALIGNMENT = 16


class _SharingBuilder(flatbuffers.Builder):
    """A builder that writes each distinct numeric vector once.

    Constant tensor data (uint8 vectors of `BufferT.data`) is 16-byte aligned.
    """

    def __init__(self, size: int):
        super().__init__(size)
        self._vectors: dict[tuple[str, bytes], int] = {}

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' API name)
        key = (x.dtype.str, x.tobytes())
        if key in self._vectors:
            return self._vectors[key]
        if x.dtype == np.uint8 and x.ndim == 1:
            # Same steps as the base class, with the data aligned to 16.
            self.StartVector(1, x.size, _DATA_ALIGNMENT)
            self.head = self.head - x.size
            self.Bytes[self.head : self.head + x.size] = x.tobytes()
            self.vectorNumElems = x.size
            offset = self.EndVector()
        else:
            offset = super().CreateNumpyVector(x)
        self._vectors[key] = offset
        return offset


@dataclass(frozen=True)
class SlimResult:
    """A slimmed model and what it saved.

    Attributes:
        model: the slimmed flatbuffer bytes.
        bytes_before: size of the input model.
        bytes_after: size of the slimmed model.
    """

    model: bytes
    bytes_before: int
    bytes_after: int

    @property
    def saved_bytes(self) -> int:
        """Bytes removed."""
        return self.bytes_before - self.bytes_after


def _as_numpy(values, dtype) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(values, dtype=dtype).reshape(-1)


def _strip(m: "fb.schema.ModelT") -> None:
    m.signatureDefs = None
    m.description = None
    buffers = m.buffers or []
    keep_meta = [md for md in (m.metadata or []) if md.name in _KEEP_METADATA]
    used = {0} | {md.buffer for md in keep_meta}
    for sg in m.subgraphs or []:
        sg.name = None
        for t in sg.tensors or []:
            t.name = None
            data = buffers[t.buffer].data if 0 <= t.buffer < len(buffers) else None
            if data is None or len(data) == 0:
                t.buffer = 0
            used.add(t.buffer)
            t.shape = _as_numpy(t.shape, np.int32)
            t.shapeSignature = None if t.shapeSignature is None else _as_numpy(
                t.shapeSignature, np.int32
            )
            q = t.quantization
            if q is not None:
                q.scale = _as_numpy(q.scale, np.float32)
                q.zeroPoint = _as_numpy(q.zeroPoint, np.int64)
                q.min = _as_numpy(q.min, np.float32)
                q.max = _as_numpy(q.max, np.float32)
        for op in sg.operators or []:
            op.inputs = _as_numpy(op.inputs, np.int32)
            op.outputs = _as_numpy(op.outputs, np.int32)
            if op.intermediates is not None and len(op.intermediates) == 0:
                op.intermediates = None
        sg.inputs = _as_numpy(sg.inputs, np.int32)
        sg.outputs = _as_numpy(sg.outputs, np.int32)
    order = sorted(used)
    remap = {old: new for new, old in enumerate(order)}
    m.buffers = [buffers[i] for i in order]
    for sg in m.subgraphs or []:
        for t in sg.tensors or []:
            t.buffer = remap[t.buffer]
    for md in keep_meta:
        md.buffer = remap[md.buffer]
    m.metadata = keep_meta or None
    m.metadataBuffer = None


def slim(model: bytes) -> SlimResult:
    """Rewrite a `.tflite` model without the bytes TFLM does not read.

    Args:
        model: `.tflite` flatbuffer bytes (validated first).

    Returns:
        A `SlimResult` with the new bytes and the sizes before and after.

    Raises:
        ModelFormatError: the input is not a valid model.

    Example:
        >>> import tflite_export
        >>> r = tflite_export.slim(tflite_export.testing.tiny_model())
        >>> r.bytes_after < r.bytes_before
        True
    """
    validate(model)
    m = fb.unpack(model)
    if m.buffers and any(b.offset for b in m.buffers):
        # Large models keep data outside the flatbuffer; leave them unchanged.
        return SlimResult(bytes(model), len(model), len(model))
    _strip(m)
    builder = _SharingBuilder(len(model))
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    out = bytes(builder.Output())
    validate(out)
    return SlimResult(out, len(model), len(out))
