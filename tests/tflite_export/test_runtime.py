"""Native interpreters run in a child process: results, crashes, timeouts."""

from __future__ import annotations

import numpy as np
import pytest

import tflite_export
from tflite_export.errors import ModelFormatError, RuntimeCheckError
from tflite_export.runtime import call_worker
from tflite_export.testing import tiny_model


def test_tflm_and_litert_agree_bit_exactly_on_the_tiny_model():
    m = tiny_model()
    x = tflite_export.quantize(np.random.default_rng(0).normal(size=(16, 4)), m)
    a, b = tflite_export.run_tflm(m, x), tflite_export.run_litert(m, x)
    assert a.shape == (16, 3) and a.dtype == np.int8
    assert np.array_equal(a, b)


def test_a_native_crash_is_an_error_not_the_end_of_the_caller():
    # An interpreter that is handed a non-model without validation dies in C++;
    # the caller gets an exception naming what happened.
    with pytest.raises(RuntimeCheckError, match="native interpreter"):
        call_worker(b"\x00" * 4096, "tflm_run", [np.zeros((1, 4), np.int8)],
                    arena_size=4096, validate=False)


def test_invalid_models_never_reach_native_code():
    bad = bytearray(tiny_model())
    bad[4:8] = b"XXXX"
    with pytest.raises(ModelFormatError):
        tflite_export.run_tflm(bytes(bad), np.zeros((1, 4), np.int8))


def test_timeout_kills_the_child():
    with pytest.raises(RuntimeCheckError, match="did not finish within"):
        tflite_export.run_tflm(tiny_model(), np.zeros((100000, 4), np.int8), timeout_s=0.05)


def test_bad_batches_are_named():
    with pytest.raises(ValueError, match="samples on the first axis"):
        tflite_export.run_tflm(tiny_model(), np.zeros((0, 4), np.int8))


@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros(4, np.int8), r"samples of shape \(4,\).*x\[None\]"),
        (np.zeros((2, 5), np.int8), r"received shape \(2, 5\)"),
        (np.zeros((2, 4), np.float32), "tflite_export.quantize"),
        ([np.zeros((1, 4), np.int8)] * 2, "1 input"),
    ],
)
def test_inputs_that_do_not_fit_the_model_are_named_before_native_code(x, match):
    with pytest.raises(ValueError, match=match):
        tflite_export.run_tflm(tiny_model(), x)
    with pytest.raises(ValueError, match=match):
        tflite_export.run_litert(tiny_model(), x)


def test_quantize_dequantize_follow_the_model_parameters():
    m = tiny_model()
    d = tflite_export.input_details(m)[0]
    x = np.array([[0.0, d.scale, -1e9, 1e9]], np.float32)
    q = tflite_export.quantize(x, m)
    assert q.dtype == np.int8
    assert q.tolist() == [[d.zero_point, d.zero_point + 1, -128, 127]]
    o = tflite_export.output_details(m)[0]
    assert tflite_export.dequantize(np.array([o.zero_point + 2], np.int8), m)[0] == pytest.approx(2 * o.scale)


def test_the_bytes_side_never_imports_tensorflow():
    import subprocess
    import sys

    code = ("import sys, tflite_export; "
            "sys.exit(any(m in sys.modules for m in ('tensorflow', 'keras', 'tinycompress')))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---- hostile inputs (issue 13) ---------------------------------------------------------

def test_junk_bytes_are_refused_before_anything_reads_them():
    for junk in (b"abc", b"\x00" * 64, b"TFL3" * 8):
        with pytest.raises(ModelFormatError):
            tflite_export.run_tflm(junk, np.zeros((1, 4), np.int8))
        with pytest.raises(ModelFormatError):
            tflite_export.run_litert(junk, np.zeros((1, 4), np.int8))
        with pytest.raises(ModelFormatError):
            tflite_export.measure_arena(junk)


def test_inputs_that_do_not_fit_raise_our_input_error():
    from tflite_export.errors import InputError

    with pytest.raises(InputError, match="samples on the first axis"):
        tflite_export.run_tflm(tiny_model(), np.zeros((0, 4), np.int8))
    with pytest.raises(InputError, match="numeric arrays"):
        tflite_export.run_tflm(tiny_model(), [np.zeros((1, 4), np.int8), [[1], [1, 2]]])


def test_the_default_time_limit_is_seconds_from_the_model_size():
    from tflite_export.runtime import time_limit

    limit, why = time_limit(tiny_model(), runs=1)
    assert 10 <= limit < 20 and "estimate" in why
    assert time_limit(tiny_model(), runs=1, timeout_s=3)[0] == 3


def test_a_run_past_its_limit_is_ended_promptly_and_says_how_to_raise_it(monkeypatch):
    import time

    # 50 ms: less than starting the worker's Python and importing numpy takes.
    monkeypatch.setenv("TINYCOMPRESS_TIMEOUT_S", "0.05")
    start = time.monotonic()
    with pytest.raises(RuntimeCheckError) as info:
        tflite_export.measure_arena(tiny_model())
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "within 0.05 s" in message and "TINYCOMPRESS_TIMEOUT_S" in message
    assert "timeout_s=" in message
