"""`write_search` and its report, plot and trial files, on hand-made trial records (no training)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tinycompress.auto import Budget, Recipe, SearchResult, TrialRecord, pareto_front, render_plot, \
    render_report, trials_csv, write_search
from tinycompress.errors import AutoError


def _trial(n, acc, flash, arena=1000, state="complete", **extra) -> TrialRecord:
    metrics = {} if state != "complete" else {"accuracy": acc, "flash_bytes": flash, "arena_bytes": arena,
                                              "macs": 100}
    budget = Budget(flash_bytes=2000, arena_bytes=1500)
    return TrialRecord(n, state, params={"channel_sparsity": n / 10}, metrics=metrics,
                       recipe=Recipe(channel_sparsity=n / 10).get_config(),
                       feasible=state == "complete" and budget.is_satisfied_by(metrics),
                       violations=budget.violations(metrics) if metrics else [], **extra)


def _result(best: bool = True) -> SearchResult:
    trials = [_trial(0, 0.95, 5000), _trial(1, 0.90, 1800), _trial(2, 0.85, 1900),
              _trial(3, 0.80, 1200, arena=1400),
              _trial(4, None, None, state="failed", failure="VerificationError: 3 LSB off"),
              _trial(5, None, None, state="pruned")]
    result = SearchResult(Budget(flash_bytes=2000, arena_bytes=1500), "accuracy", trials,
                          pareto=pareto_front(trials), study_name="s", storage="sqlite:///x/study.db")
    if best:
        result.best, result.recipe = trials[1], Recipe.from_config(trials[1].recipe)
    return result


def test_pareto_front_keeps_only_undominated_measured_trials():
    assert [t.number for t in _result().pareto] == [3, 1, 0]


def test_report_has_the_pareto_table_plot_and_failures():
    report = render_report(_result())
    assert "- budget: flash <= 2000 B, arena <= 1500 B" in report
    assert "Trial 1: techniques pruning" in report
    assert "| 1 **(chosen)** | 0.9 | 1800 | 1000 | - | yes | pruning |" in report
    assert "| 0 | 0.95 | 5000 | 1000 | - | no | none |" in report
    assert "![accuracy against flash, arena and latency](pareto.png)" in report
    assert "- trial 4: VerificationError: 3 LSB off" in report
    assert "- trials: 6 (4 complete, 1 failed, 1 pruned)" in report


def test_report_gives_the_validation_accuracy_its_standard_error():
    result = _result()
    assert result.accuracy_error is None and "standard error" not in render_report(result)
    result.val_samples = 96  # chosen trial: 0.9 on 96 samples, 86.4 right; with 2 + 2 added: 88.4 of 100
    assert result.accuracy_error == pytest.approx((0.884 * 0.116 / 100) ** 0.5)
    assert ("0.9 (float Keras model: -); ± 3.20 points (one standard error over 96 validation samples: "
            "trials within about 6.4 points of each other are not told apart)") in render_report(result)
    assert json.loads(json.dumps(result.to_dict()))["val_samples"] == 96
    result.best.metrics["accuracy"] = 1.0  # a perfect score on few samples is not exact
    assert 0.01 < result.accuracy_error < 0.03


def test_report_lists_the_sensitivity_scan():
    result = _result()
    result.sensitivity = {"a": 0.125, "b": 0.0}
    report = render_report(result)
    assert "## Channel-pruning sensitivity (measured)" in report
    assert "| a | 0.1250 |" in report and "| b | 0.0000 |" in report


def test_report_without_a_fit_names_the_unmet_limits_and_closest_trials():
    result = _result(best=False)
    for t in result.trials:
        if t.state == "complete":
            t.metrics["flash_bytes"] += 10_000
            t.feasible, t.violations = False, result.budget.violations(t.metrics)
    report = render_report(result)
    assert "## No model fits" in report and "never met: flash_bytes" in report
    assert report.count("- trial ") >= 3 and "flash 11200 B > 2000 B" in report
    assert result.unmet() == ["flash_bytes"] and result.closest(1)[0].number == 3


def test_plot_is_a_png():
    png = render_plot(_result())
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_trials_csv_has_one_row_per_trial():
    rows = list(csv.DictReader(io.StringIO(trials_csv(_result()))))
    assert [r["state"] for r in rows] == ["complete"] * 4 + ["failed", "pruned"]
    assert rows[1]["flash_bytes"] == "1800" and rows[1]["feasible"] == "True"
    assert rows[4]["failure"] == "VerificationError: 3 LSB off"
    assert json.loads(rows[1]["recipe"])["channel_sparsity"] == 0.1


def test_write_search_writes_report_files_and_recipe(tmp_path):
    out = write_search(_result(), tmp_path / "search")
    names = sorted(p.name for p in out.iterdir())
    assert names == [".tinycompress-auto", "pareto.png", "recipe.json", "report.md", "trials.csv",
                     "trials.json"]
    assert Recipe.load(out / "recipe.json") == Recipe(channel_sparsity=0.1)
    data = json.loads((out / "trials.json").read_text())
    assert data["best"] == 1 and data["pareto"] == [3, 1, 0] and len(data["trials"]) == 6


def test_write_search_refuses_a_users_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(AutoError, match="not a tinycompress search folder"):
        write_search(_result(), tmp_path)
