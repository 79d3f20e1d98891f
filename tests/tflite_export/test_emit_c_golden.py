"""The C headers rendered from templates are byte-identical to the pinned golden files.

The golden files under ``data/golden_c`` were written by the string-building
emitter before the headers moved to ``firmware_templates/c_sources``; any change
to the generated text shows up here as a diff.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import pytest

import firmware_templates
from tflite_export import _flatbuffer as fb
from tflite_export.emit_c import (
    model_data_header,
    model_data_source,
    model_io_header,
    model_ops_header,
    render_c_sources,
)
from tflite_export.errors import EmitError
from tflite_export.testing import tiny_model

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden_c"


def _with_custom(model: bytes, code: bytes) -> bytes:
    m = fb.unpack(model)
    m.operatorCodes[0].builtinCode = fb.schema.BuiltinOperator.CUSTOM
    m.operatorCodes[0].deprecatedBuiltinCode = 32
    m.operatorCodes[0].customCode = code
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


CASES = {
    "tiny_kws": (lambda: tiny_model(), "kws"),
    "two_io": (lambda: (DATA / "two_io.tflite").read_bytes(), "model"),
    "two_io_float": (lambda: (DATA / "two_io_float.tflite").read_bytes(), "net-2"),
    "custom": (lambda: _with_custom(tiny_model(), b'My"Op*/'), "model"),
    "decode": (lambda: _with_custom(tiny_model(), b"TFLM_DECODE"), "model"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_headers_match_the_golden_files(case):
    make, name = CASES[case]
    model = make()
    expected = {p.name: p.read_text() for p in (GOLDEN / case).iterdir()}
    got = {
        "data.h": model_data_header(model, name=name),
        "ops.h": model_ops_header(model, name=name, allow_unresolved_custom=True),
        "io.h": model_io_header(model, name=name, arena_size=3000),
    }
    if "data.cc" in expected:
        got["data.cc"] = model_data_source(model, name=name)
        got["data.c"] = model_data_source(model, name=name, language="c")
    assert got == expected


def test_render_c_sources_is_the_four_texts_from_one_parse(monkeypatch):
    calls = []
    real = fb.unpack
    monkeypatch.setattr(fb, "unpack", lambda data: calls.append(1) or real(data))
    texts = render_c_sources(tiny_model(), name="kws", arena_size=3000)
    assert len(calls) == 1
    assert texts["kws_io.h"] == (GOLDEN / "tiny_kws" / "io.h").read_text()
    assert texts["kws_data.cc"] == (GOLDEN / "tiny_kws" / "data.cc").read_text()


def test_template_lookups_fail_with_our_error():
    with pytest.raises(EmitError, match="template folder"):
        firmware_templates.template_files("nope")
    with pytest.raises(EmitError, match=".j2 template"):
        firmware_templates.read_template("c_sources/nope.h.j2")
    assert firmware_templates.template_files("c_sources") == [
        "model_data.c.j2", "model_data.h.j2", "model_io.h.j2", "model_ops.h.j2"]
