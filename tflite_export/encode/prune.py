"""Prune encoding for TFLM's DECODE: a bitmask of kept values and their table.

The layout is the one TFLM's ``kernels/decode_state_prune.cc`` reads:

- encoded tensor: one bit per element in the tensor's C (row-major) order,
  most significant bit first in each byte; 1 keeps the next value of the table,
  0 writes the zero point.
- ancillary tensor: the 16-byte decode common metadata (byte 0: type 2,
  byte 1: metadata version 1, byte 4: prune version 1), then the kept values
  in the same order, in the tensor's own element type.

The "pruned" value is the tensor's zero point: one for the whole tensor, or
for int8 tensors quantized per channel (axis 0 or the last axis) one per
channel. Other element types decode with zero points of zero only, so a
tensor of another type with a non-zero zero point is not prune-encodable.
"""

from __future__ import annotations

import numpy as np

from tflite_export.encode._rewrite import Encoding

__all__ = ["PRUNE_TYPES", "prune_fill", "encode_prune"]

#: numpy dtypes the prune decoder writes (bool and float32 are copied bitwise).
PRUNE_TYPES = ("bool", "int8", "int16", "int32", "int64", "float32")

_HEADER = bytes([2, 1, 0, 0, 1]) + bytes(11)


def prune_fill(shape: tuple[int, ...], dtype: np.dtype, zero_points, axis: int | None):
    """The value each pruned position decodes to, broadcast to ``shape``.

    Args:
        shape: the tensor's shape.
        dtype: its numpy dtype.
        zero_points: its quantization zero points (empty or None if none).
        axis: its quantized dimension.

    Returns:
        An array of ``shape`` and ``dtype``, or None when the decoder can not
        decode this tensor (unsupported type, a non-zero zero point on a
        non-int8 tensor, or a channel axis other than the first or last).
    """
    dtype = np.dtype(dtype)
    if dtype.name not in PRUNE_TYPES:
        return None
    zps = np.asarray([] if zero_points is None else zero_points, dtype=np.int64).ravel()
    if zps.size == 0 or not zps.any():
        return np.zeros(shape, dtype)
    if dtype != np.int8:
        return None
    if zps.size == 1:
        return np.full(shape, zps[0], dtype)
    if axis is None or not shape or zps.size != shape[axis]:
        return None
    if axis not in (0, len(shape) - 1):
        return None
    view = [1] * len(shape)
    view[axis] = zps.size
    return np.broadcast_to(zps.astype(dtype).reshape(view), shape)


def encode_prune(values: np.ndarray, fill: np.ndarray) -> Encoding:
    """Encode a tensor as a keep-bitmask plus the kept values.

    Args:
        values: the tensor's values in their real shape and dtype.
        fill: what each pruned position decodes to (see `prune_fill`).

    Returns:
        The `Encoding` (kind ``"prune"``).

    Example:
        >>> import numpy as np
        >>> from tflite_export.encode.prune import encode_prune
        >>> w = np.array([0, 5, 0, 0, -3, 0, 0, 0, 7], np.int8)
        >>> e = encode_prune(w, np.zeros_like(w))
        >>> e.data.hex(), e.ancillary[16:]
        ('4880', b'\\x05\\xfd\\x07')
    """
    values = np.asarray(values)
    flat = values.ravel()
    raw = flat.view(np.int32) if flat.dtype == np.float32 else flat
    keep = raw != np.asarray(fill).astype(values.dtype).ravel().view(raw.dtype)
    return Encoding("prune", np.packbits(keep).tobytes(),
                    _HEADER + flat[keep].astype(flat.dtype.newbyteorder("<")).tobytes())
