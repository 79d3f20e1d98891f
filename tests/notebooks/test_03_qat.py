"""Notebook 3 measures PTQ on TFLM, runs QAT and a same-epochs float control, layer by layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tflite_export
from tinycompress import load_digit_images


@pytest.mark.slow
def test_qat_notebook_measures_ptq_qat_and_the_control_on_tflm(run_notebook):
    run = run_notebook("03_qat.ipynb")
    res = run.results
    data = load_digit_images("digits")

    measured = {}
    for name, path in res["tflite"].items():
        model = Path(path).read_bytes()
        measured[name] = tflite_export.evaluate_accuracy(model, data.x_test, data.y_test)
    assert res["ptq_accuracy"] == pytest.approx(measured["ptq"])
    assert res["qat_accuracy"] == pytest.approx(measured["qat"])
    assert res["ptq_control_accuracy"] == pytest.approx(measured["ptq_control"])

    # Floors for quick mode on digits, seed 0 (measured: float 93.9%, PTQ 93.6%, QAT 95.0%).
    assert res["float_accuracy"] >= 0.85 and res["control_float_accuracy"] >= 0.85
    assert abs(res["float_accuracy"] - res["ptq_accuracy"]) <= 0.03  # PTQ costs little here
    assert res["qat_accuracy"] >= 0.85 and res["qat_accuracy"] >= res["ptq_accuracy"] - 0.01

    # The per-layer view covers the network, and the QAT model tracks its own float graph closer.
    ptq_err, qat_err = res["ptq_layer_errors"], res["qat_layer_errors"]
    features = [n for n in ptq_err if n.endswith("_relu6")]
    assert len(features) == 5 and all(n in qat_err for n in features)
    assert np.mean([qat_err[n] for n in features]) < np.mean([ptq_err[n] for n in features])
    assert all(0 <= v < 0.2 for v in list(ptq_err.values()) + list(qat_err.values()))

    # QAT changes the int8 values, not the model's size.
    assert abs(res["flash_bytes"]["qat"] - res["flash_bytes"]["ptq"]) <= 64
    assert res["flash_bytes"]["qat"] == len(Path(res["tflite"]["qat"]).read_bytes())

    run.assert_figures_labelled(2)
