"""Notebook 1 trains, exports, verifies on TFLM and shows the report and the C sources."""

from __future__ import annotations

import pytest

import tflite_export
from tinycompress import load_digit_images


@pytest.mark.slow
def test_quickstart_exports_a_model_that_verifies_on_tflm(run_notebook):
    run = run_notebook("01_quickstart.ipynb")
    res = run.results
    assert res["dataset"] == "digits"

    model = (run.out_dir / "model.tflite").read_bytes()
    assert res["tflite"] == str(run.out_dir / "model.tflite")
    for name in ("digits_data.h", "digits_data.cc", "digits_ops.h", "digits_io.h", "report.md"):
        assert (run.out_dir / name).is_file(), name

    # The accuracy the notebook printed is the one TFLM gives on the whole test split.
    data = load_digit_images("digits")
    tflm_acc = tflite_export.evaluate_accuracy(model, data.x_test, data.y_test)
    assert res["tflm_int8_accuracy"] == pytest.approx(tflm_acc)
    assert res["float_accuracy"] >= 0.85 and tflm_acc >= res["float_accuracy"] - 0.03

    report = tflite_export.inspect(model, measure=False)
    assert res["flash_bytes"] == report.flash_bytes == len(model)
    assert res["macs"] == report.macs
    assert tflite_export.arena_fits(model, [res["arena_bytes"]]) == [True]

    run.assert_figures_labelled(1)
    assert "kTensorArenaSize" in run.text(), "the generated C is shown"
