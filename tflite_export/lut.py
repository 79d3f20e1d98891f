"""Store clustered weights as bit-packed indices into lookup tables (TFLM DECODE).

A tensor with few distinct values (a clustered kernel) can be stored as
``bits``-wide indices plus small value tables. TFLM's compression module
has the decoder; `tflite_export.encode` writes the tables and inserts the
``TFLM_DECODE`` operators that expand them before their consumers run.
The expanded tensor lives in the tensor arena, so every compressed tensor trades
flash for RAM: `compress_luts` reports both, per tensor and in total, and proves
on the TFLM interpreter that the outputs did not change by a single bit.

Tables follow the tensor's quantization: one table per quantized channel when
the tensor is quantized per channel, else one table. TFLM's DECODE kernel picks
its tables from the quantization parameters, so any other layout would decode
wrong values (the verification step would catch it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export._lut_result import LutResult, LutTensor
from tflite_export._samples import verification_inputs
from tflite_export.arena import measure_arena
from tflite_export.encode import encode_lut, insert_decodes
from tflite_export.encode.lut import LUT_MAX_BITS
from tflite_export.errors import TinyCompressError
from tflite_export.progress import Progress, report
from tflite_export.verify import verify_identical

__all__ = [
    "LUT_MAX_BITS",
    "LutError",
    "LutCandidate",
    "LutTensor",
    "LutResult",
    "lut_candidates",
    "compress_luts",
]

logger = logging.getLogger(__name__)

_LUT_STEP = "verifying and measuring LUT tensors"

#: Bytes of the decode metadata header in front of each tensor's value tables.
_DCM_BYTES = 16


class LutError(TinyCompressError, ValueError):
    """A tensor cannot be LUT-compressed as asked."""


@dataclass(frozen=True)
class LutCandidate:
    """What LUT compression would do to one constant tensor of subgraph 0.

    Attributes:
        index: tensor index in subgraph 0.
        name: tensor name; for a slimmed model (names removed), the first operator
            reading it and the input's role, e.g. ``FULLY_CONNECTED 3 weights``.
        dtype: schema type name, e.g. ``"INT8"``.
        shape: tensor shape.
        nbytes: bytes the tensor holds now (its flash cost).
        distinct: most distinct values in one table (whole tensor or channel).
        axis: channel axis of the tables, or None for one table.
        tables: number of value tables.
        bits: index width needed (1..7), or None when ``distinct`` exceeds 128.
        encoded_bytes: bytes of the packed indices (0 when ``bits`` is None).
        table_bytes: bytes of the decode header and value tables.
        flash_saved: ``nbytes - encoded_bytes - table_bytes``, an estimate: the
            flatbuffer also pays for the DECODE operators and their metadata
            (about 100 B per tensor, see
            `tflite_export.encode.DECODE_OVERHEAD_BYTES`). `LutResult.flash_saved`
            is measured.
        decoded_bytes: arena bytes the DECODE output takes at run time.
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    distinct: int
    axis: int | None
    tables: int
    bits: int | None
    encoded_bytes: int
    table_bytes: int
    flash_saved: int
    decoded_bytes: int

    @property
    def compressible(self) -> bool:
        """True when the values fit a table of at most 128 entries."""
        return self.bits is not None


def _candidate(index: int, name: str, tensor, data: bytes) -> LutCandidate | None:
    dtype = fb.numpy_dtype(tensor.type)
    if dtype is None or dtype.kind not in "iub" or data is None or len(data) == 0:
        return None
    shape = tuple(int(s) for s in (tensor.shape if tensor.shape is not None else []))
    values = np.frombuffer(bytes(data), dtype=dtype)
    if shape and math.prod(shape) == values.size:
        values = values.reshape(shape)
    else:
        shape = (values.size,)
    q = tensor.quantization
    axis = None
    if q is not None and q.scale is not None and len(q.scale) > 1:
        axis = int(q.quantizedDimension)
        if axis not in (0, len(shape) - 1) or shape[axis] != len(q.scale):
            return None
    if axis is None:
        distinct, tables = int(np.unique(values).size), 1
    else:
        slices = np.moveaxis(values, axis, 0).reshape(shape[axis], -1)
        distinct = max(int(np.unique(s).size) for s in slices)
        tables = shape[axis]
    bits = max(1, math.ceil(math.log2(distinct))) if distinct > 1 else 1
    nbytes = values.size * dtype.itemsize
    if bits > LUT_MAX_BITS:
        return LutCandidate(index, name, fb.tensor_type_name(tensor.type), shape,
                            nbytes, distinct, axis, tables, None, 0, 0, 0, nbytes)
    encoded = (values.size * bits + 7) // 8
    table_bytes = _DCM_BYTES + tables * distinct * dtype.itemsize
    return LutCandidate(
        index=index,
        name=name,
        dtype=fb.tensor_type_name(tensor.type),
        shape=shape,
        nbytes=nbytes,
        distinct=distinct,
        axis=axis,
        tables=tables,
        bits=bits,
        encoded_bytes=encoded,
        table_bytes=table_bytes,
        flash_saved=nbytes - encoded - table_bytes,
        decoded_bytes=nbytes,
    )


def lut_candidates(model_bytes: bytes) -> list[LutCandidate]:
    """List the constant integer tensors of subgraph 0 and what LUTs would give.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.

    Returns:
        One `LutCandidate` per constant integer tensor read by an operator,
        in tensor order; `LutCandidate.compressible` tells which fit a table.

    Example:
        >>> import tflite_export
        >>> from tflite_export.lut import lut_candidates
        >>> [(c.index, c.distinct, c.bits) for c in lut_candidates(tflite_export.testing.tiny_model())]
        [(1, 23, 5), (2, 32, 5)]
    """
    m = fb.unpack(model_bytes)
    sg = m.subgraphs[0]
    used = {int(i) for op in (sg.operators or []) for i in op.inputs if i >= 0}
    labels = fb.tensor_labels(m)
    found = []
    for index, tensor in enumerate(sg.tensors or []):
        buf = m.buffers[tensor.buffer] if tensor.buffer < len(m.buffers) else None
        data = None if buf is None else buf.data
        if index not in used or data is None:
            continue
        cand = _candidate(index, labels[index], tensor, data)
        if cand is not None:
            found.append(cand)
    return found


def _choose(
    candidates: list[LutCandidate],
    tensors: str | Sequence[int] | Callable[[LutCandidate], bool],
    min_bytes: int,
    max_bits: int,
) -> list[LutCandidate]:
    if isinstance(tensors, str):
        if tensors != "auto":
            raise LutError(
                f"expected tensors='auto', a list of tensor indices or a callable. "
                f"Received tensors={tensors!r}."
            )
        return [
            c for c in candidates
            if c.compressible and c.bits <= max_bits and c.nbytes >= min_bytes
            and c.flash_saved > 0 and c.dtype == "INT8"
        ]
    if callable(tensors):
        return [c for c in candidates if c.compressible and c.bits <= max_bits and tensors(c)]
    by_index = {c.index: c for c in candidates}
    chosen = []
    for i in tensors:
        c = by_index.get(int(i))
        if c is None:
            raise LutError(
                f"expected the index of a constant integer tensor read by an operator "
                f"(one of {sorted(by_index)}). Received tensor {i}. "
                "List the candidates with tflite_export.lut.lut_candidates(model)."
            )
        if not c.compressible or c.bits > max_bits:
            where = "in one channel" if c.axis is not None else "in the tensor"
            raise LutError(
                f"tensor {c.index} '{c.name}' has {c.distinct} distinct values {where}, "
                f"but a {max_bits}-bit table holds at most {2 ** max_bits}. Cluster the "
                "layer with tinycompress.clustering to at most that many values, raise "
                f"max_bits (up to {LUT_MAX_BITS}), or leave the tensor out."
            )
        chosen.append(c)
    return chosen


def _unchanged(model_bytes: bytes, arena: int) -> LutResult:
    return LutResult(bytes(model_bytes), [], len(model_bytes), len(model_bytes), arena, arena, 0)


def compress_luts(
    model_bytes: bytes,
    *,
    tensors: str | Sequence[int] | Callable[[LutCandidate], bool] = "auto",
    min_bytes: int = 256,
    max_bits: int = LUT_MAX_BITS,
    verify_samples: int = 16,
    seed: int = 0,
    verify_data=None,
    measure_each: bool = True,
    progress: Progress | None = None,
) -> LutResult:
    """LUT-compress constant tensors, verify on TFLM and report flash and arena.

    Args:
        model_bytes: full-integer `.tflite` flatbuffer bytes.
        tensors: which tensors to compress. ``"auto"`` (default): every int8
            constant tensor of at least ``min_bytes`` that fits a table of
            ``2**max_bits`` values and shrinks; when the compressed model as a
            whole is not smaller (DECODE bookkeeping outweighs small tensors'
            savings), the model is returned unchanged. A list of tensor indices:
            exactly those (an error if one does not fit). A callable taking a
            `LutCandidate` and returning True to compress it (e.g.
            ``lambda c: c.nbytes >= 4096`` for large tensors only).
        min_bytes: smallest tensor ``"auto"`` compresses. Default 256.
        max_bits: widest index allowed, 1..7. Default 7.
        verify_samples: seeded random samples compared bit for bit on TFLM.
            Default 16.
        seed: seed of those samples. Default 0.
        verify_data: float samples to compare on instead of random ones (a list
            per input for multi-input models). Default None.
        measure_each: also measure the arena with each tensor compressed alone,
            giving `LutTensor.host_arena_added` (one TFLM run per tensor). Default True.
        progress: called as ``progress("verifying and measuring LUT tensors",
            done, total)``: one step for the bit-exactness check, one per
            tensor measured, one for the final arena (see
            `tflite_export.progress`). Default None.

    Returns:
        A `LutResult`. When no tensor qualifies, its ``model_bytes`` is the
        input unchanged and ``tensors`` is empty.

    Raises:
        LutError: ``max_bits`` out of range, an unknown tensor index, or a
            tensor with more distinct values than its table holds.
        VerificationError: the compressed model's TFLM outputs differ.
        RuntimeCheckError: TFLM could not run either model.

    Example:
        >>> import tflite_export
        >>> from tflite_export.lut import compress_luts
        >>> r = compress_luts(tflite_export.testing.tiny_model(), verify_samples=2)
        >>> r.tensors, r.flash_saved  # 5-bit tables would not pay off here
        ([], 0)
    """
    if isinstance(max_bits, bool) or not isinstance(max_bits, int) or not 1 <= max_bits <= LUT_MAX_BITS:
        raise LutError(
            f"expected max_bits between 1 and {LUT_MAX_BITS} (TFLM's LUT holds at most "
            f"{2 ** LUT_MAX_BITS} values). Received max_bits={max_bits!r}."
        )
    chosen = _choose(lut_candidates(model_bytes), tensors, min_bytes, max_bits)
    host_arena_before = measure_arena(model_bytes).host_bytes
    if not chosen:
        logger.info("no tensor qualifies for LUT compression; the model is unchanged")
        return _unchanged(model_bytes, host_arena_before)
    compressed = _compress(model_bytes, chosen)
    if isinstance(tensors, str) and len(compressed) >= len(model_bytes):
        logger.info(
            "LUT compression of %d small tensor(s) would grow the model from %d to %d bytes "
            "(DECODE bookkeeping); the model is unchanged", len(chosen), len(model_bytes),
            len(compressed))
        return _unchanged(model_bytes, host_arena_before)
    x = verification_inputs(model_bytes, verify_data, verify_samples, seed)
    steps = 2 + (len(chosen) if measure_each else 0)
    report(progress, _LUT_STEP, 0, steps)
    n = verify_identical(model_bytes, compressed, x, what="LUT-compressed")
    report(progress, _LUT_STEP, 1, steps)
    rows = []
    for k, c in enumerate(chosen):
        added = None
        if measure_each:
            alone = compressed if len(chosen) == 1 else _compress(model_bytes, [c])
            added = measure_arena(alone).host_bytes - host_arena_before
            report(progress, _LUT_STEP, 2 + k, steps)
        rows.append(LutTensor(c.index, c.name, c.bits, c.tables, c.nbytes, c.encoded_bytes,
                              c.table_bytes, c.flash_saved, c.decoded_bytes, added))
    host_arena_after = measure_arena(compressed).host_bytes
    report(progress, _LUT_STEP, steps, steps)
    return LutResult(
        model_bytes=compressed,
        tensors=rows,
        flash_before=len(model_bytes),
        flash_after=len(compressed),
        host_arena_before=host_arena_before,
        host_arena_after=host_arena_after,
        verified_samples=n,
    )


def _compress(model_bytes: bytes, chosen: list[LutCandidate]) -> bytes:
    values = {c.index: _values(model_bytes, c.index) for c in chosen}
    return insert_decodes(model_bytes, {
        c.index: encode_lut(values[c.index], c.axis, c.bits) for c in chosen})


def _values(model_bytes: bytes, index: int) -> np.ndarray:
    m = fb.unpack(model_bytes)
    t = m.subgraphs[0].tensors[index]
    values = np.frombuffer(bytes(m.buffers[t.buffer].data), fb.numpy_dtype(t.type))
    return values.reshape(tuple(int(s) for s in t.shape)) if t.shape is not None else values
