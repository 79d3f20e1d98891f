"""One trial of the search as Optuna's objective: sample, apply, build, measure, record.

See `tinycompress.auto.search` for the flow. A failure of any kind is recorded
on the trial (``failure``) and re-raised for Optuna to mark the trial failed
(`search` passes ``catch=(Exception,)`` so the study goes on); a pruned or
failed trial counts as infeasible for the constrained sampler.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tinycompress.auto.budget import Budget
from tinycompress.auto.recipe import Recipe, apply_recipe
from tinycompress.auto.result import OBJECTIVES
from tinycompress.auto.space import CHANNEL_STEP, WEIGHT_STEP, SearchSpace
from tinycompress.auto.sensitivity import allocate
from tinycompress.auto.trial import TrialRecord, measure, screen

__all__ = ["Objective", "study_value"]

_LOG = logging.getLogger(__name__)

#: Constraint value of a figure that was not measured (pruned or failed trial).
_UNMEASURED = 1e6
#: Flash headroom screening keeps for encoded recipes: DECODE's prune and Huffman
#: sizes depend on the fine-tuned values a little.
_ENCODE_MARGIN = 0.03
#: Cross-entropy (nats) above which `study_value`'s tie-break stops growing.
LOSS_CAP = 10.0


def study_value(metrics: dict[str, Any], samples: int) -> float:
    """The value the study maximizes for a measured trial under the accuracy objective:
    its accuracy, less a tie-break that grows with its validation cross-entropy (capped at
    `LOSS_CAP`) up to half of one sample's share of the accuracy. So a trial one sample
    more accurate always ranks higher, and of equally accurate trials the one with the
    lower cross-entropy does: TPE tells its good trials from its bad ones by rank, and
    accuracy alone ties many (1.9 points a sample on 54 validation series).

    Example:
        >>> unsure, sure = ({"accuracy": 0.5, "loss": loss} for loss in (0.7, 0.4))
        >>> study_value(unsure, 4) < study_value(sure, 4) < 0.5 < study_value({"accuracy": 0.75, "loss": 9.0}, 4)
        True
    """
    tie = min(metrics["loss"], LOSS_CAP) / LOSS_CAP * 0.5 / samples
    return float(metrics["accuracy"]) - tie


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
        self.screens: dict[str, dict] = {}  # recipe config (JSON) -> metrics of its untrained build

    def __call__(self, trial) -> float:
        import optuna

        start = time.monotonic()
        try:
            recipe = self.space.suggest(trial, seed=self.seed)
            twin = _twin(trial)
            if twin is not None:  # screening made the same choice for it
                trial.set_user_attr("recipe", twin.user_attrs["recipe"])
                return self._copy(trial, twin, start)
            trial.set_user_attr("recipe", recipe.get_config())
            recipe = self._screened(trial, recipe)
            trial.set_user_attr("recipe", recipe.get_config())

            def on_epoch(step: int, accuracy: float) -> None:
                trial.report(accuracy, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"float accuracy {accuracy:.4f} at epoch step {step}")

            prepared = apply_recipe(self.model, recipe, self.train, val_data=self.val, on_epoch=on_epoch)
            built, metrics = measure(prepared, recipe, self.train[0], self.val,
                                     arena_budget=self.budget.arena_bytes, estimate=self.estimate,
                                     device=self.device)
        except optuna.TrialPruned:
            if "screening" not in trial.user_attrs or trial.user_attrs["screening"]["fits"]:
                self._unmeasured(trial, start)
            else:
                trial.set_user_attr("duration_s", time.monotonic() - start)
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
        if key == "accuracy":
            return study_value(metrics, len(self.val[1]))
        return float(metrics[key])

    def _screen(self, recipe: Recipe) -> dict:
        key = json.dumps(recipe.get_config(), sort_keys=True)
        if key not in self.screens:
            self.screens[key] = screen(self.model, recipe, self.train, arena_budget=self.budget.arena_bytes,
                                       estimate=self.estimate, device=self.device)
        return self.screens[key]

    def _fits(self, recipe: Recipe, shapes: Budget) -> tuple[bool, dict]:
        """Whether ``recipe``'s untrained build meets ``shapes`` (with the encoding margin),
        and its metrics."""
        metrics = self._screen(recipe)
        margin = 1 + _ENCODE_MARGIN if recipe.encode else 1
        return shapes.is_satisfied_by({**metrics, "flash_bytes": metrics["flash_bytes"] * margin}), metrics

    def _axes(self, recipe: Recipe) -> list[tuple[str, float, float]]:
        """``(field, step, maximum)`` screening may raise, in order: channel sparsity, then
        (for a recipe that encodes, whose zeros pay) unstructured weight sparsity."""
        if "pruning" not in self.space.techniques or (recipe.epochs == 0 and not recipe.techniques()):
            return []  # the baseline is measured as it is
        axes = [("channel_sparsity", CHANNEL_STEP, self.space.channel_sparsity[1])]
        if recipe.encode and self.space.weight_sparsity[1] > 0:
            axes.append(("weight_sparsity", WEIGHT_STEP, self.space.weight_sparsity[1]))
        return axes

    def _at(self, recipe: Recipe, **values: float) -> Recipe:
        """``recipe`` with raised sparsities (per-layer ratios re-allocated, fine-tuned)."""
        channels = values.get("channel_sparsity", recipe.channel_sparsity)
        return replace(recipe, **values, epochs=recipe.epochs or self.space.epochs[0],
                       layer_sparsity=allocate(channels, self.space.sensitivity) if recipe.layer_sparsity else None)

    def _screened(self, trial, recipe: Recipe) -> Recipe:
        """The recipe to fine-tune: ``recipe`` when its untrained build meets the budget's
        limits other than accuracy, else the same recipe with the least channel sparsity
        (on the space's grid, up to its maximum) whose untrained build does, and when even
        the most channels pruned are not enough and the recipe encodes, the most channels
        and the least unstructured weight sparsity (on its 0.1 grid) that do. Each is a
        bisection: every size is monotone in the channels and weights kept. A trial that
        nothing brings within the budget is pruned with its measured excess, in seconds
        instead of the minutes its fine-tuning would take."""
        import optuna

        shapes = replace(self.budget, min_accuracy=None)
        if not shapes.limits():
            return recipe
        known = len(self.screens)
        ok, metrics = self._fits(recipe, shapes)
        chosen, raised = recipe, {}
        for name, step, maximum in [] if ok else self._axes(recipe):
            grid = [round(getattr(recipe, name) + step * k, 2)
                    for k in range(1, int((maximum - getattr(recipe, name)) / step + 1e-6) + 1)]
            if not grid:
                continue
            at = lambda value: self._at(recipe, **raised, **{name: value})  # noqa: E731, B023
            ok, metrics = self._fits(at(grid[-1]), shapes)
            if not ok:
                raised[name] = grid[-1]
                continue
            low, high = 0, len(grid) - 1
            while low < high:  # grid[high] fits; find the first that does
                middle = (low + high) // 2
                if self._fits(at(grid[middle]), shapes)[0]:
                    high = middle
                else:
                    low = middle + 1
            chosen = at(grid[high])
            break
        screening = {"sampled": recipe.channel_sparsity, "ran": chosen.channel_sparsity if ok else None,
                     "builds": len(self.screens) - known, "fits": ok}
        if recipe.encode:
            screening.update(sampled_weights=recipe.weight_sparsity,
                             ran_weights=chosen.weight_sparsity if ok else None)
        trial.set_user_attr("screening", screening)
        if ok:
            return chosen
        for key, excess in shapes.excess(metrics).items():
            trial.set_constraint(key, min(excess, _UNMEASURED))
        trial.set_user_attr("metrics", metrics)
        trial.set_user_attr("violations", shapes.violations(metrics))
        most = ", ".join(f"{v:.2f} {n.replace('_', ' ')}" for n, v in raised.items()) or \
            f"{recipe.channel_sparsity:.2f} channel sparsity"
        raise optuna.TrialPruned(f"over the budget before fine-tuning, even at {most}: "
                                 f"{'; '.join(shapes.violations(metrics))}")

    def _copy(self, trial, twin, start: float) -> float:
        """Record the measurements of a finished trial with the same parameters (same recipe,
        same seed: the same model) instead of training and building it again."""
        for key in ("metrics", "feasible", "violations"):
            trial.set_user_attr(key, twin.user_attrs[key])
        if "screening" in twin.user_attrs:  # the twin's outcome; this trial built nothing
            trial.set_user_attr("screening", {**twin.user_attrs["screening"], "builds": 0})
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
            return self.make(Recipe.from_config(record.recipe), name=name)
        return self._measure(prepared, Recipe.from_config(record.recipe), name)

    def make(self, recipe: Recipe, *, name: str):
        """``(BuildResult, metrics)`` of ``recipe`` run on the original model and measured."""
        return self._measure(apply_recipe(self.model, recipe, self.train), recipe, name)

    def _measure(self, prepared, recipe: Recipe, name: str):
        return measure(prepared, recipe, self.train[0], self.val, arena_budget=self.budget.arena_bytes,
                       estimate=self.estimate, device=self.device, name=name)
