"""`SearchResult`: every trial of a search, the Pareto front, and the chosen model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinycompress.auto.budget import Budget
from tinycompress.auto.recipe import Recipe
from tinycompress.auto.trial import TrialRecord

__all__ = ["SearchResult", "pareto_front", "OBJECTIVES", "PARETO_AXES"]

#: ``objective`` -> the metric it optimizes and whether larger is better.
OBJECTIVES = {"accuracy": ("accuracy", True), "flash": ("flash_bytes", False),
              "latency": ("latency_ms", False), "energy": ("energy_uj", False)}
#: Costs traded against accuracy on the Pareto front (those measured).
PARETO_AXES = ("flash_bytes", "arena_bytes", "latency_ms")


def accuracy_error(accuracy: float, samples: int) -> float:
    """One standard error of an accuracy measured on ``samples`` samples (binomial,
    Agresti-Coull: two successes and two failures added, so a perfect score on few samples
    is not given zero error).

    Example:
        >>> round(accuracy_error(0.9775, 1600), 4)
        0.0038
    """
    n = samples + 4
    p = (accuracy * samples + 2) / n
    return math.sqrt(p * (1 - p) / n)


def pareto_front(trials: list[TrialRecord]) -> list[TrialRecord]:
    """Measured trials no other trial beats on accuracy and every cost of `PARETO_AXES`
    (a cost counts when every trial has it), sorted by flash.

    Example:
        >>> t = lambda n, a, f: TrialRecord(n, "complete", metrics={"accuracy": a, "flash_bytes": f,
        ...                                                       "arena_bytes": 100})
        >>> [r.number for r in pareto_front([t(0, 0.9, 900), t(1, 0.8, 950), t(2, 0.7, 400)])]
        [2, 0]
    """
    measured = [t for t in trials if t.state == "complete" and t.metrics.get("accuracy") is not None]
    axes = [a for a in PARETO_AXES if measured and all(t.metrics.get(a) is not None for t in measured)]

    def point(t: TrialRecord) -> tuple:
        return (-t.metrics["accuracy"], *(t.metrics[a] for a in axes))

    def dominates(a: tuple, b: tuple) -> bool:
        return all(x <= y for x, y in zip(a, b)) and a != b

    points = {t.number: point(t) for t in measured}
    front = [t for t in measured if not any(dominates(points[o.number], points[t.number]) for o in measured)]
    return sorted(front, key=lambda t: (t.metrics.get("flash_bytes", 0), -t.metrics["accuracy"]))


@dataclass
class SearchResult:
    """What `tinycompress.auto.search` found.

    Attributes:
        budget: the `Budget` searched under.
        objective: ``"accuracy"`` (most accurate within the budget) or
            ``"flash"``/``"latency"``/``"energy"`` (cheapest above ``budget.min_accuracy``).
        trials: every trial of the study (all workers and resumed runs), by number.
        best: the chosen trial (feasible, best objective), or None when no trial fits.
        recipe: its `Recipe`, or None.
        build: the chosen model's `tinycompress.BuildResult` (measured again), or None.
        pareto: the Pareto front (`pareto_front`) over all measured trials.
        study_name: the Optuna study.
        storage: the storage URL (password hidden).
        device: the cost model's device, or None.
        out_dir: where `write_search` wrote the output, or None.
        sensitivity: the channel-pruning sensitivity scan (``{layer: accuracy
            drop at half its channels}``), or None when pruning was not searched.
        val_samples: samples of the validation data every accuracy is measured on, or None.
        final: with ``search(final_epochs=...)``, the best trials' recipes
            fine-tuned again: ``{"epochs", "trial", "trial_epochs", "accuracy",
            "trial_accuracy", "flash_bytes", "violations", "kept", "candidates", "margin"}``:
            the returned trial (``kept``: its recipe fine-tuned again is returned,
            else its own model), ``accuracy``/``loss``/``flash_bytes``/``violations`` of its
            recipe fine-tuned again (``"skipped"`` or ``"failure"`` instead when
            it was not made), ``candidates`` the same per candidate, and ``margin``
            the accuracy margin (one standard error) within which the lowest
            cross-entropy was returned (None: the best for the objective); else None.
    """

    budget: Budget
    objective: str
    trials: list[TrialRecord]
    best: TrialRecord | None = None
    recipe: Recipe | None = None
    build: Any = None
    pareto: list[TrialRecord] = field(default_factory=list)
    study_name: str = ""
    storage: str = ""
    device: str | None = None
    out_dir: Path | None = None
    sensitivity: dict[str, float] | None = None
    final: dict[str, Any] | None = None
    val_samples: int | None = None

    @property
    def accuracy_error(self) -> float | None:
        """One standard error of the chosen model's validation accuracy from the sample
        count alone (binomial, Agresti-Coull: two successes and two failures added, so a
        perfect score on few samples is not given zero error); None without a chosen model or
        ``val_samples``. Accuracies of trials closer than about twice this are not told apart
        by the validation data.

        Example:
            >>> from tinycompress.auto import Budget
            >>> r = SearchResult(Budget(flash_bytes=1), "accuracy", [], val_samples=1600,
            ...                  best=TrialRecord(0, "complete", metrics={"accuracy": 0.9775}))
            >>> round(r.accuracy_error, 4)
            0.0038
        """
        if self.best is None or not self.val_samples or self.best.metrics.get("accuracy") is None:
            return None
        return accuracy_error(self.best.metrics["accuracy"], self.val_samples)

    @property
    def model(self) -> bytes | None:
        """The chosen `.tflite` bytes, or None."""
        return None if self.build is None else self.build.model

    @property
    def fits(self) -> bool:
        """Whether a model meeting the budget was found (measured)."""
        return self.best is not None and self.best.feasible

    def counts(self) -> dict[str, int]:
        """Trials per state."""
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def _measured(self) -> list[TrialRecord]:
        """Trials with figures: complete ones, and those screening refused before fine-tuning
        (their shape figures, no accuracy)."""
        return [t for t in self.trials if t.state == "complete"
                or (t.screening.get("fits") is False and t.metrics)]

    def unmet(self) -> list[str]:
        """Budget fields that no measured trial met (e.g. ``["flash_bytes"]``)."""
        measured = self._measured()
        return [name for name in self.budget.limits()
                if not any(self.budget.excess(t.metrics).get(name, math.inf) <= 0 for t in measured)]

    def closest(self, k: int = 3) -> list[TrialRecord]:
        """The ``k`` measured trials nearest the budget (smallest summed relative excess of
        the figures they have; a trial screening refused has no accuracy)."""
        measured = self._measured()

        def distance(t: TrialRecord) -> float:
            return sum(max(0.0, v) for v in self.budget.excess(t.metrics).values() if v != math.inf)

        return sorted(measured, key=lambda t: (distance(t), t.number))[:k]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the trials in full)."""
        return {
            "budget": self.budget.get_config(), "objective": self.objective,
            "study_name": self.study_name, "storage": self.storage, "device": self.device,
            "fits": self.fits, "best": None if self.best is None else self.best.number,
            "recipe": None if self.recipe is None else self.recipe.get_config(),
            "pareto": [t.number for t in self.pareto], "counts": self.counts(),
            "unmet": self.unmet(), "sensitivity": self.sensitivity, "final": self.final,
            "val_samples": self.val_samples, "accuracy_error": self.accuracy_error,
            "trials": [t.to_dict() for t in self.trials],
        }
