"""`search`: the most accurate model that fits a device budget (or the cheapest above an
accuracy floor), found by an Optuna study over combinations of techniques.

Each trial samples a `Recipe` from the `SearchSpace`, runs it on the trained
model (`apply_recipe`, reporting the float validation accuracy after every
fine-tuning epoch so hopeless trials are pruned), builds it with
`tinycompress.build` and measures it (`tinycompress.auto.trial.measure`). A
trial that fails (conversion, verification, TFLM crash in its child process,
a technique refusing the model) is recorded with its reason and the search
goes on. The chosen trial is built again with full verification and checked
against the budget once more: a model that violates the budget is never
returned. See `tinycompress.auto._study` for storage, sampler and pruner.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinycompress.auto._objective import Objective
from tinycompress.auto.budget import Budget
from tinycompress.auto.recipe import Recipe, check_labelled
from tinycompress.auto.result import OBJECTIVES, SearchResult, accuracy_error, pareto_front
from tinycompress.auto.space import SearchSpace
from tinycompress.auto.trial import TrialRecord, cost_model
from tinycompress.errors import ArgumentError, AutoError, NoFeasibleModelError

__all__ = ["search", "SearchStatus", "DEFAULT_TRIALS"]

_LOG = logging.getLogger(__name__)

#: Trials of a search by default.
DEFAULT_TRIALS = 40


@dataclass(frozen=True)
class SearchStatus:
    """What `search` tells its ``progress`` callback after every trial.

    Attributes:
        done: trials finished in the study (all workers and earlier runs).
        total: ``n_trials``.
        last: the trial that just ended.
        best: the best feasible trial so far, or None.
        elapsed_s: seconds since this run started.
        remaining_s: estimated seconds left (mean trial time of this run, capped by the timeout).
    """

    done: int
    total: int
    last: TrialRecord
    best: TrialRecord | None
    elapsed_s: float
    remaining_s: float | None


def _rank(metrics: dict, objective: str) -> tuple:
    """Sort key of a measured model for ``objective`` (larger is better): the objective's
    figure, then (accuracy objective) lower validation cross-entropy and less flash, or
    (cost objectives) more accuracy and lower cross-entropy. Accuracy moves in steps of one
    validation sample, so equally accurate models are common; the cross-entropy tells
    apart the one more sure of the right classes (a trial measured before it was recorded
    ranks last among equals)."""
    metric, larger = OBJECTIVES[objective]
    if larger:
        return metrics[metric], _surer(metrics), -metrics["flash_bytes"]
    return -metrics[metric], metrics["accuracy"], _surer(metrics)


def _surer(metrics: dict) -> float:
    """The validation cross-entropy negated (larger is surer); -inf for a model measured
    before it was recorded."""
    return -math.inf if metrics.get("loss") is None else -metrics["loss"]


def _ranked(trials: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """The feasible complete trials, best first (on a tie, the earlier trial)."""
    feasible = [t for t in trials if t.state == "complete" and t.feasible]
    return sorted(feasible, key=lambda t: (*_rank(t.metrics, objective), -t.number), reverse=True)


def _choose(trials: list[TrialRecord], objective: str) -> TrialRecord | None:
    ranked = _ranked(trials, objective)
    return ranked[0] if ranked else None


def _check(objective: str, budget: Budget, n_trials: int, sampler: str) -> None:
    from tinycompress.auto._study import SAMPLERS

    if objective not in OBJECTIVES:
        raise ArgumentError(f"expected objective in {list(OBJECTIVES)}. Received: objective={objective!r}.")
    if not isinstance(budget, Budget):
        raise ArgumentError(f"expected budget as a tinycompress.auto.Budget. Received: {type(budget).__name__}.")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ArgumentError(f"expected n_trials as an int >= 1. Received: n_trials={n_trials!r}.")
    if sampler not in SAMPLERS:
        raise ArgumentError(f"expected sampler in {SAMPLERS}. Received: sampler={sampler!r}.")


def _records(study) -> list[TrialRecord]:
    """The study's trials that started (not those still queued: a search stopped by its
    timeout may leave queued trials, which a resumed search runs)."""
    from optuna.trial import TrialState

    return [TrialRecord.of(t) for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING]


def _progress_callback(progress, n_trials: int, objective: str, timeout_s: float | None):
    start, ran = time.monotonic(), [0]

    def callback(study, frozen) -> None:
        from tinycompress.auto._study import finished

        ran[0] += 1
        elapsed = time.monotonic() - start
        done = finished(study)
        remaining = elapsed / ran[0] * max(0, n_trials - done)
        if timeout_s is not None:
            remaining = min(remaining, max(0.0, timeout_s - elapsed))
        records = _records(study)
        progress(SearchStatus(done, n_trials, TrialRecord.of(frozen), _choose(records, objective),
                              elapsed, remaining))

    return callback


def _no_fit_message(result: SearchResult) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in result.counts().items())
    unmet = result.unmet()
    lines = [f"no trial met the budget ({result.budget.describe()}) in {len(result.trials)} trials "
             f"({counts})."]
    if unmet:
        lines.append(f"No measured trial met: {', '.join(unmet)}.")
    for t in result.closest():
        lines.append(f"  closest: trial {t.number}: {'; '.join(t.violations)} "
                     f"(accuracy {t.metrics.get('accuracy', float('nan')):.4f})")
    lines.append("Relax the budget, widen the search space (techniques, ranges) or run more trials.")
    return "\n".join(lines)


def search(
    model,
    train_data: Any,
    val_data: Any,
    budget: Budget,
    *,
    objective: str = "accuracy",
    space: SearchSpace | None = None,
    n_trials: int = DEFAULT_TRIALS,
    timeout_s: float | None = None,
    epochs: int | None = None,
    device: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    out: str | os.PathLike | None = None,
    target: str | None = None,
    name: str = "model",
    seed: int = 0,
    sampler: str = "tpe",
    final_epochs: int | None = None,
    final_candidates: int = 3,
    progress: Callable[[SearchStatus], None] | None = None,
) -> SearchResult:
    """Search combinations of techniques for the best model within ``budget``.

    Args:
        model: the trained Keras classifier (Sequential or Functional; or a path
            `tinycompress.load_model` reads); not modified.
        train_data: ``(x, y)`` arrays for fine-tuning and calibration (integer or one-hot labels).
        val_data: ``(x, y)`` arrays; every trial's TFLM accuracy is measured on them.
        budget: a `Budget`.
        objective: ``"accuracy"`` (most accurate within the budget) or ``"flash"``,
            ``"latency"``, ``"energy"`` (cheapest with accuracy >= ``budget.min_accuracy``,
            AdaDeep's form). Default "accuracy".
        space: a `SearchSpace` to restrict techniques and ranges. Default None: all.
        n_trials: trials of the study in total (earlier runs and other workers
            count; workers check before each trial, so several workers may end
            up to one trial each past it; trials repeating an earlier parameter
            set reuse its measurements). Default 40.
        timeout_s: stop starting trials after this many seconds. Default None.
        epochs: most fine-tuning epochs of a trial (sets ``space.epochs`` to
            ``(1, epochs)``). Default None: the space's.
        device: board name for the cost model (latency, energy). Default None.
        storage: Optuna storage URL (e.g. PostgreSQL for several workers).
            Default None: ``out/study.db`` (in memory without ``out``).
        study_name: the study in ``storage``; workers sharing it share trials.
            Default None: "tinycompress-auto".
        resume: continue the search stored in ``out`` (trial numbers continue,
            finished trials are not run again). Default False.
        out: folder for the study, per-trial models and the output (see
            `write_search`). Default None: nothing written.
        target: firmware project of the exported winner. Default None.
        name: model name for C identifiers. Default "model".
        seed: seed of the sampler and of every trial's training (with ``storage``
            the sampler draws its seed from the OS, so workers sample differently). Default 0.
        sampler: ``"tpe"`` (constrained TPE, starting from the hand-made recipe families
            of `SearchSpace.starts` after the baseline) or ``"random"`` (every trial after
            the baseline sampled at random). Default "tpe".
        final_epochs: fine-tune the recipes of the best ``final_candidates``
            trials once more from the original model with this many
            structure-stage epochs (later stages half as many, as in every
            recipe): trials train briefly to rank recipes, the returned model may
            train longer. Each build is measured like a trial's; of those that
            meet the budget, the best for the objective (on the validation data;
            for accuracy, of those within one standard error of the most accurate,
            the one with the lowest cross-entropy) is returned with its recipe, the
            chosen trial's own model only when none does. ``result.final``
            records every candidate. Default None: the chosen trial's model.
        final_candidates: trials fine-tuned again with ``final_epochs``: the
            best, then the best of each other combination of techniques and build
            options, then the next best (distinct recipes). Default 3.
        progress: called with a `SearchStatus` after every trial. Default None.

    Returns:
        A `SearchResult` whose ``best`` meets the budget, measured on the very
        build it returns (built and measured again when the trial ran in another
        process).

    Raises:
        NoFeasibleModelError: no trial met the budget; the message names the
            unmet limits and the closest trials, ``error.result`` holds them
            all (and ``out`` has the report).
        BudgetError: a latency/energy budget or objective without a device or cost model.
        AutoError: bad space, storage, or an existing search in ``out`` without ``resume``.
        ArgumentError, DataError: bad arguments or data.

    Example:
        >>> import keras, numpy as np
        >>> from tinycompress.auto import Budget, SearchSpace
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.default_rng(0).normal(size=(96, 8)).astype("float32"); y = np.argmax(x[:, :3], 1)
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
        ...                       keras.layers.Dense(3)])
        >>> r = search(m, (x, y), (x, y), Budget(flash_bytes="4KB"), n_trials=1,
        ...            space=SearchSpace(techniques=["pruning"], channel_sparsity=(0.5, 0.5), epochs=(1, 1)))
        >>> r.fits, len(r.model) <= 4096, r.recipe.channel_sparsity, len(r.trials)
        (True, True, 0.5, 1)
    """
    from tinycompress.auto._study import open_study
    from tinycompress.auto.output import check_search_dir, claim_search_dir, write_search
    from tinycompress.build import check_target
    from tinycompress.loading import load_model

    _check(objective, budget, n_trials, sampler)
    if final_epochs is not None and (isinstance(final_epochs, bool) or not isinstance(final_epochs, int)
                                     or final_epochs < 1):
        raise ArgumentError(f"expected final_epochs as an int >= 1 or None. Received: final_epochs={final_epochs!r}.")
    if isinstance(final_candidates, bool) or not isinstance(final_candidates, int) or final_candidates < 1:
        raise ArgumentError(f"expected final_candidates as an int >= 1. Received: "
                            f"final_candidates={final_candidates!r}.")
    check_target(target)
    metric = OBJECTIVES[objective][0]
    estimate = cost_model(device, budget.needs_device or metric in ("latency_ms", "energy_uj"))
    keras_model = _keras_model(model, load_model)
    train = check_labelled(train_data, "train_data", keras_model)
    val = check_labelled(val_data, "val_data", keras_model)
    out_dir = None if out is None else check_search_dir(out)
    space = _fitted_space(keras_model, space or SearchSpace(), epochs, val)
    settings = {"budget": budget.get_config(), "objective": objective, "space": space.get_config(),
                "device": device, "seed": seed, "sampler": sampler}
    created = None if out_dir is None else claim_search_dir(out_dir)
    try:
        study, url = open_study(storage=storage, study_name=study_name, out=out_dir, resume=resume,
                                sampler=sampler, seed=seed, direction="maximize" if OBJECTIVES[objective][1]
                                else "minimize", floor=budget.min_accuracy, settings=settings,
                                first=_first_trials(space, sampler, n_trials))
    except AutoError:
        if created is not None:  # nothing was searched: leave no folder behind
            shutil.rmtree(created, ignore_errors=True)
        raise
    run = Objective(keras_model, space, train, val, budget, objective, seed=seed, estimate=estimate,
                     device=device, artifacts=None if out_dir is None else out_dir / "trials")
    _optimize(study, run, n_trials, timeout_s, objective, progress)
    records = _records(study)
    result = SearchResult(budget, objective, records, pareto=pareto_front(records),
                          study_name=study.study_name, storage=url, device=device,
                          sensitivity=space.sensitivity, val_samples=len(val[1]))
    _final(result, run, target=target, name=name, final_epochs=final_epochs,
           final_candidates=final_candidates)
    if out_dir is not None:
        write_search(result, out_dir, target=target)
    if not result.fits:
        raise NoFeasibleModelError(_no_fit_message(result), result)
    return result


def _keras_model(model, load_model):
    if hasattr(model, "layers"):
        return model
    loaded = load_model(model)
    if loaded.source != "keras":
        raise AutoError(f"the search fine-tunes Keras 3 models; {str(model)!r} loaded as "
                        f"{loaded.source}. Save the model with Keras 3 (model.save('m.keras')).")
    return loaded.model


def _fitted_space(model, space: SearchSpace, epochs: int | None, val) -> SearchSpace:
    from dataclasses import replace

    from tinycompress.auto.recipe import ends_in_softmax
    from tinycompress.layer_pruning.candidates import find_candidates

    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ArgumentError(f"expected epochs as an int >= 1. Received: epochs={epochs!r}.")
        space = replace(space, epochs=(1, epochs))
    sensitivity = None
    if "pruning" in space.techniques and space.sensitivity is None and space.channel_sparsity[1] > 0:
        from tinycompress.auto.sensitivity import channel_sensitivity

        sensitivity = channel_sensitivity(model, val)
        _LOG.info("channel-pruning sensitivity (accuracy drop at 50%% of a layer's channels): %s",
                  sensitivity)
    return space.fit_to(model, candidates=len(find_candidates(model, ("residual", "layer"))),
                        logits=not ends_in_softmax(model), sensitivity=sensitivity)


def _first_trials(space: SearchSpace, sampler: str, n_trials: int) -> list[dict]:
    """Parameters a new study runs first: the space's baseline, then, with TPE, the
    space's starts (`SearchSpace.starts`), as many as ``n_trials`` leaves room for; random
    search samples every other trial."""
    return [space.baseline(), *(space.starts() if sampler == "tpe" else [])][:n_trials]


def _optimize(study, run: Objective, n_trials: int, timeout_s: float | None, objective: str,
              progress) -> None:
    """Run trials until the study has ``n_trials`` finished ones (the queued first trials,
    `_first_trials`, then sampled ones)."""
    from tinycompress.auto._study import finished

    if finished(study) >= n_trials:
        _LOG.info("study %s already has %d finished trials (n_trials=%d): nothing to run",
                  study.study_name, finished(study), n_trials)
        return

    def stop_when_done(study, _trial) -> None:
        if finished(study) >= n_trials:
            study.stop()

    callbacks = [stop_when_done]
    if progress is not None:
        callbacks.append(_progress_callback(progress, n_trials, objective, timeout_s))
    study.optimize(run, n_trials=None, timeout=timeout_s, catch=(Exception,), callbacks=callbacks,
                   gc_after_trial=True)


def _final(result: SearchResult, run: Objective, *, target, name, final_epochs: int | None,
           final_candidates: int) -> None:
    """Take the chosen trial's build (built and measured again when another process ran it),
    re-check it against the budget, fine-tune the best candidates again when asked
    (`_fine_tune_again`), and render the firmware of the model returned; when a model built
    again no longer fits (a figure moved), the next feasible trial is tried."""
    from tinycompress.build import render_firmware

    while (best := _choose(result.trials, result.objective)) is not None:
        built, metrics = run.built(best, name=name)
        if metrics["flash_bytes"] != best.metrics.get("flash_bytes"):
            _LOG.warning("trial %d measured %s B of flash in the search and %d B when built again",
                         best.number, best.metrics.get("flash_bytes"), metrics["flash_bytes"])
        violations = result.budget.violations(metrics)
        if not violations:
            recipe = Recipe.from_config(best.recipe)
            if final_epochs is not None:
                best, recipe, built, metrics = _fine_tune_again(
                    result, run, (best, recipe, built, metrics), final_epochs, final_candidates, name)
            if target is not None:
                built.firmware, built.target = render_firmware(built, target), target
            result.best, result.recipe, result.build = best, recipe, built
            best.metrics = metrics  # the figures of the build returned
            return
        _LOG.warning("trial %d no longer meets the budget when built again (%s); not returned",
                     best.number, "; ".join(violations))
        best.feasible, best.violations = False, violations


def _kind(trial: TrialRecord) -> tuple:
    """What a trial's recipe combines: its techniques and build options, not their settings."""
    recipe = Recipe.from_config(trial.recipe)
    return tuple(recipe.techniques()), recipe.mode, recipe.encode


def _candidates(result: SearchResult, count: int) -> list[TrialRecord]:
    """The best feasible trials with distinct recipes, ``count`` at most, best first (`_ranked`;
    the first is `_choose`'s). After the best, the best trial of each other kind of recipe
    (`_kind`) is taken before a second trial of a kind already taken: trials rank recipes
    after brief training, and the samplers crowd near the best, so the finalists would
    otherwise differ only in settings that screening may have levelled."""
    distinct: list[TrialRecord] = []
    for trial in _ranked(result.trials, result.objective):
        if all(trial.recipe != d.recipe for d in distinct):
            distinct.append(trial)
    kinds, first, then = set(), [], []
    for trial in distinct:
        (then if _kind(trial) in kinds else first).append(trial)
        kinds.add(_kind(trial))
    return sorted((first + then)[:count], key=distinct.index)


def _trains_longer(recipe: Recipe, epochs: int) -> bool:
    """Whether fine-tuning ``recipe`` again with ``epochs`` makes another model than its trial's."""
    return 0 < recipe.epochs < epochs


def _pick(options: list[tuple], result: SearchResult) -> tuple[tuple, float | None]:
    """The option (``(trial, recipe, build, metrics)``) to return, and the accuracy margin
    it was chosen within (None: the best by `_rank`, or the only option). For the accuracy
    objective with a known validation size: of the options within one standard error of the best
    validation accuracy (`accuracy_error`), the one with the lowest validation cross-entropy,
    since the validation data cannot rank those by accuracy (on 1,600 MNIST images one
    standard error is 6 images) and the cross-entropy, averaged over every sample's
    probability, moves less between draws. In 16 of 34 LeNet-5 searches on MNIST this
    returned another candidate than the most accurate, which tested 0.19 ± 0.12 points
    better on average (9 better, 6 worse; a 64 KB search had returned a 2-bit clustered
    model one image ahead on validation, 97.2% on test, in place of one at 98.55%).
    Otherwise, and among equals, the best by `_rank` (the first of equals)."""
    by_rank = lambda option: _rank(option[3], result.objective)  # noqa: E731
    if result.objective != "accuracy" or not result.val_samples or len(options) == 1:
        return max(options, key=by_rank), None
    top = max(option[3]["accuracy"] for option in options)
    margin = accuracy_error(top, result.val_samples)
    close = [option for option in options if option[3]["accuracy"] >= top - margin]
    return max(close, key=lambda option: (_surer(option[3]), *by_rank(option))), margin


def _fine_tune_again(result: SearchResult, run: Objective, chosen: tuple, epochs: int, count: int,
                     name: str) -> tuple:
    """``(trial, recipe, build, metrics)`` to return, from ``chosen`` (the same four of the
    chosen trial). The recipes of the chosen trial and of the next best trials (``count`` in
    all, `_candidates`) are fine-tuned again with ``epochs`` structure-stage epochs and
    measured; of those that meet the budget `_pick`'s is returned (on a tie, the better
    trial). Trials rank recipes after brief training; the order may change when they
    all train longer. The chosen trial's own model competes only when its recipe trains as long
    already, and is returned when no candidate meets the budget: its figures were the best of
    every trial's on the same validation data, so the luck of that draw inflates them against
    the candidates' fresh measurements (on MNIST at 32 KB its 3-epoch model outscored its own
    16-epoch fine-tune by 3-4 of 1,600 validation images and fell 0.2 points below it on the
    test split). ``result.final`` describes the model returned and lists every candidate (with
    why one was not made: a recipe that trains nothing or as long already, or a failure)."""
    from dataclasses import replace

    options, rows = [], []
    for candidate in _candidates(result, count):
        own = Recipe.from_config(candidate.recipe)
        row: dict[str, Any] = {"trial": candidate.number, "trial_epochs": own.epochs,
                               "trial_accuracy": candidate.metrics["accuracy"], "kept": False}
        rows.append(row)
        if not _trains_longer(own, epochs):
            row["skipped"] = f"the recipe trains {own.epochs} epochs; final_epochs={epochs} adds none"
            continue
        longer = replace(own, epochs=epochs)
        try:
            longer_built, longer_metrics = run.make(longer, name=name)
        except Exception as e:  # noqa: BLE001 - the other candidates and the trial's model stand
            row["failure"] = f"{type(e).__name__}: {e}"
            _LOG.warning("fine-tuning trial %d's recipe again failed (%s)", candidate.number, row["failure"])
            continue
        row.update(accuracy=longer_metrics["accuracy"], loss=longer_metrics.get("loss"),
                   flash_bytes=longer_metrics["flash_bytes"],
                   violations=result.budget.violations(longer_metrics))
        _LOG.info("trial %d's recipe fine-tuned again for %d epochs: accuracy %.4f (trial: %.4f)",
                  candidate.number, epochs, longer_metrics["accuracy"], candidate.metrics["accuracy"])
        if not row["violations"]:
            options.append((candidate, longer, longer_built, longer_metrics))
    if not options or not _trains_longer(chosen[1], epochs):
        options.insert(0, chosen)  # the best trial: _pick keeps the first of equals
    picked, margin = _pick(options, result)
    returned = next(row for row in rows if row["trial"] == picked[0].number)
    returned["kept"] = picked is not chosen
    result.final = {"epochs": epochs, **returned, "candidates": rows, "margin": margin}
    return picked
