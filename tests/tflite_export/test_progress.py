"""Long-running bytes-side functions report progress as ``progress(description, done, total)``."""

from __future__ import annotations

import numpy as np
import pytest

import tflite_export
from tflite_export.errors import RuntimeCheckError
from tflite_export.lut import compress_luts


def _recorder():
    calls = []
    return calls, lambda description, done, total: calls.append((description, done, total))


def _counts_up_to_total(calls) -> bool:
    done = [d for _, d, _ in calls]
    totals = {t for _, _, t in calls}
    return (len(totals) == 1 and done[0] == 0 and done[-1] == totals.pop()
            and all(a < b for a, b in zip(done, done[1:])))


def test_arena_bisection_reports_each_step_and_measures_the_same():
    model = tflite_export.testing.tiny_model()
    calls, progress = _recorder()
    with_progress = tflite_export.measure_arena(model, progress=progress)
    assert with_progress == tflite_export.measure_arena(model)
    assert {d for d, _, _ in calls} == {"measuring the tensor arena"}
    assert _counts_up_to_total(calls)
    upper = 8 * 1024 * 1024 + 4 * len(model)  # the widest bisection: one halving per step at most
    assert 1 <= calls[-1][2] <= (upper - 1).bit_length() and len(calls) >= 2


def test_verify_reports_each_runtime():
    calls, progress = _recorder()
    x = np.random.default_rng(0).normal(size=(4, 4)).astype("float32")
    tflite_export.verify(tflite_export.testing.tiny_model(), x, progress=progress)
    # Both runtimes run in one child process: announced before it, done after it.
    assert calls == [("verifying on TFLM and LiteRT", k, 1) for k in range(2)]


def test_lut_reports_the_check_and_each_tensor_measured():
    calls, progress = _recorder()
    result = compress_luts(tflite_export.testing.tiny_model(), tensors=[1, 2], verify_samples=2,
                           progress=progress)
    assert len(result.tensors) == 2
    assert _counts_up_to_total(calls) and calls[-1][2] == 2 + len(result.tensors)
    assert {d for d, _, _ in calls} == {"verifying and measuring LUT tensors"}


def test_a_child_reporting_progress_is_still_killed_at_its_timeout():
    calls, progress = _recorder()
    with pytest.raises(RuntimeCheckError, match="did not finish within"):
        tflite_export.measure_arena(tflite_export.testing.tiny_model(), timeout_s=0.05,
                                    progress=progress)
