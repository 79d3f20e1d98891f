"""Notebook 6 writes a self-testing firmware project per target for one verified model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import tflite_export
from tinycompress import load_digit_images


def _array(source: str, symbol: str) -> list[int]:
    """The integers of a C array initializer ``symbol[...] = { ... };``."""
    body = re.search(re.escape(symbol) + r"\[[^\]]*\]\s*=\s*\{(.*?)\};", source, re.S)
    assert body, f"no array {symbol}"
    return [int(v, 0) for v in re.findall(r"-?0x[0-9a-f]+|-?\d+", body.group(1))]


@pytest.mark.slow
def test_deployment_projects_embed_the_verified_model_and_its_golden_sample(run_notebook):
    run = run_notebook("06_deployment.ipynb")
    res = run.results
    model = Path(res["tflite"]).read_bytes()
    data = load_digit_images("digits")

    tflm_acc = tflite_export.evaluate_accuracy(model, data.x_test, data.y_test)
    assert res["tflm_int8_accuracy"] == pytest.approx(tflm_acc) and tflm_acc >= 0.85
    assert res["flash_bytes"] == len(model)
    assert tflite_export.arena_fits(model, [res["arena_bytes"]]) == [True]

    # The golden output is what TFLM computes for the first test image.
    golden_in = tflite_export.quantize(data.x_test[:1], model)
    golden_out = np.asarray(tflite_export.run_tflm(model, golden_in))[0]
    assert res["golden_output"] == golden_out.ravel().tolist()

    assert sorted(res["projects"]) == sorted(tflite_export.TARGETS)
    for target, folder in res["projects"].items():
        folder = Path(folder)
        assert (folder / "README.md").is_file(), target
        data_src = next(p for p in folder.rglob("digits_data.c*"))
        assert bytes(_array(data_src.read_text(), "g_digits_data")) == model, target
        golden = next(folder.rglob("digits_golden.c")).read_text()
        assert _array(golden, "g_digits_golden_input0") == golden_in[0].ravel().tolist(), target
        assert _array(golden, "g_digits_golden_output0") == golden_out.ravel().tolist(), target
        io_h = next(folder.rglob("digits_io.h")).read_text()
        assert f"#define DIGITS_TENSOR_ARENA_SIZE {res['arena_bytes']}\n" in io_h, target

    run.assert_figures_labelled(1)
    shown = run.text()  # what to do next on a board, for every target
    for command in ("make TFLM_DIR=", "cmake --build build", "arduino-cli upload", "west flash",
                    "idf.py build", "USER CODE: sensor input"):
        assert command in shown, command
