"""Huffman encoding for TFLM's DECODE (``kernels/decode_state_huffman.cc``).

The decoder reads the code as a bit stream of 32-bit big-endian words and
walks lookup tables: it indexes the root table with the next ``root`` bits;
an entry either holds a symbol (bit 15, or bit 31 in 32-bit tables) with the
number of those bits the codeword used (the rest are put back), or points at
a sub-table ``offset`` entries further on, indexed by the next ``width`` bits.

- 16-bit entries (int8 output only): symbol flag 0x8000, count in bits 11..14
  (symbol: bits used; pointer: ``width - 1``), value/offset in bits 0..10.
- 32-bit entries (int8 and int16): flag 0x80000000, count in bits 27..30,
  value/offset in bits 0..26.
- ancillary header: byte 0 type 1, byte 1 metadata version 1, byte 4 Huffman
  version 1, byte 5 ``(root - 1) << 4`` plus 1 for 32-bit entries.

The stream is padded with one extra zero word: the decoder's look-ahead of
``root`` bits may read past the last codeword.
"""

from __future__ import annotations

import heapq
from collections import Counter

import numpy as np

from tflite_export.encode._rewrite import Encoding

__all__ = ["HUFFMAN_TYPES", "code_lengths", "encode_huffman"]

#: numpy dtypes the Huffman decoder writes.
HUFFMAN_TYPES = ("int8", "int16")

_MAX_WIDTH = 12  # widest lookup of one table: 4096 entries
_SUB_WIDTH = 8


def code_lengths(values: np.ndarray) -> dict[int, int]:
    """Huffman code length of each distinct value (1 for a single value).

    Example:
        >>> import numpy as np
        >>> from tflite_export.encode.huffman import code_lengths
        >>> code_lengths(np.array([0, 0, 0, 0, 1, 1, 2, 3], np.int8))
        {0: 1, 1: 2, 2: 3, 3: 3}
    """
    counts = Counter(np.asarray(values).ravel().tolist())
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap = [(n, k, (sym,)) for k, (sym, n) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    tie = len(heap)
    while len(heap) > 1:
        n1, _, s1 = heapq.heappop(heap)
        n2, _, s2 = heapq.heappop(heap)
        for sym in s1 + s2:
            lengths[sym] += 1
        heapq.heappush(heap, (n1 + n2, tie, s1 + s2))
        tie += 1
    return dict(sorted(lengths.items()))


def _canonical(lengths: dict[int, int]) -> list[tuple[int, int, int]]:
    """(code, length, symbol) of the canonical code for these lengths."""
    codes, code, prev = [], 0, 0
    for sym, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev
        codes.append((code, length, sym))
        code, prev = code + 1, length
    return codes


class _Tables:
    """Root and sub-tables as a flat list of (is_symbol, count, value) entries."""

    def __init__(self, codes, root: int):
        self.entries: list[tuple[bool, int, int]] = []
        self._emit(codes, 0, root)

    def _emit(self, items, depth: int, width: int) -> int:
        start = len(self.entries)
        self.entries.extend([(True, 0, 0)] * (1 << width))
        groups: dict[int, list] = {}
        for code, length, sym in items:
            rem = length - depth
            if rem <= width:
                first = ((code & ((1 << rem) - 1)) << (width - rem))
                for k in range(1 << (width - rem)):
                    self.entries[start + first + k] = (True, rem, sym)
            else:
                idx = (code >> (rem - width)) & ((1 << width) - 1)
                groups.setdefault(idx, []).append((code, length, sym))
        for idx, group in sorted(groups.items()):
            sub = min(max(length for _, length, _ in group) - depth - width, _SUB_WIDTH)
            sub_start = self._emit(group, depth + width, sub)
            self.entries[start + idx] = (False, sub - 1, sub_start - start - idx)
        return start


def _pack_entries(entries, wide: bool, mask: int) -> bytes | None:
    flag, shift, vmask, dtype = ((0x80000000, 27, 0x07FFFFFF, "<u4") if wide
                                 else (0x8000, 11, 0x07FF, "<u2"))
    out = []
    for is_symbol, count, value in entries:
        if is_symbol:
            out.append(flag | (count << shift) | (value & mask))
        elif value > vmask:
            return None  # sub-table offset too far for this entry width
        else:
            out.append((count << shift) | value)
    return np.asarray(out, dtype=dtype).tobytes()


def _bitstream(values: np.ndarray, codes) -> bytes:
    by_sym = {sym: (code, length) for code, length, sym in codes}
    syms = np.asarray(sorted(by_sym), dtype=np.int64)
    code = np.asarray([by_sym[s][0] for s in syms.tolist()], dtype=np.int64)
    length = np.asarray([by_sym[s][1] for s in syms.tolist()], dtype=np.int64)
    pos = np.searchsorted(syms, values.ravel().astype(np.int64))
    c, n = code[pos], length[pos]
    width = int(length.max())
    shifts = width - 1 - np.arange(width)
    bits = ((c[:, None] << (width - n)[:, None]) >> shifts[None, :]) & 1
    stream = np.packbits(bits[np.arange(width)[None, :] < n[:, None]].astype(np.uint8))
    pad = (-len(stream)) % 4 + 4
    return stream.tobytes() + bytes(pad)


def encode_huffman(values: np.ndarray, table_bits: int | None = None) -> Encoding | None:
    """Huffman-encode an int8 or int16 tensor in C order.

    Args:
        values: the tensor's values.
        table_bits: 16 or 32-bit table entries. Default None: 16 when they
            fit (int8 only), else 32.

    Returns:
        The `Encoding` (kind ``"huffman"``), with 16-bit tables when they fit
        (int8 only) and the root table width that gives the smallest tables;
        None for another element type (or 16-bit entries asked for int16
        values or for offsets they can not hold).

    Example:
        >>> import numpy as np
        >>> from tflite_export.encode.huffman import encode_huffman
        >>> e = encode_huffman(np.array([0] * 30 + [3, -3], np.int8))
        >>> len(e.data), e.ancillary[5] & 1  # 34 bits in 2 words + 1 pad word; 16-bit table
        (12, 0)
    """
    values = np.asarray(values)
    if values.dtype.name not in HUFFMAN_TYPES or values.size == 0:
        return None
    if table_bits == 16 and values.dtype != np.int8:
        return None
    codes = _canonical(code_lengths(values))
    longest = max(length for _, length, _ in codes)
    best = None
    for root in range(1, min(longest, _MAX_WIDTH) + 1):
        entries = _Tables(codes, root).entries
        if best is None or len(entries) < len(best[1]):
            best = (root, entries)
    root, entries = best
    mask = 0xFF if values.dtype == np.int8 else 0xFFFF
    table = None
    if values.dtype == np.int8 and table_bits != 32:
        table = _pack_entries(entries, False, mask)
    wide = table is None
    if wide and table_bits == 16:
        return None
    if wide:
        table = _pack_entries(entries, True, mask)
    header = bytes([1, 1, 0, 0, 1, ((root - 1) << 4) | int(wide)]) + bytes(10)
    return Encoding("huffman", _bitstream(values, codes), header + table)
