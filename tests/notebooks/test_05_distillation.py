"""Notebook 5 distills a teacher into a student (directly and through an assistant), prunes and
QAT-trains the distilled student, and measures every export on TFLM."""

from __future__ import annotations

import pytest

import tflite_export
from tinycompress import load_digit_images

MODELS = ("teacher", "scratch", "kd", "ta", "kd_pruned_qat")


@pytest.mark.slow
def test_distillation_notebook_measures_every_student_on_tflm(run_notebook):
    run = run_notebook("05_distillation.ipynb")
    res = run.results
    assert res["dataset"] == "digits"
    models = res["models"]
    assert set(models) == set(MODELS)

    # Every number in the table is re-measured here from the exported bytes.
    data = load_digit_images("digits")
    blobs = {}
    for key in MODELS:
        m = models[key]
        path = run.out_dir / key / "model.tflite"
        assert m["tflite"] == str(path)
        blobs[key] = path.read_bytes()
        report = tflite_export.inspect(blobs[key], measure=False)
        assert m["flash_bytes"] == report.flash_bytes == len(blobs[key]), key
        assert m["macs"] == report.macs and m["params"] == report.params, key
        assert {io.dtype for io in (*report.inputs, *report.outputs)} == {"int8"}, key
        tflm_acc = tflite_export.evaluate_accuracy(blobs[key], data.x_test, data.y_test)
        assert m["tflm_int8_accuracy"] == pytest.approx(tflm_acc), key
        assert tflite_export.arena_fits(blobs[key], [m["arena_bytes"]]) == [True], key
        for name in (f"{key}_data.h", f"{key}_data.cc", "report.md"):
            assert (run.out_dir / key / name).is_file(), name

    # The final student is the distilled, pruned, shrunk and QAT-trained one.
    final, kd, teacher = models["kd_pruned_qat"], models["kd"], models["teacher"]
    assert res["final"] == "kd_pruned_qat" and res["tflite"] == final["tflite"]
    assert final["tflm_int8_accuracy"] >= 0.85  # quick mode, digits, seed 0: about 0.94
    assert teacher["tflm_int8_accuracy"] >= 0.95
    for key in ("scratch", "kd", "ta"):
        assert models[key]["tflm_int8_accuracy"] >= 0.85, key
        assert models[key]["flash_bytes"] == kd["flash_bytes"], "same student architecture"

    # Students are far smaller than the teacher; structured pruning + shrink made it smaller still.
    assert 4 * kd["flash_bytes"] < teacher["flash_bytes"]
    assert 10 * kd["macs"] < teacher["macs"]
    assert final["flash_bytes"] < kd["flash_bytes"]
    assert final["params"] < kd["params"] and final["macs"] < kd["macs"]
    kd_widths = [layer.out_channels for layer in tflite_export.inspect(blobs["kd"], measure=False).layers
                 if layer.weight_shape is not None]
    final_widths = [layer.out_channels for layer in tflite_export.inspect(blobs["kd_pruned_qat"], measure=False).layers
                    if layer.weight_shape is not None]
    assert len(final_widths) == len(kd_widths) and final_widths[-1] == kd_widths[-1] == 10
    assert all(f < k for f, k in zip(final_widths[:-1], kd_widths[:-1])), (final_widths, kd_widths)
    assert kd["params"] < res["assistant_params"] < teacher["params"]

    # The verdict the notebook prints is the one its numbers give.
    n = len(data.y_test)
    assert res["kd_minus_scratch"] == pytest.approx(
        kd["tflm_int8_accuracy"] - models["scratch"]["tflm_int8_accuracy"])
    for key in ("kd", "ta"):
        diff = round(models[key]["tflm_int8_accuracy"] * n) - round(models["scratch"]["tflm_int8_accuracy"] * n)
        assert f"{diff:+d} of {n} test images vs labels only" in run.text(), key

    run.assert_figures_labelled(2)
    axes = run.figures["fig_tradeoff"]["axes"][0]
    assert "flash (KiB" in axes["xlabel"] and "accuracy (%)" in axes["ylabel"]
