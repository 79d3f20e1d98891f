"""`search(final_epochs=..., final_candidates=...)`: which fine-tuned-again model is returned.

The choice among candidates is pinned on recorded trials and a stand-in for the
training (fast); `test_search.py` runs it end to end on a real model.
"""

from __future__ import annotations

from dataclasses import replace

from tinycompress.auto import Budget, Recipe
from tinycompress.auto.output import _final_lines
from tinycompress.auto.result import SearchResult, accuracy_error
from tinycompress.auto.search import _candidates, _fine_tune_again


def _trial(number: int, accuracy: float, flash: int, *, sparsity: float, epochs: int = 1,
           feasible: bool = True, **fields) -> object:
    from tinycompress.auto import TrialRecord

    recipe = Recipe(channel_sparsity=sparsity, epochs=epochs, **fields).get_config()
    return TrialRecord(number=number, state="complete", recipe=recipe, feasible=feasible,
                       metrics={"accuracy": accuracy, "flash_bytes": flash})


class _Run:
    """Stands in for the search's `Objective`: ``make`` returns the figures of ``longer[sparsity]``
    (an exception instance is raised) and records which recipes were made."""

    def __init__(self, longer: dict):
        self.longer, self.made = longer, []

    def make(self, recipe: Recipe, *, name: str):
        self.made.append(recipe)
        figures = self.longer[recipe.channel_sparsity]
        if isinstance(figures, Exception):
            raise figures
        return f"build of {recipe.channel_sparsity}", {"flash_bytes": 1000, **figures}


def _result(trials, objective: str = "accuracy") -> SearchResult:
    return SearchResult(Budget(flash_bytes=2000, min_accuracy=0.5), objective, trials)


def _chosen(result: SearchResult):
    best = max((t for t in result.trials if t.feasible), key=lambda t: t.metrics["accuracy"])
    return best, Recipe.from_config(best.recipe), "own build", dict(best.metrics)


def test_candidates_are_the_best_feasible_trials_with_distinct_recipes():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5), _trial(1, 0.95, 3000, sparsity=0.0, feasible=False),
              _trial(2, 0.89, 1500, sparsity=0.5), _trial(3, 0.88, 1200, sparsity=0.6),
              _trial(4, 0.70, 900, sparsity=0.7)]
    result = _result(trials)
    assert [t.number for t in _candidates(result, 3)] == [0, 3, 4]  # 2 repeats 0's recipe
    assert [t.number for t in _candidates(result, 1)] == [0]
    assert [t.number for t in _candidates(result, 9)] == [0, 3, 4]


def test_candidates_take_each_other_kind_of_recipe_before_a_second_of_a_kind():
    trials = [_trial(0, 0.95, 1500, sparsity=0.5), _trial(1, 0.94, 1500, sparsity=0.4),
              _trial(2, 0.93, 1500, sparsity=0.3), _trial(3, 0.90, 1500, sparsity=0.5, cluster_bits=3),
              _trial(4, 0.85, 1500, sparsity=0.5, mode="int16x8"),
              _trial(5, 0.99, 3000, sparsity=0.0, lowrank_energy=0.8, feasible=False),
              _trial(6, 0.80, 1500, sparsity=0.6, mode="int16x8")]
    result = _result(trials)
    assert [t.number for t in _candidates(result, 3)] == [0, 3, 4]  # best, then one per kind
    assert [t.number for t in _candidates(result, 4)] == [0, 1, 3, 4]  # then the next best, in rank order
    assert [t.number for t in _candidates(result, 2)] == [0, 3]


def test_the_most_accurate_candidate_that_fits_is_returned():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5), _trial(1, 0.89, 1500, sparsity=0.4),
              _trial(2, 0.88, 1200, sparsity=0.6)]
    result = _result(trials)
    run = _Run({0.5: {"accuracy": 0.91}, 0.4: {"accuracy": 0.95, "flash_bytes": 2500},  # over 2000 B
                0.6: {"accuracy": 0.93}})
    trial, recipe, built, metrics = _fine_tune_again(result, run, _chosen(result), 4, 3, "m")
    assert (trial.number, recipe, built, metrics["accuracy"]) == (
        2, replace(Recipe.from_config(trials[2].recipe), epochs=4), "build of 0.6", 0.93)
    assert [r.epochs for r in run.made] == [4, 4, 4]
    final = result.final
    assert (final["trial"], final["kept"], final["accuracy"], final["trial_accuracy"]) == (2, True, 0.93, 0.88)
    rows = {row["trial"]: row for row in final["candidates"]}
    assert [row["trial"] for row in final["candidates"]] == [0, 1, 2]
    assert rows[1]["violations"] == ["flash 2500 B > 2000 B"] and not rows[1]["kept"]
    assert rows[0]["accuracy"] == 0.91 and not rows[0]["kept"] and rows[2]["kept"]


def test_a_candidate_is_returned_even_when_the_trial_own_model_scored_higher():
    # the trial's 0.90 was the best of every trial's measurements on the same data (inflated by
    # that draw's luck); the candidates' figures are fresh, so only they are compared
    trials = [_trial(0, 0.90, 1500, sparsity=0.5), _trial(1, 0.85, 1500, sparsity=0.4)]
    result = _result(trials)
    run = _Run({0.5: {"accuracy": 0.87}, 0.4: {"accuracy": 0.88}})
    picked = _fine_tune_again(result, run, _chosen(result), 4, 3, "m")
    assert (picked[0].number, picked[1].epochs, picked[2]) == (1, 4, "build of 0.4")
    assert (result.final["trial"], result.final["kept"], result.final["accuracy"]) == (1, True, 0.88)


def test_the_trial_own_model_stands_when_no_candidate_is_made_within_the_budget():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5), _trial(1, 0.85, 1500, sparsity=0.4)]
    result = _result(trials)
    run = _Run({0.5: {"accuracy": 0.95, "flash_bytes": 2500}, 0.4: RuntimeError("converter crashed")})
    chosen = _chosen(result)
    assert _fine_tune_again(result, run, chosen, 4, 3, "m") is chosen
    final = result.final
    assert (final["trial"], final["kept"], final["accuracy"]) == (0, False, 0.95)
    assert final["violations"] == ["flash 2500 B > 2000 B"]
    assert final["candidates"][1]["failure"] == "RuntimeError: converter crashed"
    assert _final_lines(final)[-1] == ("- returned: trial 0's own model "
                                       "(no model fine-tuned again was made within the budget)")


def test_of_candidates_within_one_standard_error_the_lowest_cross_entropy_is_returned():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5), _trial(1, 0.89, 1500, sparsity=0.4),
              _trial(2, 0.88, 1200, sparsity=0.6)]
    # 1,600 samples: one standard error at 98.06% is 0.35 points (accuracy_error)
    run = _Run({0.5: {"accuracy": 0.980625, "loss": 0.102}, 0.4: {"accuracy": 0.9775, "loss": 0.075},
                0.6: {"accuracy": 0.98, "loss": 0.077}})
    result = replace(_result(trials), val_samples=1600)
    assert round(accuracy_error(0.980625, 1600), 4) == 0.0035
    assert _fine_tune_again(result, run, _chosen(result), 4, 3, "m")[0].number == 1
    assert result.final["margin"] == accuracy_error(0.980625, 1600)
    lines = _final_lines(result.final)
    assert "validation accuracy 0.9775 (cross-entropy 0.0750) against the trial's 0.89, 1000 B of flash: returned" in lines[1]
    assert lines[-1].startswith("- of the models within 0.35 points (one standard error) of the most "
                                "accurate on the validation data, the one with the lowest cross-entropy")
    # one more image below the best's standard error: out of the running
    run.longer[0.4] = {"accuracy": 0.976875, "loss": 0.075}
    assert _fine_tune_again(result, run, _chosen(result), 4, 3, "m")[0].number == 2
    # without the validation size, the most accurate
    plain = _result(trials)
    assert _fine_tune_again(plain, run, _chosen(result), 4, 3, "m")[0].number == 0
    assert plain.final["margin"] is None and "standard error" not in _final_lines(plain.final)[-1]
    # a candidate measured without its cross-entropy ranks after those with one
    run.longer[0.6] = {"accuracy": 0.98}
    assert _fine_tune_again(result, run, _chosen(result), 4, 3, "m")[0].number == 0
    # one model made within the budget: nothing was chosen within a margin, and the report says none
    alone = _Run({0.5: {"accuracy": 0.98, "loss": 0.1}, 0.4: RuntimeError("converter crashed"),
                  0.6: {"accuracy": 0.99, "flash_bytes": 2500}})
    assert _fine_tune_again(result, alone, _chosen(result), 4, 3, "m")[0].number == 0
    assert result.final["margin"] is None
    assert not any("standard error" in line for line in _final_lines(result.final))


def test_a_tie_returns_the_model_fine_tuned_again():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5)]
    result = _result(trials)
    picked = _fine_tune_again(result, _Run({0.5: {"accuracy": 0.90, "flash_bytes": 1500}}),
                              _chosen(result), 4, 3, "m")
    assert picked[1].epochs == 4 and result.final["kept"]


def test_a_recipe_that_trains_as_long_already_is_not_made_again():
    trials = [_trial(0, 0.90, 1500, sparsity=0.5, epochs=4), _trial(1, 0.80, 1500, sparsity=0.4)]
    result = _result(trials)
    run = _Run({0.4: {"accuracy": 0.92}})
    picked = _fine_tune_again(result, run, _chosen(result), 4, 3, "m")
    assert [r.channel_sparsity for r in run.made] == [0.4] and picked[0].number == 1
    assert "final_epochs=4 adds none" in result.final["candidates"][0]["skipped"]
    # trained as long, the trial's own model competes (and wins a tie, as the better trial)
    chosen = _chosen(result)
    as_good = _Run({0.4: {"accuracy": 0.90, "flash_bytes": 1500}})
    assert _fine_tune_again(result, as_good, chosen, 4, 3, "m") is chosen
    assert (result.final["trial"], result.final["kept"]) == (0, False)
    assert _final_lines(result.final)[-1] == ("- returned: trial 0's own model "
                                              "(its recipe trains as long already)")


def test_a_cost_objective_returns_the_cheapest_candidate_above_the_floor():
    trials = [_trial(0, 0.90, 1200, sparsity=0.6), _trial(1, 0.95, 1500, sparsity=0.5)]
    result = _result(trials, "flash")
    chosen = (trials[0], Recipe.from_config(trials[0].recipe), "own build", dict(trials[0].metrics))
    run = _Run({0.6: {"accuracy": 0.40, "flash_bytes": 1100},  # cheaper, but below the 0.5 floor
                0.5: {"accuracy": 0.96, "flash_bytes": 1150}})
    picked = _fine_tune_again(result, run, chosen, 4, 2, "m")
    assert picked[0].number == 1 and picked[3]["flash_bytes"] == 1150
    assert result.final["candidates"][0]["violations"] == ["accuracy 0.4000 < 0.5000"]
