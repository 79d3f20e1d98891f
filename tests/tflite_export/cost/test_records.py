"""Operator records and the measured table: read back what was written, atomically."""

from __future__ import annotations

import os

import pytest

from tflite_export import inspect
from tflite_export.cost import records as rec
from tflite_export.errors import ModelFormatError
from tflite_export.testing import tiny_model


def _rows():
    records = rec.op_records(tiny_model())
    return [rec.MeasuredOp("tiny", k, "cortex-m4", r, 1000 + 7 * r.op_index + len(k))
            for k in rec.KERNELS for r in records]


def test_records_match_inspect():
    records = rec.op_records(tiny_model())
    layers = inspect(tiny_model(), measure=False).layers
    assert [r.op for r in records] == [layer.op for layer in layers]
    assert [r.macs for r in records] == [layer.macs for layer in layers]
    assert [r.input_shapes for r in records] == [layer.input_shapes for layer in layers]
    assert [r.output_dtypes for r in records] == [layer.output_dtypes for layer in layers]
    assert [r.options["fused_activation"] for r in records] == ["RELU", "NONE"]


def test_table_round_trip(tmp_path):
    path = tmp_path / "measured.csv"
    meta = {"tflm_commit": "abc123", "qemu": "7.2.22", "held_out": "kws, vww"}
    rows = _rows()
    rec.write_table(path, meta, rows)
    assert rec.read_table(path) == (meta, rows)
    assert rec.held_out_models(meta) == {"kws", "vww"}
    assert path.read_text().splitlines()[3] == ",".join(rec.TABLE_COLUMNS)


def test_model_table_round_trip(tmp_path):
    path = tmp_path / "measured_models.csv"
    rows = [rec.ModelTotal("kws", "cmsis_nn", "cortex-m55", 13, 1_234_567)]
    rec.write_model_table(path, {"generated": "2026-12-02"}, rows)
    assert rec.read_model_table(path) == ({"generated": "2026-12-02"}, rows)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "measured.csv"
    rec.write_table(path, {"tflm_commit": "old"}, _rows())
    before = path.read_bytes()

    def broken(rows):
        yield next(iter(rows))
        raise OSError("disk full")

    with pytest.raises(OSError):
        rec.write_table(path, {"tflm_commit": "new"}, broken(_rows()))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["measured.csv"]


def test_bad_tables_are_our_errors(tmp_path):
    path = tmp_path / "t.csv"
    with pytest.raises(ModelFormatError, match="cannot read"):
        rec.read_table(path)
    path.write_text("model,op\nx,CONV_2D\n")
    with pytest.raises(ModelFormatError, match="expected the columns"):
        rec.read_table(path)
    rec.write_table(path, {}, _rows())
    text = path.read_text().splitlines()
    text[1] = text[1].rsplit(",", 1)[0] + ",many"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ModelFormatError, match="bad row 1"):
        rec.read_table(path)
    with pytest.raises(ModelFormatError, match="metadata keys"):
        rec.write_table(path, {"two words": "x"}, [])
