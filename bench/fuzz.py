"""Fuzz the bytes side with structure-aware mutants of real `.tflite` models.

Each mutant is made from a seed model (the models in ``tflite_export/data`` and
``tests/tflite_export/data``, plus any path given) by raw edits (bit flips,
truncation, overwritten 32-bit integers) or schema-aware edits through the
flatbuffer object API (tensor indices, shapes, ranks, types, buffers,
quantization scales, zero points and axes, op codes relabelled, options,
metadata, buffer data, schema version, operand lists). Each mutant goes to one
target, in turn: `validate`, `inspect`, `run_tflm`, `measure_arena`, `slim`,
`emit_c_sources` and the CLI (``tinycompress inspect --json``).

Every call runs in a forked child with a time limit; the outcome is one of

* ``ok``: returned normally (and wrote what it promised);
* ``error``: raised one of our errors (`TinyCompressError`; CLI: exit 2 with a message);
* ``uncaught``: raised anything else (CLI: a traceback);
* ``crash``: the calling process died (signal, or exit without a result);
* ``hang``: still running at the limit (killed with everything it started);
* ``partial``: an error left output files behind, or success left them missing.

Findings (every outcome but ``ok`` and ``error``) are deduplicated by target,
outcome and where they happened (exception type and innermost frame, or the
signal), and each is saved once as ``<id>.tflite`` plus ``<id>.json`` (target,
outcome, message, mutation, traceback) in ``--findings``.

Our errors are also counted by class (``errors``); ``RuntimeCheckError:crashed``
and ``RuntimeCheckError:timed out`` mark models that passed `validate` but made
the native worker die or hang (contained, but such a model must not reach a
device: `validate` should refuse it); those mutants are saved under
``<findings>/native``.

Run: nice -n 10 python bench/fuzz.py --mutants 10000 [--findings DIR] [seed.tflite ...]
Prints one JSON line: mutants, seconds, per target the count per outcome, our
errors by class and the seconds spent, and the keys of the findings.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

from _fuzz_mutations import mutate  # noqa: E402
from tflite_export import _flatbuffer as fb  # noqa: E402

OUTCOMES = ("ok", "error", "uncaught", "crash", "hang", "partial")
TARGETS = ("validate", "inspect", "run_tflm", "measure_arena", "slim", "emit_c_sources", "cli")
SEED_DIRS = (ROOT / "tflite_export" / "data", ROOT / "tests" / "tflite_export" / "data")


def seed_models(extra: list[str] = ()) -> list[bytes]:
    """The bundled and test models, then any extra paths."""
    paths = sorted(p for d in SEED_DIRS for p in d.glob("*.tflite")) + [Path(e) for e in extra]
    return [p.read_bytes() for p in paths]


# ---- targets, each run in a forked child ---------------------------------------------

def _call(target: str, data: bytes, work: Path) -> str:
    """Run one target in this (child) process; return "ok" or "partial"."""
    import tflite_export

    if target == "validate":
        tflite_export.validate(data)
    elif target == "inspect":
        tflite_export.inspect(data, measure=False)
    elif target == "run_tflm":
        tflite_export.validate(data)
        xs = [np.full(tuple(max(1, d) for d in io.shape[1:]), io.zero_point, io.dtype)[None]
              for io in tflite_export.input_details(data)]
        tflite_export.run_tflm(data, xs if len(xs) != 1 else xs[0])
    elif target == "measure_arena":
        tflite_export.measure_arena(data)
    elif target == "slim":
        tflite_export.validate(tflite_export.slim(data).model)
    elif target == "emit_c_sources":
        out = work / "c"
        try:
            paths = tflite_export.emit_c_sources(data, out, name="fuzz", arena_size=4096)
        except BaseException:
            if out.exists() and any(out.iterdir()):
                return "partial"
            raise
        if len(paths) != 4 or not all(p.is_file() and p.stat().st_size for p in paths):
            return "partial"
    elif target == "cli":
        return _call_cli(data, work)
    else:
        raise SystemExit(f"unknown target {target!r}")
    return "ok"


def _call_cli(data: bytes, work: Path) -> str:
    from tinycompress.cli import main

    model, report = work / "m.tflite", work / "report.json"
    model.write_bytes(data)
    code = main(["inspect", str(model), "--no-arena", "--json", str(report)])
    if code == 0:
        return "ok" if report.is_file() and report.stat().st_size else "partial"
    if report.exists():
        return "partial"
    from tflite_export.errors import TinyCompressError

    raise TinyCompressError(f"exit {code}")


def _child(target: str, data: bytes, work: Path, fd: int, call) -> None:
    os.setpgid(0, 0)
    faulthandler.disable()  # a crash is an outcome here; pytest's handler would print it
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from tflite_export.errors import TinyCompressError

    try:
        result = {"outcome": call(target, data, work)}
    except TinyCompressError as e:
        result = {"outcome": "error", "type": type(e).__name__, "message": str(e)[:300]}
    except BaseException as e:  # noqa: BLE001 - classifying every escape is the point
        frames = traceback.extract_tb(e.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        result = {"outcome": "uncaught", "type": type(e).__name__, "where": where,
                  "message": str(e)[:300], "traceback": traceback.format_exc()[-3000:]}
    os.write(fd, json.dumps(result).encode())
    os._exit(0)


def _reap(pid: int, deadline: float) -> int | None:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def _kill(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def run_one(target: str, data: bytes, limit: float, call=None) -> dict:
    """Call ``target`` on ``data`` in a forked child with a time limit; classify it.

    ``call(target, data, workdir)`` runs the target and returns ``"ok"`` or
    ``"partial"`` (default: the targets above).
    """
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _child(target, data, Path(tmp), w, call or _call)
            finally:
                os._exit(70)
        os.close(w)
        chunks, deadline = [], time.monotonic() + limit
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(r, 65536) if ready else b""
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        status = _reap(pid, deadline + 1.0)
        _kill(pid)  # the call's process group: anything it left running
        if status is None:
            os.waitpid(pid, 0)
            return {"outcome": "hang", "where": f"over {limit:.0f} s"}
    if os.WIFSIGNALED(status):
        return {"outcome": "crash", "where": f"signal {os.WTERMSIG(status)}"}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"outcome": "crash", "where": f"exit {os.WEXITSTATUS(status)} without a result"}


#: Our errors that mean a model passed `validate` but the native worker died or hung.
_NATIVE = ("RuntimeCheckError:crashed", "RuntimeCheckError:timed out")


def _error_kind(result: dict) -> str:
    kind, message = result.get("type", "?"), result.get("message", "")
    if kind == "RuntimeCheckError":
        if "crashed with signal" in message:
            return "RuntimeCheckError:crashed"
        if "did not finish within" in message:
            return "RuntimeCheckError:timed out"
    return kind


class ForkServer:
    """A child that imports a heavy module once and runs `run_one` calls from there.

    Forking a process that has TensorFlow loaded costs about 0.1 s, so the CLI
    target (whose package imports Keras) gets its own server and every other
    target forks from the light main process.
    """

    def __init__(self, preload: str):
        req_r, self._req = os.pipe()
        self._res, res_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._req)
            os.close(self._res)
            self._serve(preload, req_r, res_w)
        os.close(req_r)
        os.close(res_w)

    @staticmethod
    def _serve(preload: str, req_r: int, res_w: int) -> None:
        __import__(preload)
        with os.fdopen(req_r, "rb") as requests, os.fdopen(res_w, "wb") as results:
            while header := requests.read(8):
                job = json.loads(requests.read(int.from_bytes(header, "little")))
                result = run_one(job["target"], bytes.fromhex(job["data"]), job["limit"])
                out = json.dumps(result).encode()
                results.write(len(out).to_bytes(8, "little") + out)
                results.flush()
        os._exit(0)

    def run(self, target: str, data: bytes, limit: float) -> dict:
        """`run_one` in the server; blocks until it answers."""
        job = json.dumps({"target": target, "data": data.hex(), "limit": limit}).encode()
        os.write(self._req, len(job).to_bytes(8, "little"))
        view = memoryview(job)
        while view:
            view = view[os.write(self._req, view):]
        size = int.from_bytes(self._read(8), "little")
        return json.loads(self._read(size))

    def _read(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(self._res, n)
            if not chunk:
                raise RuntimeError("the fork server died")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        os.close(self._req)
        os.close(self._res)
        os.waitpid(self.pid, 0)


def _finding_key(target: str, result: dict) -> str:
    where = result.get("where") or result.get("type", "")
    return f"{target}|{result['outcome']}|{result.get('type', '')}|{where}"


def fuzz(seeds: list[bytes], mutants: int, *, seed: int = 0, limit: float = 60.0,
         targets: tuple[str, ...] = TARGETS, findings: Path | None = None) -> dict:
    """Run ``mutants`` mutants round-robin over ``targets``; return the summary.

    Returns:
        ``{"mutants", "seconds", "counts": {target: {outcome: n}}, "findings": [...]}``,
        each finding a dict with the key, target, outcome, message and mutation.
    """
    rng = np.random.default_rng(seed)
    parsed = [fb.unpack(s) for s in seeds]
    counts = {t: dict.fromkeys(OUTCOMES, 0) for t in targets}
    errors: dict[str, dict[str, int]] = {t: {} for t in targets}
    seconds = dict.fromkeys(targets, 0.0)
    native: dict[str, tuple[bytes, str]] = {}
    found: dict[str, dict] = {}
    cli = ForkServer("tinycompress.cli") if "cli" in targets else None
    start = time.monotonic()
    for n in range(mutants):
        k = int(rng.integers(len(seeds)))
        data, what = mutate(seeds[k], parsed[k], rng)
        target = targets[n % len(targets)]
        began = time.monotonic()
        result = cli.run(target, data, limit) if target == "cli" else run_one(target, data, limit)
        seconds[target] += time.monotonic() - began
        counts[target][result["outcome"]] += 1
        if result["outcome"] == "error":
            kind = _error_kind(result)
            errors[target][kind] = errors[target].get(kind, 0) + 1
            if kind in _NATIVE:
                native.setdefault(f"{target}|{kind}", (data, what))
        if result["outcome"] in ("ok", "error"):
            continue
        key = _finding_key(target, result)
        if key not in found:
            digest = hashlib.sha256(data).hexdigest()[:12]
            found[key] = {"id": digest, "key": key, "target": target, "mutation": what,
                          "seed": k, **result}
            if findings is not None:
                findings.mkdir(parents=True, exist_ok=True)
                (findings / f"{digest}.tflite").write_bytes(data)
                (findings / f"{digest}.json").write_text(json.dumps(found[key], indent=1))
    if cli is not None:
        cli.close()
    if findings is not None:
        for key, (data, what) in native.items():
            digest = hashlib.sha256(data).hexdigest()[:12]
            (findings / "native").mkdir(parents=True, exist_ok=True)
            (findings / "native" / f"{digest}.tflite").write_bytes(data)
            (findings / "native" / f"{digest}.json").write_text(json.dumps({"key": key, "mutation": what}))
    return {"mutants": mutants, "seconds": round(time.monotonic() - start, 1),
            "counts": counts, "errors": errors,
            "target_seconds": {t: round(v, 1) for t, v in seconds.items()},
            "findings": list(found.values())}


def main(argv: list[str] | None = None) -> int:
    """Command line: print one JSON line of counts per target and outcome."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seeds", nargs="*", help="extra .tflite seed models")
    parser.add_argument("--mutants", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=float, default=60.0,
                        help="seconds per call before it counts as a hang (default 60)")
    parser.add_argument("--worker-limit", type=float, default=20.0,
                        help="TINYCOMPRESS_TIMEOUT_S for the native workers (default 20)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--findings", type=Path, default=None, help="directory for reproducers")
    args = parser.parse_args(argv)
    os.environ["TINYCOMPRESS_TIMEOUT_S"] = str(args.worker_limit)
    targets = tuple(args.targets.split(","))
    summary = fuzz(seed_models(args.seeds), args.mutants, seed=args.seed, limit=args.limit,
                   targets=targets, findings=args.findings)
    line = {k: summary[k] for k in ("mutants", "seconds", "counts", "errors", "target_seconds")}
    line["findings"] = [f["key"] for f in summary["findings"]]
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
