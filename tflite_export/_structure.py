"""Walk a TFLite flatbuffer once, bounding the work by its size.

The schema's object API (`ModelT.InitFromPackedBuf`) follows every offset it
meets, so a file whose offsets all point at one shared table is unpacked once
per reference: a few kilobytes can expand into millions of objects (quadratic
or worse in the file size). `check_structure` reads the raw bytes first and
visits each table and each vector once (memoized by position), checks that
every offset, vector and string lies inside the file, and computes what the
object API would build with sharing expanded. Both the walk and the expansion
are bounded by `WORK_PER_BYTE` units per file byte; a file over either bound is
refused before anything unpacks it.

Work units: one per table, one per element of a vector of tables, one per
64 bytes of a scalar vector or string (plus one per vector or string). A file
written by a flatbuffer builder (no sharing) costs less than one unit per byte.

`_SHAPE` lists, per schema table, the fields that hold offsets: ``('s', 1)`` a
string, ``('v', size)`` a vector of scalars of ``size`` bytes, ``('t', Table)``
a table, ``('T', Table)`` a vector of tables, ``('u', (type_slot, Union))`` a
union whose type is at ``type_slot``. It was derived from the generated schema
module of the ``tflite-micro`` package; ``tests/tflite_export/test_structure.py``
derives it again and fails when the schema changes.
"""

from __future__ import annotations

import struct

from tflite_export import _flatbuffer as fb

__all__ = ["WORK_PER_BYTE", "StructureError", "WorkBoundError", "Walk", "check_structure"]

#: Units of work (see the module docstring) allowed per byte of the file.
WORK_PER_BYTE = 2
_WORK_FLOOR = 4096

_SHAPE: dict[str, dict[int, tuple]] = {
    'BlockwiseQuantization': {10: ('v', 4)},
    'BucketizeOptions': {4: ('v', 4)},
    'Buffer': {4: ('v', 1)},
    'ConcatEmbeddingsOptions': {6: ('v', 4), 8: ('v', 4)},
    'CustomQuantization': {4: ('v', 1)},
    'DimensionMetadata': {10: ('u', (8, 'SparseIndexVector')), 14: ('u', (12, 'SparseIndexVector'))},
    'ExternalBuffer': {12: ('s', 1)},
    'ExternalBufferGroup': {4: ('s', 1)},
    'FullyConnectedOptions': {14: ('v', 1)},
    'Int32Vector': {4: ('v', 4)},
    'Metadata': {4: ('s', 1)},
    'Model': {6: ('T', 'OperatorCode'), 8: ('T', 'SubGraph'), 10: ('s', 1), 12: ('T', 'Buffer'), 14: ('v', 4), 16: ('T', 'Metadata'), 18: ('T', 'SignatureDef'), 20: ('T', 'ExternalBufferGroup'), 22: ('T', 'ExternalBuffer')},
    'MultiAxisQuantization': {10: ('v', 4)},
    'Operator': {6: ('v', 4), 8: ('v', 4), 12: ('u', (10, 'BuiltinOptions')), 14: ('v', 1), 18: ('v', 1), 20: ('v', 4), 28: ('u', (26, 'BuiltinOptions2'))},
    'OperatorCode': {6: ('s', 1)},
    'QuantizationParameters': {4: ('v', 4), 6: ('v', 4), 8: ('v', 4), 10: ('v', 8), 14: ('u', (12, 'QuantizationDetails'))},
    'ReshapeOptions': {4: ('v', 4)},
    'SignatureDef': {4: ('T', 'TensorMap'), 6: ('T', 'TensorMap'), 8: ('s', 1)},
    'SparsityParameters': {4: ('v', 4), 6: ('v', 4), 8: ('T', 'DimensionMetadata')},
    'SqueezeOptions': {4: ('v', 4)},
    'StableHLOCompositeOptions': {4: ('s', 1), 8: ('v', 1)},
    'StablehloBroadcastInDimOptions': {4: ('v', 8)},
    'StablehloCaseOptions': {4: ('v', 4)},
    'StablehloConvolutionOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8), 10: ('v', 8), 12: ('v', 1), 18: ('v', 8), 24: ('v', 8), 30: ('v', 8), 36: ('v', 4)},
    'StablehloCustomCallOptions': {4: ('s', 1), 8: ('s', 1), 12: ('v', 4), 14: ('v', 1)},
    'StablehloDotGeneralOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8), 10: ('v', 8), 12: ('v', 4)},
    'StablehloDynamicSliceOptions': {4: ('v', 8)},
    'StablehloGatherOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8), 12: ('v', 8)},
    'StablehloPadOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8)},
    'StablehloReduceOptions': {4: ('v', 8)},
    'StablehloReduceWindowOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8), 10: ('v', 8), 12: ('v', 8)},
    'StablehloScatterOptions': {6: ('v', 8), 8: ('v', 8), 10: ('v', 8)},
    'StablehloSliceOptions': {4: ('v', 8), 6: ('v', 8), 8: ('v', 8)},
    'StablehloTransposeOptions': {4: ('v', 8)},
    'SubGraph': {4: ('T', 'Tensor'), 6: ('v', 4), 8: ('v', 4), 10: ('T', 'Operator'), 12: ('s', 1)},
    'Tensor': {4: ('v', 4), 10: ('s', 1), 12: ('t', 'QuantizationParameters'), 16: ('t', 'SparsityParameters'), 18: ('v', 4), 22: ('T', 'VariantSubType')},
    'TensorMap': {4: ('s', 1)},
    'Uint16Vector': {4: ('v', 2)},
    'Uint8Vector': {4: ('v', 1)},
    'VarHandleOptions': {4: ('s', 1), 6: ('s', 1)},
    'VariantSubType': {4: ('v', 4)},
}

_UNIONS = {
    name: {v: k for k, v in vars(getattr(fb.schema, name)).items() if not k.startswith("_")}
    for name in ("BuiltinOptions", "BuiltinOptions2", "QuantizationDetails", "SparseIndexVector")
}


class StructureError(Exception):
    """A flatbuffer offset, vector or string points outside the file.

    Attributes:
        walk: the `Walk` that refused the file (set by `check_structure`).
    """

    walk: "Walk | None" = None


class WorkBoundError(StructureError):
    """Reading or unpacking the flatbuffer would exceed the work bound."""


class Walk:
    """One walk over a model's flatbuffer (use `check_structure`).

    Attributes:
        steps: units of work done by the walk itself.
        expanded: units of work the object API does with sharing expanded.
        limit: the bound for both, ``WORK_PER_BYTE * len(data)`` (at least 4096).
    """

    def __init__(self, data: bytes):
        self.data = bytes(data)
        self.size = len(self.data)
        self.limit = max(_WORK_FLOOR, WORK_PER_BYTE * self.size)
        self.steps = 0
        self.expanded = 0
        self._tables: dict[tuple[str, int], int] = {}
        self._vectors: dict[tuple[str, int], int] = {}

    def _step(self, units: int) -> None:
        self.steps += units
        if self.steps > self.limit:
            raise WorkBoundError(
                f"reading the flatbuffer takes more than {self.limit} steps for a "
                f"{self.size}-byte file: its vectors overlap or share entries"
            )

    def _read(self, fmt: str, pos: int, what: str) -> int:
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise StructureError(f"{what} at byte {pos} lies outside the {self.size}-byte file")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def _target(self, pos: int, what: str) -> int:
        return pos + self._read("<I", pos, f"the offset to {what}")

    def _vector(self, pos: int, item: int, what: str) -> tuple[int, int]:
        start = self._target(pos, what)
        length = self._read("<I", start, f"the length of {what}")
        if start + 4 + length * item > self.size:
            raise StructureError(
                f"{what} at byte {start} claims {length} entries of {item} bytes, past the end "
                f"of the {self.size}-byte file"
            )
        return start, length

    def table(self, name: str, pos: int) -> int:
        """Expanded cost of the table ``name`` at ``pos`` (memoized)."""
        key = (name, pos)
        if key in self._tables:
            return self._tables[key]
        self._step(1)
        what = f"a {name} table"
        vtable = pos - self._read("<i", pos, what)
        vt_len = self._read("<H", vtable, f"the field table of {what}")
        cost = 1
        for slot, (kind, arg) in _SHAPE.get(name, {}).items():
            if slot + 2 > vt_len:
                continue
            field = self._read("<H", vtable + slot, f"the field table of {what}")
            if field == 0:
                continue
            cost += self._field(name, pos + field, kind, arg, vtable, pos)
            if cost > self.limit:
                break
        self._tables[key] = cost
        return cost

    def _field(self, name: str, at: int, kind: str, arg, vtable: int, pos: int) -> int:
        what = f"a field of a {name} table"
        if kind in "sv":
            _, length = self._vector(at, arg, what)
            units = 1 + (length * arg) // 64
            self._step(units)
            return units
        if kind == "t":
            return self.table(arg, self._target(at, what))
        if kind == "T":
            return self._tables_vector(arg, at, what)
        type_slot, union = arg
        vt_len = self._read("<H", vtable, what)
        type_field = self._read("<H", vtable + type_slot, what) if type_slot + 2 <= vt_len else 0
        member = _UNIONS[union].get(self._read("<B", pos + type_field, what)) if type_field else None
        if member is None or member == "NONE":
            return 1
        return self.table(member, self._target(at, what))

    def _tables_vector(self, name: str, at: int, what: str) -> int:
        start, length = self._vector(at, 4, what)
        key = (name, start)
        if key in self._vectors:
            return self._vectors[key]
        self._step(1 + length)
        cost = 1 + length
        for j in range(length):
            elem = start + 4 + 4 * j
            cost += self.table(name, self._target(elem, f"entry {j} of a vector of {name}"))
            if cost > self.limit:
                break
        self._vectors[key] = cost
        return cost


def check_structure(data: bytes) -> Walk:
    """Walk the whole flatbuffer once; raise unless it is in bounds and cheap to unpack.

    Args:
        data: flatbuffer bytes with a TFLite root table.

    Returns:
        The `Walk`, with the work it did (``steps``) and the work the object
        API will do (``expanded``).

    Raises:
        StructureError: an offset, vector or string points outside the file,
            or the walk or the unpacking would exceed the work bound.
    """
    walk = Walk(data)
    try:
        walk.expanded = walk.table("Model", walk._target(0, "the root table"))
        if walk.expanded > walk.limit:
            raise WorkBoundError(
                f"unpacking the model would build more than {walk.limit} entries from a "
                f"{walk.size}-byte file: its offsets point many times at the same tables "
                "(a TFLite writer never shares tables)"
            )
    except StructureError as e:
        e.walk = walk  # the work done before refusing, for tests and diagnostics
        raise
    return walk
