"""`bench/fuzz.py`: outcomes are classified right, and a CI-sized run is clean."""

from __future__ import annotations

import importlib.util
import os
import signal
import time
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("tinycompress_bench_fuzz", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _behaviour(target, data, work):
    from tflite_export.errors import ModelFormatError

    if target == "error":
        raise ModelFormatError("ours")
    if target == "uncaught":
        return {}["missing"]
    if target == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if target == "hang":
        time.sleep(60)
    return target


@pytest.mark.parametrize("target", ["ok", "partial", "error", "uncaught", "crash", "hang"])
def test_each_outcome_is_classified(fuzz, target):
    start = time.monotonic()
    result = fuzz.run_one(target, b"", limit=1.0, call=_behaviour)
    assert result["outcome"] == target
    assert time.monotonic() - start < 5
    if target == "uncaught":
        assert result["type"] == "KeyError" and result["where"].startswith("test_fuzz.py:")


def test_mutants_differ_from_their_seed_and_are_reproducible(fuzz):
    import numpy as np

    seeds = fuzz.seed_models()
    assert len(seeds) >= 2
    parsed = fuzz.fb.unpack(seeds[0])
    a = [fuzz.mutate(seeds[0], parsed, np.random.default_rng(5)) for _ in range(1)]
    b = [fuzz.mutate(seeds[0], parsed, np.random.default_rng(5)) for _ in range(1)]
    assert a == b
    rng = np.random.default_rng(6)
    mutants = [fuzz.mutate(seeds[0], parsed, rng)[0] for _ in range(40)]
    assert sum(m != seeds[0] for m in mutants) >= 35


@pytest.mark.slow
def test_a_ci_sized_run_finds_nothing(fuzz, tmp_path, monkeypatch):
    # Every target on >= 80 mutants: zero uncaught exceptions, caller crashes,
    # hangs past the limit and partial outputs; native crashes are counted too.
    monkeypatch.setenv("TINYCOMPRESS_TIMEOUT_S", "20")

    summary = fuzz.fuzz(fuzz.seed_models(), 560, seed=13, limit=60.0, findings=tmp_path)
    assert summary["findings"] == []
    for target, counts in summary["counts"].items():
        assert sum(counts.values()) == 80, target
        assert counts["ok"] + counts["error"] == 80, (target, counts)
    native = {t: {k: n for k, n in e.items() if k in fuzz._NATIVE} for t, e in summary["errors"].items()}
    assert not any(native.values()), native
