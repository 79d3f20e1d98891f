"""Several search processes on one Optuna storage share the trials; none is lost or run twice.

Two worker processes run `tinycompress.auto.search` against one PostgreSQL
study (the ``postgres_url`` fixture: CI's server, or a throwaway one) with a
shared total trial count. Each worker prints the number of every trial it
ran (the search's progress callback runs in the process that ran the trial),
so the test checks the workers' own accounts against the storage. A killed
single worker resumes from the default file storage in its output folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
RAN = "__ran_trial__"

WORKER = f"""
import json, sys
import keras, numpy as np
from tinycompress.auto import Budget, SearchSpace, search
from tinycompress.errors import NoFeasibleModelError

spec = json.loads(sys.argv[1])
data = np.load(spec["data"])
model = keras.saving.load_model(spec["model"])
space = SearchSpace(techniques=["pruning"], channel_sparsity=(0.0, 0.9), epochs=(1, 1))

def progress(status):
    print({RAN!r}, status.last.number, flush=True)

try:
    search(model, (data["x"], data["y"]), (data["x"], data["y"]), Budget(flash_bytes="3KB"),
           space=space, n_trials=spec["trials"], storage=spec.get("storage"),
           study_name=spec.get("study"), resume=spec.get("resume", False), out=spec["out"],
           progress=progress)
except NoFeasibleModelError:
    pass  # the budget is not what this test is about
"""


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    """A tiny trained MLP and its data, saved for the worker processes."""
    import keras

    folder = tmp_path_factory.mktemp("problem")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(192, 8)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(48, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=5, verbose=0)
    model.save(folder / "model.keras")
    np.savez(folder / "data.npz", x=x, y=y)
    return {"model": str(folder / "model.keras"), "data": str(folder / "data.npz")}


def _start(spec: dict, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], cwd=ROOT, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def _ran(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(RAN)]


def _wait(proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"worker still running after {timeout} s:\n{log.read_text()[-3000:]}")
    assert code == 0, f"worker exited with {code}:\n{log.read_text()[-3000:]}"


def test_the_postgresql_storage_serves_optuna_and_search_opens_it(postgres_url):
    """The server CI starts (or the fixture's own) takes Optuna studies through the driver
    the test extra installs, and a search opens it; fails in CI when it cannot."""
    import optuna

    from tinycompress.auto._study import open_study

    name = f"fixture-{os.getpid()}-{time.time_ns()}"
    bare = postgres_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    # the second opening joins the first one's study, as a second worker does, through a URL
    # that names no driver (psycopg2 is used when psycopg 3 is not installed)
    for url in (postgres_url, bare):
        study, shown = open_study(storage=url, study_name=name, out=None, resume=False,
                                  sampler="tpe", seed=0, direction="maximize", floor=None,
                                  settings={"budget": {"flash_bytes": 1}})
    study.optimize(lambda t: t.suggest_float("a", 0, 1), n_trials=3)
    assert len(optuna.load_study(study_name=name, storage=postgres_url).trials) == 3
    assert shown.startswith("postgresql")


def test_workers_opening_one_new_study_at_once_queue_its_first_trials_once(postgres_url):
    """Four workers open the same new study at the same moment: exactly one creates it, so
    the first trials (baseline and starts) are queued once, not once per worker (each queued
    copy would run), and every worker sees the creator's settings."""
    import threading

    from optuna.trial import TrialState

    from tinycompress.auto._study import CONFIG_ATTR, open_study

    name, settings = f"together-{os.getpid()}-{time.time_ns()}", {"budget": {"flash_bytes": 1}}
    first = [{"a": 0.0}, {"a": 0.5}]
    gate, studies, errors = threading.Barrier(4), [], []

    def worker() -> None:
        gate.wait()
        try:
            studies.append(open_study(storage=postgres_url, study_name=name, out=None, resume=False,
                                      sampler="tpe", seed=0, direction="maximize", floor=None,
                                      settings=settings, first=first)[0])
        except Exception as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(studies) == 4, errors
    trials = studies[0].get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.WAITING] * 2, "first trials queued more than once"
    assert [t.system_attrs["fixed_params"] for t in trials] == first
    assert all(s.user_attrs[CONFIG_ATTR] == settings for s in studies)


def test_an_unreachable_server_is_one_line_of_ours_without_the_password():
    """A storage URL whose server does not answer fails before any work, as one line."""
    import socket

    from tinycompress.auto._study import open_study
    from tinycompress.errors import AutoError

    with socket.socket() as s:  # a free port: nothing listens on it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(AutoError) as caught:
        open_study(storage=f"postgresql+psycopg2://me:secret@127.0.0.1:{port}/db", study_name="s", out=None,
                   resume=False, sampler="tpe", seed=0, direction="maximize", floor=None, settings={})
    message = str(caught.value)
    assert "\n" not in message and "secret" not in message and "me:***@127.0.0.1" in message
    assert "cannot open the Optuna study 's'" in message and "Connection refused" in message


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_whose_worker_died_is_failed_and_queued_again_once(postgres_url, monkeypatch):
    """A worker that stops beating (killed, machine lost) leaves its trial RUNNING; once the
    grace period has passed, the next worker to start a trial fails it and queues its
    parameters again, once only (`_study.HEARTBEAT_S` shortened to 1 s here)."""
    import optuna
    from optuna.trial import TrialState

    from tinycompress.auto import _study

    monkeypatch.setattr(_study, "HEARTBEAT_S", 1)
    study, _ = _study.open_study(storage=postgres_url, study_name=f"dead-{os.getpid()}-{time.time_ns()}",
                                 out=None, resume=False, sampler="tpe", seed=0, direction="maximize",
                                 floor=None, settings={"budget": {"flash_bytes": 1}})
    space = {"a": optuna.distributions.FloatDistribution(0, 1)}
    for attempt in range(2):  # the first run, then its one retry
        trial = study.ask(space)
        study._storage.record_heartbeat(trial._trial_id)  # what a running worker's heartbeat writes
        time.sleep(2.5)  # past the grace period of 2 heartbeats
        optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL, TrialState.FAIL]  # the retry ran (and died), no third run
    first, retry = study.get_trials(deepcopy=False)
    assert retry.params == first.params and retry.system_attrs["failed_trial"] == first.number


@pytest.mark.slow
def test_two_workers_share_one_postgresql_study(problem, postgres_url, tmp_path):
    import optuna

    trials, study = 6, f"workers-{os.getpid()}-{time.time_ns()}"
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [_start({**problem, "trials": trials, "storage": postgres_url, "study": study,
                     "out": str(tmp_path / f"out{i}")}, log) for i, log in enumerate(logs)]
    for proc, log in zip(procs, logs):
        _wait(proc, log)

    stored = optuna.load_study(study_name=study, storage=postgres_url).get_trials(deepcopy=False)
    numbers = sorted(t.number for t in stored)
    # Each worker stops once the study has `trials` finished; the other may be mid-trial then.
    assert trials <= len(stored) <= trials + 1, numbers
    assert numbers == list(range(len(stored))), "a trial number is missing or repeated"
    for t in stored:
        assert t.state.name in ("COMPLETE", "PRUNED", "FAIL"), (t.number, t.state)
        if t.state.name == "FAIL":
            assert t.user_attrs.get("failure"), f"trial {t.number} failed without a recorded reason"
        else:
            assert t.user_attrs["recipe"]["channel_sparsity"] == pytest.approx(
                t.params["channel_sparsity"]), "the trial ran other parameters than it stored"

    ran = [_ran(log) for log in logs]
    assert all(ran), f"a worker ran no trial: {ran}"  # shared, not one worker doing everything
    assert not set(ran[0]) & set(ran[1]), f"trials run by both workers: {ran}"
    assert sorted(ran[0] + ran[1]) == numbers, f"workers' accounts {ran} != storage {numbers}"
    # Workers sample independently: alike-seeded samplers would run the same sets one by one.
    params = {t.number: t.params for t in stored}
    assert [params[n] for n in ran[0][:2]] != [params[n] for n in ran[1][:2]], params


@pytest.mark.slow
def test_a_killed_search_resumes_from_its_file_storage(problem, tmp_path):
    import optuna

    trials, out, log = 5, tmp_path / "out", tmp_path / "first.log"
    proc = _start({**problem, "trials": trials, "out": str(out)}, log)
    deadline = time.monotonic() + 240
    while len(_ran(log)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # the next trial is running now (a trial takes several seconds)
    proc.send_signal(signal.SIGKILL)  # mid-search: no clean-up, as when a machine goes down
    proc.wait()
    done_before = _ran(log)
    assert len(done_before) >= 2, f"no trial finished before the kill:\n{log.read_text()[-3000:]}"

    second = tmp_path / "second.log"
    _wait(_start({**problem, "trials": trials, "out": str(out), "resume": True}, second), second)

    stored = optuna.load_study(study_name="tinycompress-auto",
                               storage=f"sqlite:///{out / 'study.db'}").get_trials(deepcopy=False)
    by_number = {t.number: t for t in stored}
    assert sorted(by_number) == list(range(len(stored)))
    interrupted = [t for t in stored if t.user_attrs.get("interrupted")]
    assert len(interrupted) == 1, "the trial running at the kill is not marked interrupted"
    counted = [t for t in stored if not t.user_attrs.get("interrupted")]
    assert len(counted) == trials, "the resumed search ran more or fewer trials than asked"
    for t in counted:
        assert t.state.name in ("COMPLETE", "PRUNED", "FAIL"), (t.number, t.state)
    for number in done_before:  # finished before the kill: kept, not run again
        assert number not in _ran(second) and not by_number[number].user_attrs.get("interrupted")
    for t in interrupted:  # killed mid-trial: failed with its reason, its parameters run again
        assert t.state.name == "FAIL" and "interrupted" in t.user_attrs["failure"]
        again = [o for o in counted if o.number > t.number and o.params == t.params]
        assert again, f"interrupted trial {t.number}'s parameters were not run again"
    assert (out / "trials.json").is_file()
