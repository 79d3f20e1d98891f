"""Notebook 4 clusters a CNN to 4 bits, LUT-compresses it and weighs flash saved against arena added."""

from __future__ import annotations

import pytest

import tflite_export
from tinycompress import load_digit_images


@pytest.mark.slow
def test_clustering_lut_saves_flash_and_costs_arena_per_tensor(run_notebook):
    run = run_notebook("04_clustering_lut.ipynb")
    res = run.results
    assert res["dataset"] == "digits" and res["bits"] == 4

    paths = {k: run.out_dir / sub / "model.tflite"
             for k, sub in (("int8", "int8"), ("lut", "lut"), ("selective", "selective"))}
    for key, path in paths.items():
        assert res[f"{key}_tflite"] == str(path)
        assert (run.out_dir / path.parent.name / "digits_data.cc").is_file()
    int8, lut, sel = (paths[k].read_bytes() for k in ("int8", "lut", "selective"))

    # Flash is the length of each exported model, and the notebook reports exactly that.
    for key, model in (("int8", int8), ("lut", lut), ("selective", sel)):
        report = tflite_export.inspect(model, measure=False)
        assert res[f"{key}_flash_bytes"] == len(model) == report.flash_bytes

    # Accuracy measured here on TFLM, over the whole digits test split, is the notebook's.
    data = load_digit_images("digits")
    accs = {k: tflite_export.evaluate_accuracy(m, data.x_test, data.y_test)
            for k, m in (("int8", int8), ("lut", lut), ("selective", sel))}
    for key, acc in accs.items():
        assert res[f"tflm_{key}_accuracy"] == pytest.approx(acc)
        assert acc >= 0.90, f"{key} model: {acc:.2%} on TFLM"
    assert res["float_accuracy"] >= 0.90
    # Clustering after fine-tuning costs little; LUT compression costs nothing (bit-identical).
    assert accs["lut"] >= accs["int8"] - 0.03
    assert accs["lut"] == pytest.approx(res["clustered_float_accuracy"], abs=0.02)
    assert accs["selective"] == accs["lut"]

    # The LUT model runs one DECODE operator per compressed tensor; the baseline none.
    rows = res["per_tensor"]
    ops = [layer.op for layer in tflite_export.inspect(lut, measure=False).layers]
    assert sum(op.endswith("TFLM_DECODE") for op in ops) == len(rows) >= 3
    assert not any("DECODE" in layer.op for layer in tflite_export.inspect(int8, measure=False).layers)
    for r in rows:
        assert r["bits"] <= 4 and r["decoded_bytes"] == r["bytes"] and r["host_arena_added"] > 0
        packed = -(-r["bytes"] * r["bits"] // 8)  # bits-wide indices, rounded up to bytes
        assert 0 < r["flash_saved"] <= r["bytes"] - packed - 16 - r["tables"]  # 16 B header + tables
    assert {r["layer"].split()[0] for r in rows} == {"conv2", "fc1", "fc2"}  # conv1 is < 256 B

    # Clustering alone changes no byte; LUT compression shrinks flash by the measured total,
    # which is the sum of the per-tensor savings less the DECODE ops' flatbuffer bookkeeping.
    assert res["clustered_flash_bytes"] == len(int8)
    assert res["clustered_arena_bytes"] == res["int8_arena_bytes"]
    saved = len(int8) - len(lut)
    assert saved == res["lut_flash_saved"]
    bookkeeping = sum(r["flash_saved"] for r in rows) - saved
    assert 0 < bookkeeping <= 1024 + 256 * len(rows), bookkeeping
    assert len(lut) < 0.65 * len(int8), "the 4-bit Dense kernel dominates: flash close to half"

    # Arena re-measured on TFLM: larger with LUT, by about the biggest decoded tensor.
    arena = {k: tflite_export.measure_arena(m).host_bytes
             for k, m in (("int8", int8), ("lut", lut), ("selective", sel))}
    for key, value in arena.items():
        assert res[f"{key}_arena_bytes"] == value
    assert arena["lut"] > arena["int8"]
    assert arena["lut"] - arena["int8"] == res["lut_arena_added"]
    biggest = max(rows, key=lambda r: r["bytes"])
    assert biggest["layer"].startswith("fc1")
    assert res["lut_arena_added"] >= 0.75 * biggest["decoded_bytes"]
    assert res["lut_arena_added"] > saved, "DECODE costs more RAM than it saves flash here"

    # The budgeted choice leaves the big kernel out, stays within the budget and still saves flash.
    chosen = res["selective_tensors"]
    assert chosen and biggest["index"] not in chosen
    assert set(chosen) <= {r["index"] for r in rows}
    assert arena["int8"] < arena["selective"] <= arena["int8"] + res["arena_extra_budget"]
    assert len(lut) < len(sel) < len(int8)
    ops = [layer.op for layer in tflite_export.inspect(sel, measure=False).layers]
    assert sum(op.endswith("TFLM_DECODE") for op in ops) == len(chosen)

    run.assert_figures_labelled(2)
    fig = run.figures["fig_per_tensor"]["axes"][0]
    assert "KiB" in fig["ylabel"] and "tensor" in fig["xlabel"]
    assert {"flash (KiB)", "arena (KiB)"} <= {a["xlabel"] for a in run.figures["fig_totals"]["axes"]}
