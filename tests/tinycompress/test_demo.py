"""The demo trains, exports and verifies for real (fewer epochs than the CLI default)."""

from __future__ import annotations

import pytest

from tinycompress.demo import run_demo


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    summary = run_demo(tmp_path / "demo", epochs=4, target=None)
    assert summary.float_acc >= 0.85
    assert summary.int8_acc >= summary.float_acc - 0.03
    assert len(summary.export.model) < 0.4 * summary.float_bytes
    out = tmp_path / "demo"
    assert (out / "model.tflite").read_bytes() == summary.export.model
    assert (out / "digits_data.cc").exists() and (out / "report.md").exists()
