"""One trial of the search as Optuna's objective: sample, apply, build, measure, record.

See `tinycompress.auto.search` for the flow. A failure of any kind is recorded
on the trial (``failure``) and re-raised for Optuna to mark the trial failed
(`search` passes ``catch=(Exception,)`` so the study goes on); a pruned or
failed trial counts as infeasible for the constrained sampler.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tinycompress.auto.budget import Budget
from tinycompress.auto.recipe import Recipe, apply_recipe
from tinycompress.auto.result import OBJECTIVES
from tinycompress.auto.space import SearchSpace
from tinycompress.auto.trial import TrialRecord, measure

__all__ = ["Objective"]

_LOG = logging.getLogger(__name__)

#: Constraint value of a figure that was not measured (pruned or failed trial).
_UNMEASURED = 1e6


def _twin(trial):
    """A complete trial of the study with exactly ``trial``'s parameters, or None."""
    from optuna.trial import TrialState

    params = trial.params
    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == params and "metrics" in other.user_attrs:
            return other
    return None


class Objective:
    """One trial: sample, apply, build, measure, record (see the module docs)."""

    def __init__(self, model, space: SearchSpace, train, val, budget: Budget, objective: str, *,
                 seed: int, estimate, device: str | None, artifacts: Path | None) -> None:
        self.model, self.space, self.train, self.val = model, space, train, val
        self.budget, self.objective, self.seed = budget, objective, seed
        self.estimate, self.device, self.artifacts = estimate, device, artifacts
        self.kept: dict[int, Any] = {}  # trial number -> prepared model of the best feasible trial

    def __call__(self, trial) -> float:
        import optuna

        start = time.monotonic()
        try:
            recipe = self.space.suggest(trial, seed=self.seed)
            trial.set_user_attr("recipe", recipe.get_config())
            twin = _twin(trial)
            if twin is not None:
                return self._copy(trial, twin, start)

            def on_epoch(step: int, accuracy: float) -> None:
                trial.report(accuracy, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"float accuracy {accuracy:.4f} at epoch step {step}")

            prepared = apply_recipe(self.model, recipe, self.train, val_data=self.val, on_epoch=on_epoch)
            built, metrics = measure(prepared, recipe, self.train[0], self.val,
                                     arena_budget=self.budget.arena_bytes, estimate=self.estimate,
                                     device=self.device)
        except optuna.TrialPruned:
            self._unmeasured(trial, start)
            raise
        except KeyboardInterrupt:  # Optuna fails the trial; a resumed search runs it again
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("failure", "interrupted: the search was stopped during this trial")
            raise
        except Exception as e:  # noqa: BLE001 - any failure is this trial's outcome; the search goes on
            trial.set_user_attr("failure", f"{type(e).__name__}: {e}")
            self._unmeasured(trial, start)
            _LOG.warning("trial %d failed: %s: %s", trial.number, type(e).__name__, e)
            raise
        feasible = self.budget.is_satisfied_by(metrics)
        trial.set_user_attr("metrics", metrics)
        for key, excess in self.budget.excess(metrics).items():
            trial.set_constraint(key, min(excess, _UNMEASURED))
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("violations", self.budget.violations(metrics))
        trial.set_user_attr("duration_s", time.monotonic() - start)
        self._keep(trial.number, prepared, built, feasible)
        key, maximize = OBJECTIVES[self.objective]
        if metrics[key] is None:  # e.g. energy on a device of unknown power: the worst value
            return -_UNMEASURED if maximize else _UNMEASURED
        return float(metrics[key])

    def _copy(self, trial, twin, start: float) -> float:
        """Record the measurements of a finished trial with the same parameters (same recipe,
        same seed: the same model) instead of training and building it again."""
        for key in ("metrics", "feasible", "violations"):
            trial.set_user_attr(key, twin.user_attrs[key])
        for key, value in twin.constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("duration_s", time.monotonic() - start)
        _LOG.info("trial %d has the parameters of trial %d: its measurements are reused",
                  trial.number, twin.number)
        return float(twin.values[0])

    def _unmeasured(self, trial, start: float) -> None:
        """A pruned or failed trial: infeasible for the constrained sampler."""
        trial.set_user_attr("duration_s", time.monotonic() - start)
        for key in self.budget.limits():
            trial.set_constraint(key, _UNMEASURED)

    def _keep(self, number: int, prepared, built, feasible: bool) -> None:
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            try:
                prepared.save(self.artifacts / f"trial-{number}.keras")
            except Exception as e:  # noqa: BLE001 - the recipe still makes the model again
                _LOG.warning("trial %d: its model could not be saved (%s: %s); a resumed search "
                             "makes it again from its recipe", number, type(e).__name__, e)
        if feasible:  # the best is chosen among these at the end; keep the latest in memory too
            self.kept[number] = (prepared, built)

    def built(self, record: TrialRecord, *, name: str):
        """``(BuildResult, metrics)`` of ``record``: the trial's own build when this process ran
        it under the same model name, else built and measured again from its saved model or recipe."""
        if record.number in self.kept and name == self.kept[record.number][1].name:
            return self.kept[record.number][1], record.metrics
        path = None if self.artifacts is None else self.artifacts / f"trial-{record.number}.keras"
        if record.number in self.kept:
            prepared = self.kept[record.number][0]
        elif path is not None and path.is_file():
            import keras

            prepared = keras.saving.load_model(path, compile=False)
        else:
            _LOG.info("trial %d ran elsewhere: making its model again from its recipe", record.number)
            prepared = apply_recipe(self.model, Recipe.from_config(record.recipe), self.train)
        return measure(prepared, Recipe.from_config(record.recipe), self.train[0], self.val,
                       arena_budget=self.budget.arena_bytes, estimate=self.estimate, device=self.device,
                       name=name)
