"""The fit: recovers known coefficients, states held-out errors, is reproducible (CPIs: test_cycles)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import cost_synthetic as syn
from tflite_export.cost import fit
from tflite_export.cost.model import FEATURES, features, fit_op, nnls, op_keys
from tflite_export.cost.records import read_model_table, read_table


def test_nnls_matches_brute_force_over_active_sets():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.normal(size=(9, 4)), rng.normal(size=9)
        best = np.inf
        for k in range(5):
            for cols in itertools.combinations(range(4), k):
                x = np.zeros(4)
                if cols:
                    x[list(cols)] = np.linalg.lstsq(a[:, cols], b, rcond=None)[0]
                if (x >= 0).all():
                    best = min(best, float(np.sum((a @ x - b) ** 2)))
        x = nnls(a, b)
        assert (x >= 0).all()
        assert np.sum((a @ x - b) ** 2) == pytest.approx(best, rel=1e-9, abs=1e-12)


def _best_relative_rms(x, y):
    """Brute force over active sets: the smallest RMS relative residual with coef >= 0."""
    a = x / y[:, None]
    best = np.inf
    for k in range(1, x.shape[1] + 1):
        for cols in itertools.combinations(range(x.shape[1]), k):
            c = np.linalg.lstsq(a[:, cols], np.ones_like(y), rcond=None)[0]
            if (c >= -1e-12).all():
                best = min(best, float(np.sqrt(np.mean((a[:, cols] @ c - 1) ** 2))))
    return best


def test_fit_op_reaches_the_nonnegative_optimum_on_noisy_wide_ranged_rows():
    # Counts from 10^3 to 10^8 and collinear features: the case a badly scaled solver misses.
    records = [r for r in syn.single_op_records(5) if r.op == "CONV_2D"]
    rng = np.random.default_rng(5)
    y = np.array([syn.true_instructions(r) * (1 + 0.1 * rng.standard_normal()) for r in records])
    fitted = fit_op("CONV_2D/int8", records, y)
    x = np.stack([features(r) for r in records])
    assert fitted.fit_rel_rms == pytest.approx(_best_relative_rms(x, y), rel=1e-6)


def test_fit_recovers_known_coefficients():
    rows, totals, held_out = syn.table()
    table = fit.fit_tables(rows, totals, held_out)["cmsis_nn/cortex-m4"]
    conv = table["ops"]["CONV_2D/int8"]
    assert conv["features"] == list(FEATURES["conv"])
    # CONV_2D's features are independent over the synthetic shapes: exact recovery.
    assert conv["coef"] == pytest.approx(syn.TRUE_COEF["CONV_2D"], rel=1e-3)
    assert conv["rows"] == syn.N_SHAPES
    # 1x1 convolutions get their own fit when there is a row per feature.
    n_1x1 = sum(1 for r in syn.single_op_records() if r.op == "CONV_2D" and r.input_shapes[1][1] == 1)
    assert n_1x1 > 0
    if n_1x1 >= len(FEATURES["conv"]):
        assert table["ops"]["CONV_2D[1x1]/int8"]["rows"] == n_1x1
    else:
        assert "CONV_2D[1x1]/int8" not in table["ops"]
    assert table["overhead_per_op"] == pytest.approx(syn.OVERHEAD, abs=1)
    assert table["held_out_models"]["net"]["rel_err"] == pytest.approx(0, abs=1e-4)
    for key, entry in table["ops"].items():
        assert entry["fit_rel_rms"] < 5e-4, key  # counts are integers: rounding only
        assert all(c >= 0 for c in entry["coef"])


def test_held_out_models_are_not_fitted_and_give_the_error():
    rows, totals, held_out = syn.table(noise=0.05, seed=3)
    table = fit.fit_tables(rows, totals, held_out)["cmsis_nn/cortex-m4"]
    assert sum(e["rows"] for k, e in table["ops"].items() if "[" not in k) == len(syn.single_op_records(3))
    err = abs(table["held_out_models"]["net"]["rel_err"])
    assert table["rel_error"] == pytest.approx(max(err, fit.MIN_REL_ERROR), abs=1e-4)
    assert 0 < table["ops"]["FULLY_CONNECTED/int8"]["held_out_rel_rms"] < 0.2
    assert 0.01 < table["fit_rel_rms"] < 0.1


def test_op_keys_separate_dtypes_and_kernel_paths():
    r = syn.fc(0, 8, 4)
    assert op_keys(r) == ("FULLY_CONNECTED/int8",)
    r16 = type(r)(0, r.op, r.input_shapes, ("int16", "int8", "int64"), r.output_shapes,
                  ("int16",), {}, r.macs)
    assert op_keys(r16) == ("FULLY_CONNECTED/int16",)
    assert op_keys(syn.conv(0, 8, 4, 8, 1)) == ("CONV_2D[1x1]/int8", "CONV_2D/int8")
    assert op_keys(syn.conv(0, 8, 4, 8, 3)) == ("CONV_2D/int8",)
    dw = syn.conv(0, 8, 4, 8, 3, "DEPTHWISE_CONV_2D")
    mult = type(dw)(0, dw.op, (dw.input_shapes[0], (1, 3, 3, 8), (8,)), dw.input_dtypes,
                    ((1, 8, 8, 8),), ("int8",), {}, 8 * 8 * 8 * 9)
    assert op_keys(dw) == ("DEPTHWISE_CONV_2D[3x3]/int8", "DEPTHWISE_CONV_2D/int8")
    assert op_keys(syn.conv(0, 8, 3, 8, 3)) == ("CONV_2D[cin<4]/int8", "CONV_2D/int8")
    assert op_keys(mult) == ("DEPTHWISE_CONV_2D[mult]/int8", "DEPTHWISE_CONV_2D/int8")
    fitted = fit_op("FULLY_CONNECTED/int8", [r], [1000])
    assert fitted.predict(r) == pytest.approx(1000)
    assert features(r).tolist() == [1.0, 32.0, 4.0, 8.0]


def test_refit_is_deterministic(tmp_path):
    rows, totals, held_out = syn.table(noise=0.03)
    a = json.dumps(fit.fit_tables(rows, totals, held_out), sort_keys=True)
    b = json.dumps(fit.fit_tables(list(reversed(rows)), totals, held_out), sort_keys=True)
    assert a == b


def test_shipped_model_equals_a_refit_of_the_shipped_tables():
    assert fit.main(["--check"]) == 0, "run `python -m tflite_export.cost.fit` after changing the tables"
    doc = json.loads(fit.MODEL_FILE.read_text())
    meta, rows = read_table(fit.DATA_DIR / "measured.csv")
    _, totals = read_model_table(fit.DATA_DIR / "measured_models.csv")
    assert doc["tflm_commit"] == meta["tflm_commit"] and len(doc["tflm_commit"]) == 40
    assert {f"{m.kernels}/{m.cpu}" for m in rows} == set(doc["tables"])
    assert {"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-m0plus"} <= set(doc["cores"])
    assert totals


def test_shipped_tables_are_self_consistent():
    # Probes of one op differ only in shapes: a linear fit explains them to well under 40%
    # (the worst genuine misfits today: CMSIS-NN depthwise outside its 3x3 kernel, 24% on the
    # Cortex-M4 and 35% on the Cortex-M55, whose MVE code paths depend on channel counts).
    # A large residual means rows whose instructions belong to another operator (e.g. a
    # probe re-converted with another op order while its old counts were kept).
    doc = json.loads(fit.MODEL_FILE.read_text())
    for name, table in doc["tables"].items():
        for key, entry in table["ops"].items():
            if key.split("[")[0].split("/")[0] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                assert entry["fit_rel_rms"] < 0.4, (
                    f"{name} {key}: probe rows fit to {entry['fit_rel_rms']:.0%} RMS; check that "
                    "measured.csv pairs each record with its own count (re-measure the probe)")
