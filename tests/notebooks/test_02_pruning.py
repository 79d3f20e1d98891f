"""Notebook 2 prunes one CNN two ways: structured pruning shrinks the flatbuffer, and so does
unstructured pruning once it is encoded for TFLM's DECODE (prune -> encode, bit-exact)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tflite_export
from tinycompress import load_digit_images


def _conv_channels(report) -> list[int]:
    return [layer.out_channels for layer in report.layers if layer.op == "CONV_2D"]


@pytest.mark.slow
def test_pruning_notebook_only_structured_pruning_shrinks_the_model(run_notebook):
    run = run_notebook("02_pruning.ipynb")
    res = run.results
    assert res["dataset"] == "digits"
    base, unstructured, structured = res["baseline"], res["unstructured"], res["structured"]
    assert [r["sparsity"] for r in unstructured] == [r["sparsity"] for r in structured] == [0.5, 0.75]

    # Every export is where the notebook says, and every number it shows is re-measured here:
    # flash = the file's length, MACs from the flatbuffer, the arena fits, accuracy on TFLM
    # over the whole digits test split.
    data = load_digit_images("digits")
    reports = {}
    for row in [base, *unstructured, *structured]:
        path = Path(row["tflite"])
        assert path.parent.parent == run.out_dir and path.is_file(), row["tflite"]
        model = path.read_bytes()
        report = tflite_export.inspect(model, measure=False)
        reports[row["name"]] = report
        assert row["flash_bytes"] == report.flash_bytes == len(model), row["name"]
        assert row["macs"] == report.macs, row["name"]
        assert row["weight_sparsity"] == pytest.approx(report.weight_sparsity), row["name"]
        assert tflite_export.arena_fits(model, [row["arena_bytes"]]) == [True], row["name"]
        tflm_acc = tflite_export.evaluate_accuracy(model, data.x_test, data.y_test)
        assert row["tflm_int8_accuracy"] == pytest.approx(tflm_acc), row["name"]

    # Accuracy floors (quick mode, digits, seed 0; measured 97.5 / 97.5, 94.7 / 96.7, 90.5 %).
    assert res["float_accuracy"] >= 0.9 and base["tflm_int8_accuracy"] >= 0.9
    floors = {0.5: 0.9, 0.75: 0.8}
    for row in unstructured + structured:
        assert row["tflm_int8_accuracy"] >= floors[row["sparsity"]], row

    # Unstructured: the int8 weights in the file really are sparse, yet the file is as
    # large as the baseline's and costs the same arena and MACs.
    assert reports["baseline"].weight_sparsity < 0.1
    for row in unstructured:
        report = reports[row["name"]]
        assert report.weight_sparsity >= row["sparsity"] - 0.01, row
        assert abs(row["flash_bytes"] - base["flash_bytes"]) <= 16, row
        assert row["arena_bytes"] == base["arena_bytes"] and row["macs"] == base["macs"], row
        assert _conv_channels(report) == _conv_channels(reports["baseline"]) == [16, 32]

    # Structured + shrink: physically fewer channels, so less flash, arena and MACs, and
    # more so at higher sparsity.
    half, three_quarters = structured
    assert _conv_channels(reports[half["name"]]) == [8, 16]
    assert _conv_channels(reports[three_quarters["name"]]) == [4, 8]
    assert three_quarters["channels"] == {"conv1": 4, "conv2": 8, "fc1": 16, "logits": 10}
    assert three_quarters["flash_bytes"] < 0.6 * base["flash_bytes"]
    assert three_quarters["flash_bytes"] < half["flash_bytes"] < 0.6 * base["flash_bytes"]
    assert three_quarters["macs"] < half["macs"] < 0.5 * base["macs"]
    assert three_quarters["arena_bytes"] <= half["arena_bytes"] < base["arena_bytes"]

    _assert_prune_encoding_saves_flash(res, unstructured, data)

    run.assert_figures_labelled(2)
    assert "fig_tradeoff" in run.figures
    text = run.text()
    assert "dead channels" in text, "sparsity_summary of an unstructured model is shown"


def _assert_prune_encoding_saves_flash(res, unstructured, data) -> None:
    """Prune -> encode: the encoded file is measurably smaller than the unencoded one, its
    outputs on TFLM are bit-identical to it, and the decoded weights cost arena."""
    encoded = res["encoded"]
    assert [r["sparsity"] for r in encoded] == [r["sparsity"] for r in unstructured]
    for plain_row, row in zip(unstructured, encoded):
        plain, model = Path(plain_row["tflite"]).read_bytes(), Path(row["tflite"]).read_bytes()
        enc = row["encoding"]
        assert row["flash_bytes"] == len(model) == enc["flash_after"], row["name"]
        assert enc["flash_before"] == len(plain) == plain_row["flash_bytes"], row["name"]
        assert {t["encoding"] for t in enc["tensors"]} == {"prune"}, enc["tensors"]
        # fc1's kernel costs one bit per weight plus its kept bytes
        fc1 = max(enc["tensors"], key=lambda t: t["nbytes"])
        assert fc1["encoded_bytes"] <= fc1["nbytes"] * (1 - row["sparsity"] + 0.125 + 0.01), fc1
        # the file shrinks by the data saved less each DECODE's bookkeeping (measured: ~315 B
        # per tensor here: ancillary and decoded tensors, buffers, names, the operator)
        saved = sum(t["nbytes"] - t["encoded_bytes"] for t in enc["tensors"])
        assert saved - 400 * len(enc["tensors"]) <= len(plain) - len(model) == enc["flash_saved"] <= saved
        # bit-exact on the TFLM interpreter over the whole test split, hence the same accuracy
        x = tflite_export.quantize(data.x_test, plain)
        np.testing.assert_array_equal(tflite_export.run_tflm(model, x), tflite_export.run_tflm(plain, x))
        assert row["tflm_int8_accuracy"] == plain_row["tflm_int8_accuracy"], row["name"]
        # flash saved, arena spent: the decoded tensors live in the arena
        assert enc["host_arena_added"] > 0 and row["arena_bytes"] > plain_row["arena_bytes"], row["name"]
        assert tflite_export.arena_fits(model, [row["arena_bytes"]]) == [True], row["name"]
        assert enc["verified_samples"] > 0
    assert encoded[-1]["flash_bytes"] < encoded[0]["flash_bytes"], "sparser encodes smaller"
    # encode="auto" on the sparsest model keeps the smallest encoding per tensor: never larger
    auto = res["auto_encoding"]
    assert auto["flash_after"] <= encoded[-1]["flash_bytes"] < auto["flash_before"]
    assert auto["tensors"] and auto["verified_samples"] > 0
