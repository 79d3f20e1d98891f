"""`tinycompress.auto.search` end to end on a tiny model (trains: slow).

Each property is checked on measured figures: the chosen model's bytes on disk
are inspected again, the arena measured again on TFLM.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

import tflite_export
from tinycompress.auto import Budget, Recipe, SearchSpace, apply_recipe, search
from tinycompress.build import build
from tinycompress.errors import (ArgumentError, AutoError, BudgetError, DataError, LoadError,
                                 NoFeasibleModelError)

SPACE = SearchSpace(techniques=["pruning", "clustering", "encode"], channel_sparsity=(0.0, 0.75),
                    cluster_bits=(3, 4), epochs=(1, 1))


@pytest.fixture(scope="module")
def searched(tiny_task, tmp_path_factory):
    model, train, val = tiny_task
    out = tmp_path_factory.mktemp("auto") / "search"
    budget = Budget(flash_bytes=2600, arena_bytes="4KB", min_accuracy=0.5)
    result = search(model, train, val, budget, space=SPACE, n_trials=3, out=out, seed=1)
    return result, out, budget


@pytest.mark.slow
def test_the_chosen_model_meets_the_budget_measured_again(searched, tiny_task):
    result, out, budget = searched
    assert result.fits and result.best.feasible and len(result.trials) == 3
    tflite = (out / "model" / "model.tflite").read_bytes()
    assert tflite == result.model
    arena = tflite_export.measure_arena(tflite)
    assert len(tflite) <= budget.flash_bytes and arena.emitted_bytes <= budget.arena_bytes
    accuracy = tflite_export.evaluate_accuracy(tflite, *tiny_task[2])
    assert accuracy >= budget.min_accuracy and accuracy == pytest.approx(result.best.metrics["accuracy"])
    # the first trial is the uncompressed baseline, which is over the flash budget
    baseline = result.trials[0]
    assert baseline.recipe["channel_sparsity"] == 0.0 and baseline.recipe["cluster_bits"] is None
    assert not baseline.feasible and "flash" in baseline.violations[0]


@pytest.mark.slow
def test_output_folder_has_report_plot_trials_and_recipe(searched, tiny_task):
    result, out, _ = searched
    names = {p.name for p in out.iterdir()}
    assert {"model", "report.md", "pareto.png", "trials.json", "trials.csv", "recipe.json",
            "study.db", "trials"} <= names
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    assert "## Pareto front" in report and "![accuracy against flash" in report
    assert f"| {result.best.number} **(chosen)** |" in report or result.best.number not in \
        [t.number for t in result.pareto]
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.trials)
    data = json.loads((out / "trials.json").read_text())
    assert data["best"] == result.best.number and len(data["trials"]) == 3
    assert data["val_samples"] == result.val_samples == len(tiny_task[2][1])  # what accuracy is over
    assert f"one standard error over {result.val_samples:,} validation samples" in report
    assert Recipe.load(out / "recipe.json") == result.recipe


@pytest.mark.slow
def test_the_recipe_reruns_to_the_winners_flash(searched, tiny_task):
    result, _, budget = searched
    model, train, _ = tiny_task
    prepared = apply_recipe(model, result.recipe, train)
    again = build(prepared, train[0][:256], **result.recipe.build_options(arena_budget=budget.arena_bytes))
    assert len(again.model) == len(result.model)


@pytest.mark.slow
def test_resume_continues_numbering_without_rerunning(searched, tiny_task):
    result, out, budget = searched
    model, train, val = tiny_task
    with pytest.raises(AutoError, match="already holds a search.*resume"):
        search(model, train, val, budget, space=SPACE, n_trials=4, out=out, seed=1)
    resumed = search(model, train, val, budget, space=SPACE, n_trials=4, out=out, seed=1, resume=True)
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3]
    for old, new in zip(result.trials, resumed.trials):  # not run again: the same records
        assert (old.params, old.duration_s, old.state) == (new.params, new.duration_s, new.state)
    with pytest.raises(AutoError, match="other settings.*budget"):
        search(model, train, val, Budget(flash_bytes=9999), space=SPACE, n_trials=4, out=out, resume=True)


@pytest.mark.slow
def test_an_interrupted_trial_runs_again_on_resume(searched, tiny_task):
    _, out, budget = searched
    model, train, val = tiny_task
    with sqlite3.connect(out / "study.db") as db:  # what a killed process leaves: a RUNNING trial
        db.execute("UPDATE trials SET state='RUNNING', datetime_complete=NULL WHERE number=3")
    resumed = search(model, train, val, budget, space=SPACE, n_trials=4, out=out, seed=1, resume=True)
    interrupted, rerun = resumed.trials[3], resumed.trials[4]
    assert interrupted.state == "failed" and interrupted.failure.startswith("interrupted")
    assert rerun.params == interrupted.params and rerun.state in ("complete", "pruned")


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_search_goes_on(tiny_task):
    model, train, val = tiny_task
    space = SearchSpace(techniques=["layer_pruning"], layers_removed=(2, 3))  # the model has 1 candidate
    with pytest.raises(NoFeasibleModelError) as caught:
        search(model, train, val, Budget(flash_bytes="64KB"), space=space, n_trials=2)
    result = caught.value.result
    assert [t.state for t in result.trials] == ["failed", "failed"]
    assert all(t.failure.startswith("LayerPruningError: cannot meet") for t in result.trials)
    assert "2 failed" in str(caught.value)


@pytest.mark.slow
def test_no_fit_names_the_budget_and_the_closest_trials(tiny_task, tmp_path):
    model, train, val = tiny_task
    with pytest.raises(NoFeasibleModelError) as caught:
        search(model, train, val, Budget(flash_bytes=600, arena_bytes="64KB"), n_trials=1,
               space=SearchSpace(techniques=["pruning"], channel_sparsity=(0.5, 0.5)), out=tmp_path / "s")
    message = str(caught.value)
    assert "No measured trial met: flash_bytes." in message and "closest: trial 0: flash" in message
    assert caught.value.result.best is None and not (tmp_path / "s" / "model").exists()
    assert "## No model fits" in (tmp_path / "s" / "report.md").read_text()


def _untrained():
    """An untrained model and data: for checks that refuse before any work."""
    import keras

    x = np.zeros((8, 8), "float32")
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)]), (x, np.zeros(8, "int64")), (x, np.zeros(8, "int64"))


def test_latency_without_a_device_is_refused_before_any_work():
    model, train, val = _untrained()
    with pytest.raises(BudgetError, match="needs a device"):
        search(model, train, val, Budget(latency_ms="30ms"), n_trials=1)
    with pytest.raises(BudgetError, match="needs a device"):
        search(model, train, val, Budget(flash_bytes="8KB"), objective="energy", n_trials=1)


@pytest.mark.parametrize(("option", "value"), [("final_epochs", 0), ("final_epochs", 2.0), ("final_epochs", True),
                                             ("final_candidates", 0), ("final_candidates", 1.5),
                                             ("final_candidates", False)])
def test_bad_final_options_are_refused_before_any_work(option, value):
    model, train, val = _untrained()
    with pytest.raises(ArgumentError, match=option):
        search(model, train, val, Budget(flash_bytes="8KB"), n_trials=1, **{"final_epochs": 2, option: value})


def _search_with_final(tiny_task, out, channel_sparsity: tuple, n_trials: int, **final):
    """A pruning-only search of ``tiny_task`` (1 epoch per trial) under 8 KB of flash."""
    model, train, val = tiny_task
    space = SearchSpace(techniques=["pruning"], channel_sparsity=channel_sparsity, epochs=(1, 1), sensitivity={})
    return search(model, train, val, Budget(flash_bytes="8KB"), space=space, n_trials=n_trials, out=out,
                  seed=0, **final)


@pytest.mark.slow
def test_the_chosen_recipe_fine_tuned_again_is_returned_when_it_fits_and_is_as_accurate(tiny_task, tmp_path):
    model, train, val = tiny_task  # the one trial prunes 75% of the channels and fine-tunes 1 epoch
    result = _search_with_final(tiny_task, tmp_path / "s", (0.75, 0.75), 1, final_epochs=12)
    final = result.final
    assert result.best.number == 0 and final["trial_epochs"] == 1 and final["epochs"] == 12
    trial_model = apply_recipe(model, Recipe.from_config(result.trials[0].recipe), train)
    trial_accuracy = tflite_export.evaluate_accuracy(build(trial_model, train[0][:256]).model, *val)
    assert final["trial_accuracy"] == pytest.approx(trial_accuracy)
    assert final["kept"] and final["accuracy"] > trial_accuracy + 0.02  # 1 epoch after pruning 75% is short
    assert result.recipe == replace(Recipe.from_config(result.trials[0].recipe), epochs=12)
    assert tflite_export.evaluate_accuracy(result.model, *val) == pytest.approx(final["accuracy"])
    assert result.best.metrics["accuracy"] == final["accuracy"] and len(result.model) <= 8 * 1024
    assert Recipe.load(tmp_path / "s" / "recipe.json") == result.recipe
    assert "fine-tuned again for 12 epochs (trial: 1)" in (tmp_path / "s" / "report.md").read_text()
    again = apply_recipe(model, Recipe.load(tmp_path / "s" / "recipe.json"), train)
    assert build(again, train[0][:256]).model == result.model  # the recipe makes the model returned


@pytest.mark.slow
def test_the_best_of_the_candidates_fine_tuned_again_is_returned(tiny_task, tmp_path):
    model, train, val = tiny_task
    result = _search_with_final(tiny_task, tmp_path / "s", (0.25, 0.75), 4, final_epochs=6, final_candidates=2)
    final, trials = result.final, {t.number: t for t in result.trials}
    measured = {n: t.metrics["accuracy"] for n, t in trials.items()}  # the returned trial's are replaced:
    measured.update({row["trial"]: row["trial_accuracy"] for row in final["candidates"]})
    ranked = sorted((t for t in result.trials if t.feasible), key=lambda t: (-measured[t.number], t.metrics["flash_bytes"], t.number))
    distinct = [t for i, t in enumerate(ranked) if all(t.recipe != u.recipe for u in ranked[:i])]
    # one kind of recipe (pruning only): the 2 best distinct recipes
    assert len(distinct) >= 2 and [row["trial"] for row in final["candidates"]] == [t.number for t in distinct[:2]]
    made = [row for row in final["candidates"] if not row["violations"]]
    assert made  # the tiny MLP fits 8 KB at any sparsity: the best of these is returned, not a trial's own
    best_made = max(made, key=lambda row: (row["accuracy"], -row["loss"], -row["flash_bytes"]))  # as _rank
    assert final["kept"] and final["trial"] == best_made["trial"]
    assert result.recipe == replace(Recipe.from_config(trials[final["trial"]].recipe), epochs=6)
    assert result.best.number == final["trial"]
    assert tflite_export.evaluate_accuracy(result.model, *val) == pytest.approx(result.best.metrics["accuracy"])
    assert len(result.model) <= 8 * 1024
    report = (tmp_path / "s" / "report.md").read_text()
    assert all(f"- trial {row['trial']} fine-tuned again for 6 epochs (trial: 1)" in report
               for row in final["candidates"])
    again = apply_recipe(model, Recipe.load(tmp_path / "s" / "recipe.json"), train)
    assert build(again, train[0][:256]).model == result.model  # the recipe makes the model returned


def test_a_foreign_folder_is_never_used(tmp_path):
    model, train, val = _untrained()
    (tmp_path / "mine.txt").write_text("user data")
    with pytest.raises(AutoError, match="not a tinycompress search folder"):
        search(model, train, val, Budget(flash_bytes="8KB"), n_trials=1, out=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:  # nothing listens on it once closed
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["not a model", "storage unreachable", "nothing to resume",
                                  "data of another shape"])
def test_a_search_that_cannot_start_leaves_no_folder(tmp_path, case):
    model, train, val = _untrained()
    options = {"space": SearchSpace(techniques=["int16x8"])}
    if case == "data of another shape":  # refused before the sensitivity scan runs the model on it
        val = (val[0][:, :-1], val[1])
        with pytest.raises(DataError, match=r"val_data: samples have shape \(\d+,\), but model .* takes"):
            search(model, train, val, Budget(flash_bytes="8KB"), n_trials=1, out=tmp_path / "new" / "s",
                   space=SearchSpace(techniques=["pruning"]))
        assert list(tmp_path.iterdir()) == []
        return
    if case == "not a model":
        (tmp_path / "m.txt").write_text("not a model")
        model = tmp_path / "m.txt"
    elif case == "storage unreachable":
        options["storage"] = f"postgresql+psycopg2://me@127.0.0.1:{_free_port()}/db"
    else:
        options["resume"] = True
    with pytest.raises((AutoError, LoadError)):
        search(model, train, val, Budget(flash_bytes="8KB"), n_trials=1, out=tmp_path / "new" / "s", **options)
    assert [p.name for p in tmp_path.iterdir()] == (["m.txt"] if case == "not a model" else [])


@pytest.mark.slow
def test_a_repeated_parameter_set_reuses_the_measurements(tiny_task):
    model, train, val = tiny_task
    space = SearchSpace(techniques=["pruning"], channel_sparsity=(0.5, 0.5), epochs=(1, 1),
                        sensitivity={})  # no per-layer allocation: one point in the space
    result = search(model, train, val, Budget(flash_bytes="8KB"), space=space, n_trials=2)
    first, second = result.trials
    assert first.params == second.params and second.duplicate_of == 0 and first.duplicate_of is None
    assert second.metrics == first.metrics and second.intermediate == {}
    assert result.best.number == 0


class _FakeCost:
    """A stand-in for `tflite_export.cost` (the device cost model has its own tests): latency
    and energy proportional to the model's MACs, so the budget can be checked exactly."""

    def __init__(self):
        self.calls = []

    def get_device(self, device):
        if device != "test-board":
            raise BudgetError(f"unknown device {device!r}")

    def estimate(self, model, device):
        from types import SimpleNamespace

        macs = tflite_export.inspect(model, measure=False).macs
        self.calls.append(device)
        return SimpleNamespace(total_ms=macs / 1000, total_uj=macs / 100, rel_error=0.2, unknown_ops=())


@pytest.mark.slow
def test_latency_budget_uses_the_device_cost_model(tiny_task, monkeypatch, tmp_path):
    import sys

    model, train, val = tiny_task
    fake = _FakeCost()
    monkeypatch.setitem(sys.modules, "tflite_export.cost", fake)
    with pytest.raises(BudgetError, match="unknown device"):
        search(model, train, val, Budget(latency_ms=1.0), device="other-board", n_trials=1)
    space = SearchSpace(techniques=["pruning"], channel_sparsity=(0.0, 0.75), epochs=(1, 1))
    budget = Budget(latency_ms=1.0)  # the uncompressed model has ~1.4k MACs: 1.4 "ms"
    result = search(model, train, val, budget, space=space, device="test-board", n_trials=3,
                    out=tmp_path / "s", seed=2)
    assert fake.calls and set(fake.calls) == {"test-board"}
    baseline = result.trials[0]
    assert baseline.metrics["latency_ms"] > 1.0 and not baseline.feasible
    macs = tflite_export.inspect(result.model, measure=False).macs
    assert result.best.metrics["latency_ms"] == pytest.approx(macs / 1000)
    assert result.best.metrics["latency_ms"] <= 1.0
    assert result.best.metrics["energy_uj"] == pytest.approx(macs / 100)
    report = (tmp_path / "s" / "report.md").read_text()
    assert "on test-board (cost-model estimates, relative error 20%)" in report
