"""`tflite_export._structure`: one bounded walk over the flatbuffer before the
object API unpacks it (shared tables cannot make `validate` quadratic)."""

from __future__ import annotations

import inspect
import re

import pytest

from tflite_export import _flatbuffer as fb
from tflite_export._structure import (
    _SHAPE,
    WORK_PER_BYTE,
    StructureError,
    WorkBoundError,
    check_structure,
)
from tflite_export.errors import ModelFormatError
from tflite_export.testing import tiny_model
from tflite_export.validate import validate

from hostile_models import shared_table_model


def _derived_shape() -> dict[str, dict[int, tuple]]:
    """The offset fields of every schema table, read from the generated reader."""
    shape = {}
    for name, cls in vars(fb.schema).items():
        if not (inspect.isclass(cls) and hasattr(cls, "Init") and hasattr(fb.schema, name + "T")):
            continue
        fields, sizes, unions = {}, {}, {}
        for meth, fn in vars(cls).items():
            if not callable(fn) or meth.startswith("_") or meth in ("Init", "GetRootAs"):
                continue
            src = inspect.getsource(fn)
            m = re.search(r"self\._tab\.Offset\((\d+)\)", src)
            if not m:
                continue
            slot = int(m.group(1))
            obj = re.search(r"obj = (\w+)\(\)", src)
            if "self._tab.String(" in src:
                fields[slot] = ("s", 1)
            elif "self._tab.Union(" in src:
                unions[slot] = meth
            elif "self._tab.Vector(" in src and "Indirect" in src:
                fields[slot] = ("T", obj.group(1))
            elif "self._tab.Indirect(" in src:
                fields[slot] = ("t", obj.group(1))
            elif "self._tab.Vector(" in src and re.search(r"j \* (\d+)", src):
                sizes[slot] = int(re.search(r"j \* (\d+)", src).group(1))
        fields.update({slot: ("v", size) for slot, size in sizes.items()})
        for slot, meth in unions.items():
            type_src = inspect.getsource(getattr(cls, meth + "Type"))
            type_slot = int(re.search(r"Offset\((\d+)\)", type_src).group(1))
            union = {"Details": "QuantizationDetails", "ArraySegments": "SparseIndexVector",
                     "ArrayIndices": "SparseIndexVector"}.get(meth, meth)
            fields[slot] = ("u", (type_slot, union))
        if fields:
            shape[name] = dict(sorted(fields.items()))
    return shape


def test_the_offset_table_matches_the_installed_schema():
    assert _SHAPE == _derived_shape()


def test_real_models_cost_less_than_one_unit_per_byte():
    data = tiny_model()
    walk = check_structure(data)
    assert 0 < walk.expanded <= walk.steps <= len(data)


@pytest.mark.parametrize("refs", [100, 400, 1600])
def test_shared_tables_are_refused_with_work_bounded_by_the_file_size(refs):
    # 400 refs is a 3.3 KB file that the object API expands into 160,000 tensors
    # (38 s and 157 MB before this walk existed).
    data = shared_table_model(refs)
    with pytest.raises(WorkBoundError, match="point many times at the same tables") as info:
        check_structure(data)
    # Each table and vector is visited once: the walk is linear in the file.
    walk = info.value.walk
    assert walk.steps <= 2 * refs + 16 <= WORK_PER_BYTE * len(data)
    assert walk.expanded > walk.limit
    with pytest.raises(ModelFormatError, match="same tables"):
        validate(data)


def test_offsets_outside_the_file_are_named():
    data = bytearray(tiny_model())
    data[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(StructureError, match="outside the"):
        check_structure(bytes(data))
