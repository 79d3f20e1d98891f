"""Notebook 7 searches for a model within a flash and arena budget; the chosen one meets it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import tflite_export
from tinycompress import load_digit_images
from tinycompress.auto import Budget, Recipe


@pytest.mark.slow
def test_auto_search_returns_a_model_within_the_budget(run_notebook):
    run = run_notebook("07_auto.ipynb")
    res = run.results
    model = Path(res["tflite"]).read_bytes()
    budget = Budget(flash_bytes=res["budget_flash_bytes"], arena_bytes=res["budget_arena_bytes"])

    # The budget really constrains: the plain int8 model does not fit it.
    assert res["baseline_flash_bytes"] > budget.flash_bytes
    # The written model, measured again here, meets it.
    arena = tflite_export.measure_arena(model)
    assert len(model) == res["flash_bytes"] <= budget.flash_bytes
    assert arena.emitted_bytes == res["arena_bytes"] <= budget.arena_bytes
    assert tflite_export.arena_fits(model, [budget.arena_bytes]) == [True]
    assert budget.is_satisfied_by({"flash_bytes": len(model), "arena_bytes": arena.emitted_bytes})

    data = load_digit_images("digits", max_train=800, max_test=300)
    acc = tflite_export.evaluate_accuracy(model, data.x_test, data.y_test)
    assert res["tflm_int8_accuracy"] == pytest.approx(acc)
    assert acc >= 0.5, "a model within the budget should still classify digits"

    out = Path(res["report"]).parent
    report = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report)
    assert links, "report.md embeds no plot"
    assert (out / links[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == res["trials"] >= 1
    assert ",".join(Recipe.load(out / "recipe.json").techniques()) == res["techniques"]

    run.assert_figures_labelled(1)
    assert run.images() >= 2, "the trials plot and the report's Pareto plot are shown"
