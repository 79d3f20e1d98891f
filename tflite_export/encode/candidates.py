"""What each DECODE encoding would do to each constant tensor of subgraph 0.

A tensor is a candidate when it is a constant read by an operator that does
not need it constant while preparing (TFLM kernels read shapes, axes and
paddings in Prepare, before any DECODE ran). Each candidate carries the exact
encoded bytes of every encoding the TFLM decoders can read for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.encode._rewrite import Encoding
from tflite_export.encode.huffman import encode_huffman
from tflite_export.encode.lut import encode_lut
from tflite_export.encode.prune import encode_prune, prune_fill

__all__ = ["ENCODINGS", "DECODE_OVERHEAD_BYTES", "EncodeCandidate", "encode_candidates"]

#: Encodings TFLM's DECODE operator reads, in the order ties are broken.
ENCODINGS = ("lut", "prune", "huffman")

#: Flatbuffer bytes one encoded tensor adds besides its data, an estimate
#: measured on small models (ancillary tensor and buffer, decoded tensor, the
#: DECODE operator's share); `encode` measures the real size.
DECODE_OVERHEAD_BYTES = 96

# (operator, input position) read in Prepare by TFLM's kernels: never encoded.
_PREPARE_INPUTS = {
    ("RESHAPE", 1), ("PAD", 1), ("PADV2", 1), ("PADV2", 2), ("MIRROR_PAD", 1),
    ("TRANSPOSE", 1), ("STRIDED_SLICE", 1), ("STRIDED_SLICE", 2), ("STRIDED_SLICE", 3),
    ("SLICE", 1), ("SLICE", 2), ("EXPAND_DIMS", 1), ("FILL", 0), ("BROADCAST_TO", 1),
    ("SPLIT", 0), ("SPLIT_V", 1), ("SPLIT_V", 2), ("RESIZE_BILINEAR", 1),
    ("RESIZE_NEAREST_NEIGHBOR", 1), ("MEAN", 1), ("SUM", 1), ("REDUCE_MAX", 1),
    ("REDUCE_MIN", 1), ("REDUCE_PROD", 1), ("TRANSPOSE_CONV", 0), ("GATHER", 1),
    ("ARG_MAX", 1), ("ARG_MIN", 1), ("SPACE_TO_BATCH_ND", 1), ("SPACE_TO_BATCH_ND", 2),
    ("BATCH_TO_SPACE_ND", 1), ("BATCH_TO_SPACE_ND", 2), ("CUMSUM", 1),
}


@dataclass(frozen=True)
class EncodeCandidate:
    """One constant tensor and its exact encoded sizes.

    Attributes:
        index: tensor index in subgraph 0.
        name: tensor name; for a slimmed model (names removed), the first operator
            reading it and the input's role, e.g. ``FULLY_CONNECTED 3 weights``.
        dtype: schema type name, e.g. ``"INT8"``.
        shape: tensor shape.
        nbytes: bytes the tensor holds now; also the arena bytes its decoded
            copy takes.
        encodings: kind -> `Encoding` for each encoding the decoders can read.
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    encodings: dict[str, Encoding] = field(default_factory=dict, repr=False, compare=False)

    def encoded_bytes(self, kind: str) -> int | None:
        """Encoded data plus tables of one encoding (None when not possible)."""
        e = self.encodings.get(kind)
        return None if e is None else e.nbytes

    def saving(self, kind: str) -> int:
        """Estimated flash saved by ``kind``: bytes minus encoded bytes minus
        `DECODE_OVERHEAD_BYTES` (very negative when not possible)."""
        n = self.encoded_bytes(kind)
        return -math.inf if n is None else self.nbytes - n - DECODE_OVERHEAD_BYTES

    def best(self, kinds=ENCODINGS) -> str | None:
        """The allowed encoding with the smallest encoded size, or None."""
        sizes = [(self.encoded_bytes(k), i, k) for i, k in enumerate(kinds)
                 if self.encoded_bytes(k) is not None]
        return min(sizes)[2] if sizes else None


def _channel_axis(t, shape) -> tuple[int | None, bool]:
    """(channel axis or None, decodable): TFLM decodes axis 0 or the last."""
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) <= 1:
        ok = q is None or q.scale is None or len(shape) == 0 or int(q.quantizedDimension) == 0
        return None, ok
    axis = int(q.quantizedDimension)
    ok = axis in (0, len(shape) - 1) and shape[axis] == len(q.scale)
    return axis, ok


def _encodings(t, values: np.ndarray, kinds) -> dict[str, Encoding]:
    axis, ok = _channel_axis(t, values.shape)  # LUT and prune read the quantization
    out = {}
    if "lut" in kinds and ok:
        out["lut"] = encode_lut(values, axis)
    if "prune" in kinds and ok:
        q = t.quantization
        fill = prune_fill(values.shape, values.dtype, None if q is None else q.zeroPoint, axis)
        out["prune"] = None if fill is None else encode_prune(values, fill)
    if "huffman" in kinds:
        out["huffman"] = encode_huffman(values)
    return {k: e for k, e in out.items() if e is not None}


def encode_candidates(
    model_bytes: bytes, kinds=ENCODINGS, min_bytes: int = 0
) -> list[EncodeCandidate]:
    """List the encodable constant tensors of subgraph 0 with their encodings.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
        kinds: encodings to compute, a subset of `ENCODINGS`. Default all.
        min_bytes: skip tensors smaller than this. Default 0.

    Returns:
        One `EncodeCandidate` per constant tensor that an operator reads (and
        does not need constant in Prepare), in tensor order.

    Example:
        >>> import tflite_export
        >>> from tflite_export.encode import encode_candidates
        >>> cands = encode_candidates(tflite_export.testing.tiny_model())
        >>> [(c.index, c.nbytes, c.best()) for c in cands]
        [(1, 24, 'prune'), (2, 32, 'prune')]
    """
    m = fb.unpack(model_bytes)
    sg = m.subgraphs[0]
    used, fixed = set(), set()
    for op in sg.operators or []:
        name = fb.op_name(m.operatorCodes[op.opcodeIndex])
        for pos, i in enumerate(op.inputs):
            if i >= 0:
                (fixed if (name, pos) in _PREPARE_INPUTS else used).add(int(i))
    labels, out = fb.tensor_labels(m), []
    for index in sorted(used - fixed - {int(i) for i in sg.outputs}):
        t = sg.tensors[index]
        data = m.buffers[t.buffer].data if t.buffer < len(m.buffers) else None
        dtype = fb.numpy_dtype(t.type)
        if data is None or len(data) < max(1, min_bytes) or dtype is None:
            continue
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else []))
        values = np.frombuffer(bytes(data), dtype=dtype)
        if math.prod(shape) != values.size:
            continue
        values = values.reshape(shape)
        out.append(EncodeCandidate(index, labels[index], fb.tensor_type_name(t.type), shape,
                                   values.nbytes, _encodings(t, values, kinds)))
    return out
