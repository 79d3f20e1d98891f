"""The Optuna side of the search: storage, study, sampler, pruner, trial records.

- Storage: a SQLite file ``study.db`` in the output folder by default (one
  worker; an interrupted search resumes from it), or any Optuna storage URL
  (PostgreSQL for several workers; trials of a worker that died are failed by
  Optuna's heartbeat and re-run once).
- Sampler: TPE, constrained by the budget (each trial sets its relative
  excesses with ``Trial.set_constraint``; a trial that was pruned or failed
  counts as infeasible; its first five trials are the baseline, the space's
  starts and random draws), or random search with the same pipeline (the
  benchmark's baseline).
- Pruner: `FeasiblePruner`, hopeless trials only: far below the median of the
  *feasible* trials (a median over every trial would prune the small models the
  budget needs, since the uncompressed ones are the most accurate), or, with an
  accuracy floor, far below the floor.

Optuna's ``Trial.report``/pruning is single-objective only, so the study
optimizes one value (accuracy with a validation cross-entropy tie-break,
`tinycompress.auto._objective.study_value`, or the cost named by the
objective) under the budget constraints; the Pareto front over accuracy, flash, arena and latency
is computed from every measured trial (`tinycompress.auto.result.pareto_front`).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from tinycompress.errors import AutoError

__all__ = ["FeasiblePruner", "open_study", "finished", "SAMPLERS", "CONFIG_ATTR"]

_LOG = logging.getLogger(__name__)

#: Samplers `search` accepts.
SAMPLERS = ("tpe", "random")
#: Study user attribute that holds the search settings every worker must share.
CONFIG_ATTR = "tinycompress_auto"
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
#: Study user attribute listing the interrupted trials whose parameters were queued again.
_QUEUED_ATTR = "tinycompress_requeued"
#: Seconds between heartbeats of a running trial (storages other than the default file).
HEARTBEAT_S = 30


def finished(study: optuna.Study) -> int:
    """Trials of the study that ran to an end (complete, pruned or failed), not counting
    trials failed because their process was interrupted (those are run again)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=_FINISHED)
               if not t.user_attrs.get("interrupted"))


class FeasiblePruner(optuna.pruners.BasePruner):
    """Prune a hopeless trial: one whose float validation accuracy while fine-tuning is
    more than ``margin`` below the median of the feasible trials at the same epoch step,
    or, with ``floor``, more than ``margin`` below the accuracy floor, after ``warmup``
    steps. The margin is wide because a step is not the same point of training in every
    recipe (recipes fine-tune for different epochs, in one to four stages): at one step a
    sound recipe may trail the others by a point. Pruning at the median itself cut 10 of
    TPE's 14 sampled trials on LeNet-5 at 16 KB, most within 2 points of it, and TPE counts
    a pruned trial as infeasible.

    Args:
        floor: the budget's ``min_accuracy``, or None. Default None.
        margin: accuracy margin below the floor or the median. Default 0.05.
        startup: feasible trials needed before the median rule prunes. Default 3.
        warmup: steps (epochs) reported before any pruning. Default 1.
    """

    def __init__(self, floor: float | None = None, *, margin: float = 0.05, startup: int = 3,
                 warmup: int = 1) -> None:
        self.floor, self.margin, self.startup, self.warmup = floor, margin, startup, warmup

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step < self.warmup:
            return False
        value = trial.intermediate_values[step]
        if self.floor is not None:
            return value < self.floor - self.margin
        peers = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False,
                                                                      states=(TrialState.COMPLETE,))
                 if t.user_attrs.get("feasible") and step in t.intermediate_values]
        return len(peers) >= self.startup and value < statistics.median(peers) - self.margin


def _sampler(name: str, seed: int, shared: bool):
    """The sampler. TPE is multivariate over groups of parameters that occur together (the
    space is conditional: a technique's settings exist only when it is on), so it learns
    which settings go well together instead of each alone. On a storage several workers
    share, the sampler is seeded from the OS, not ``seed``:
    workers seeded alike would sample the same parameters, each set run once per worker. TPE
    then also treats the other workers' running trials as finished with a bad value
    (``constant_liar``), so they do not all sample near the same point."""
    seed = None if shared else seed
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # Optuna marks ``group`` experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, constant_liar=shared,
                                          multivariate=True, group=True)


def with_driver(url: str) -> str:
    """``url`` naming a PostgreSQL driver that is installed.

    A plain ``postgresql://`` URL makes SQLAlchemy 2.1 load psycopg 3; when only psycopg2
    (the ``test``/``distributed`` extras' driver) is installed, the URL names it instead.
    """
    plain = "postgresql://"
    if (url.startswith(plain) and importlib.util.find_spec("psycopg") is None
            and importlib.util.find_spec("psycopg2") is not None):
        return "postgresql+psycopg2://" + url[len(plain):]
    return url


def _storage(url: str, default: bool):
    if default:
        return optuna.storages.RDBStorage(url)
    if url.startswith(("postgresql", "mysql")):
        return _shared_rdb(with_driver(url))
    return url


def _shared_rdb(url: str, attempts: int = 5):
    """An RDB storage several workers open at once: on a fresh database they all create
    Optuna's schema, and all but one fail with "already exists"; those try again (the
    schema is there then)."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():  # Optuna marks heartbeats and their callback experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=2 * HEARTBEAT_S,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (IntegrityError, ProgrammingError) as e:
            if attempt == attempts - 1:
                raise
            _LOG.info("another worker is creating the Optuna schema (%s); trying again",
                      type(e.orig).__name__)
            time.sleep(0.5 * (attempt + 1))


def hide_password(url: str) -> str:
    """``url`` with the password of ``user:password@host`` replaced by ``***``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def _fail_interrupted(study: optuna.Study, storage) -> None:
    """Fail the trials a killed single-worker run left RUNNING, and queue the parameters of
    every interrupted trial (killed, or stopped with Ctrl-C) again, once."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        storage.set_trial_user_attr(t._trial_id, "failure", "interrupted: the search process stopped "
                                                            "during this trial; its parameters run again")
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    queued = set(study.user_attrs.get(_QUEUED_ATTR, []))
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if t.user_attrs.get("interrupted") and t.number not in queued:
            queued.add(t.number)
            if t.params:
                study.enqueue_trial(t.params, skip_if_exists=False)
            _LOG.info("trial %d was interrupted; its parameters are queued again", t.number)
    study.set_user_attr(_QUEUED_ATTR, sorted(queued))


def _settings_of(study: optuna.Study, *, wait: bool) -> dict[str, Any] | None:
    """The study's tinycompress settings; with ``wait``, a study another worker has just
    created is given a few seconds to receive them."""
    deadline = time.monotonic() + (2.5 if wait else 0.0)
    while True:
        saved = study.user_attrs.get(CONFIG_ATTR)
        if saved is not None or study.get_trials(deepcopy=False) or time.monotonic() >= deadline:
            return saved
        time.sleep(0.5)


def open_study(*, storage: str | None, study_name: str | None, out: Path | None, resume: bool,
               sampler: str, seed: int, direction: str, floor: float | None,
               settings: dict[str, Any], first: Sequence[dict[str, Any]] = ()) -> tuple[optuna.Study, str]:
    """Create, resume or join the study (see the module docs).

    Only the process that creates the study queues ``first`` and stores ``settings``:
    creating a study is atomic in every storage, while "the study has no trials yet" is
    true for every worker that starts at the same moment (each would queue the same
    trials, and each queued trial runs).

    Args:
        first: parameters of the study's first trials (the baseline and the starts).

    Returns:
        ``(study, storage URL shown to users)``.

    Raises:
        AutoError: a search already in ``out`` without ``resume``, nothing to
            resume, or a study whose settings differ from ``settings``.
    """
    default = storage is None
    name = study_name or "tinycompress-auto"
    if default and out is None:
        url = "in-memory"
    elif default:
        db = out / "study.db"
        if db.exists() and not resume:
            raise AutoError(f"{out} already holds a search ({db.name}); continue it with resume=True "
                            "(--resume) or choose another output folder.")
        if resume and not db.exists():
            raise AutoError(f"nothing to resume: {db} does not exist; start the search without resume.")
        url = f"sqlite:///{db}"
    else:
        url = storage
    try:  # opening the storage connects to it: a bad URL, driver or server fails here
        backend = None if url == "in-memory" else _storage(url, default)
        common = {"storage": backend, "study_name": name, "pruner": FeasiblePruner(floor),
                  "sampler": _sampler(sampler, seed, shared=not default)}
        try:
            study, created = optuna.create_study(direction=direction, **common), True
        except optuna.exceptions.DuplicatedStudyError:
            study, created = optuna.load_study(**common), False
    except (optuna.exceptions.OptunaError, ImportError, ValueError, SQLAlchemyError) as e:
        detail = " ".join(str(e).split("(Background on this error at")[0].split())  # one line
        raise AutoError(f"cannot open the Optuna study {name!r} in {hide_password(url)}: "
                        f"{type(e).__name__}: {detail}") from e
    if created:
        study.set_user_attr(CONFIG_ATTR, settings)
        for params in first:
            study.enqueue_trial(params)
    elif (saved := _settings_of(study, wait=not default)) is None:
        if resume and finished(study):
            raise AutoError(f"study {name!r} has trials but no tinycompress settings; it was not "
                            "made by tinycompress auto.")
        study.set_user_attr(CONFIG_ATTR, settings)
    elif saved != settings:
        differ = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise AutoError(f"study {name!r} was started with other settings ({', '.join(differ)} differ); "
                        "resume or join it with the same budget, objective, space and device, or "
                        "use another study name.")
    if default and resume:
        _fail_interrupted(study, backend)
    return study, hide_password(url)
