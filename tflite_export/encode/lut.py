"""Lookup-table encoding for TFLM's DECODE (``kernels/decode_state_lut.cc``).

- encoded tensor: one ``bits``-wide index per element (1..7 bits) in the
  tensor's C order, packed most significant bit first.
- ancillary tensor: the 16-byte decode common metadata (byte 0: type 0,
  byte 1: metadata version 1, byte 4: LUT version 1, byte 5: ``bits``,
  byte 6: table stride in elements), then the value tables, one per quantized
  channel (the decoder takes its channel count and axis from the decoded
  tensor's quantization: axis 0 or the last axis) or one for the tensor, each
  ``stride`` elements long, in the tensor's element type.
"""

from __future__ import annotations

import math

import numpy as np

from tflite_export.encode._rewrite import Encoding

__all__ = ["LUT_MAX_BITS", "LUT_TYPES", "lut_layout", "encode_lut"]

#: Widest index TFLM's LUT decoder reads (128-entry tables).
LUT_MAX_BITS = 7

#: numpy dtypes the LUT decoder writes.
LUT_TYPES = ("bool", "int8", "int16", "int32", "int64", "float32")


def lut_layout(values: np.ndarray, axis: int | None) -> tuple[int, int]:
    """Most distinct values in one table, and the index bits they need.

    Args:
        values: the tensor's values in their real shape.
        axis: the channel axis of the tables, or None for one table.

    Returns:
        ``(distinct, bits)``; ``bits`` may exceed `LUT_MAX_BITS`.
    """
    if axis is None:
        distinct = int(np.unique(values).size)
    else:
        slices = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
        distinct = max(int(np.unique(s).size) for s in slices)
    return distinct, max(1, math.ceil(math.log2(distinct))) if distinct > 1 else 1


def encode_lut(values: np.ndarray, axis: int | None, bits: int | None = None) -> Encoding | None:
    """Encode a tensor as packed indices into per-channel or per-tensor tables.

    Args:
        values: the tensor's values in their real shape and dtype.
        axis: the channel axis (0 or the last axis) when the tensor is
            quantized per channel, else None.
        bits: index width; default None: the fewest that fit.

    Returns:
        The `Encoding` (kind ``"lut"``), or None when a table would need more
        than 128 entries, the type is not decodable, or ``bits`` is too small.

    Example:
        >>> import numpy as np
        >>> from tflite_export.encode.lut import encode_lut
        >>> e = encode_lut(np.array([7, -7, 7, 7], np.int8), axis=None)
        >>> e.data.hex(), e.ancillary[5:7], e.ancillary[16:]
        ('b0', b'\\x01\\x02', b'\\xf9\\x07')
    """
    values = np.asarray(values)
    if values.dtype.name not in LUT_TYPES or values.size == 0:
        return None
    distinct, need = lut_layout(values, axis)
    bits = need if bits is None else bits
    if need > bits or bits > LUT_MAX_BITS:
        return None
    channels = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1) if axis is not None \
        else values.reshape(1, -1)
    tables = np.zeros((len(channels), distinct), dtype=values.dtype.newbyteorder("<"))
    index = np.empty(np.moveaxis(values, axis, 0).shape if axis is not None else values.shape,
                     dtype=np.uint8)
    index = index.reshape(len(channels), -1)
    for c, row in enumerate(channels):
        table, inverse = np.unique(row, return_inverse=True)
        tables[c, :table.size] = table
        index[c] = inverse.ravel()
    if axis is not None:  # back to the tensor's own element order
        shape = np.moveaxis(values, axis, 0).shape
        index = np.moveaxis(index.reshape(shape), 0, axis)
    bitplanes = (index.reshape(-1, 1) >> np.arange(bits - 1, -1, -1)) & 1
    header = bytes([0, 1, 0, 0, 1, bits, distinct]) + bytes(9)
    return Encoding("lut", np.packbits(bitplanes.astype(np.uint8).ravel()).tobytes(),
                    header + tables.tobytes())
