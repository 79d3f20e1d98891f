"""`tflite_export.report`: the dictionary, JSON, Markdown and rich renderings of
a `ModelReport` carry the inspected numbers exactly."""

from __future__ import annotations

import dataclasses
import io
import json

import flatbuffers
import pytest

from tflite_export import _flatbuffer as fb
from tflite_export import inspect
from tflite_export.report import ModelReport, print_report, render_table


@pytest.fixture(scope="module")
def report(conv_model) -> ModelReport:
    return inspect(conv_model[1], measure=False)


def test_to_dict_holds_every_field(report):
    d = report.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(ModelReport)}
    assert (d["flash_bytes"], d["weight_bytes"], d["macs"], d["params"]) == (
        report.flash_bytes, 376, 5508, 337)
    assert d["layers"][0]["op"] == "CONV_2D" and d["layers"][0]["macs"] == 3888
    assert d["inputs"][0]["zero_point"] == report.inputs[0].zero_point


def test_json_round_trip_and_stability(report, conv_model):
    text = report.to_json()
    loaded = json.loads(text)
    assert loaded["macs"] == 5508 and loaded["arena_bytes"] is None
    assert loaded["layers"][0]["input_shapes"] == [[1, 8, 8, 3], [4, 3, 3, 3], [4]]
    assert loaded["layers"][4]["input_shapes"] == [[1, 36], [5, 36], [5]]
    assert loaded["op_counts"] == {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "MAX_POOL_2D": 1,
                                   "RESHAPE": 1, "FULLY_CONNECTED": 1}
    # Same model, same text; one line when asked.
    assert inspect(conv_model[1], measure=False).to_json() == text
    assert "\n" not in report.to_json(indent=None)
    assert json.loads(report.to_json(indent=None)) == loaded


def test_omitted_input_is_null(pruned_dense_model):
    # The all-zero bias was dropped by the converter: input slot 2 is -1 in the model.
    layer = json.loads(inspect(pruned_dense_model[1], measure=False).to_json())["layers"][0]
    assert layer["input_shapes"] == [[1, 10], [6, 10], None]
    assert layer["input_dtypes"] == ["int8", "int8", None]


def test_markdown(report):
    md = report.to_markdown()
    lines = md.splitlines()
    assert f"| flash | {report.flash_bytes} B |" in lines
    assert "| weights | 376 B |" in lines
    assert "| MACs | 5508 |" in lines
    assert "| arena | not measured |" in lines
    assert "| TFLM | supported |" in lines
    assert ("| 0 | CONV_2D | int8[1x8x8x3], int8[4x3x3x3], int32[4] | int8[1x6x6x4] "
            "| 112 | 124 | 3888 | 4 | 0.0% |") in lines
    assert "| 3 | RESHAPE | int8[1x3x3x4], int32[2] | int8[1x36] | 0 | 0 | 0 | - | - |" in lines
    layer_rows = [line for line in lines if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()]
    assert len(layer_rows) == len(report.layers) == 5
    assert md.endswith("\n")


def test_markdown_names_unsupported_ops(conv_model):
    m = fb.unpack(conv_model[1])
    code = next(c for c in m.operatorCodes if fb.op_name(c) == "MAX_POOL_2D")
    code.builtinCode = code.deprecatedBuiltinCode = fb.schema.BuiltinOperator.LSH_PROJECTION
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    md = inspect(bytes(builder.Output()), measure=False).to_markdown()
    assert "| TFLM | unsupported ops: LSH_PROJECTION |" in md
    assert "| 2 | LSH_PROJECTION (no TFLM kernel) |" in md


def test_rich_table(report):
    table = render_table(report)
    assert table.row_count == len(report.layers) + 1
    assert len(table.columns) == 8
    assert f"flash: {report.flash_bytes} B" in table.caption
    assert list(table.columns[5].cells) == ["3888", "1296", "144", "0", "180", "5508"]


def test_table_fits_an_80_column_terminal(report):
    from rich.console import Console

    out = io.StringIO()
    print_report(report, Console(file=out, width=80))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    for fragment in ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "5508"):
        assert fragment in out.getvalue()


def test_print_report(report):
    from rich.console import Console

    out = io.StringIO()
    print_report(report, Console(file=out, width=220))
    text = out.getvalue()
    for fragment in ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "total", "5508", "376"):
        assert fragment in text


def test_measured_report_renders_arena(conv_model):
    measured = inspect(conv_model[1])
    assert f"| arena | {measured.arena_bytes} B (firmware: {measured.arena_emitted_bytes} B) |" \
        in measured.to_markdown()
    assert json.loads(measured.to_json())["arena_bytes"] == measured.arena_bytes > 0
