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
Prints one JSON line: mutants, seconds, per target the count per outcome, findings.
"""

from __future__ import annotations

import argparse
import copy
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

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402

from tflite_export import _flatbuffer as fb  # noqa: E402

OUTCOMES = ("ok", "error", "uncaught", "crash", "hang", "partial")
TARGETS = ("validate", "inspect", "run_tflm", "measure_arena", "slim", "emit_c_sources", "cli")
SEED_DIRS = (ROOT / "tflite_export" / "data", ROOT / "tests" / "tflite_export" / "data")
_INTERESTING = (0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 0xFFFFFFFE, 1 << 20)
_BUILTINS = [v for k, v in vars(fb.schema.BuiltinOperator).items() if not k.startswith("_")]
_OPTION_NAMES = {v: k for k, v in vars(fb.schema.BuiltinOptions).items() if not k.startswith("_")}
_OPTION_TYPES = sorted(_OPTION_NAMES)


def seed_models(extra: list[str] = ()) -> list[bytes]:
    """The bundled and test models, then any extra paths."""
    paths = sorted(p for d in SEED_DIRS for p in d.glob("*.tflite")) + [Path(e) for e in extra]
    return [p.read_bytes() for p in paths]


def _repack(m) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ---- raw mutations -------------------------------------------------------------------

def _bit_flips(data: bytes, rng) -> tuple[bytes, str]:
    out = bytearray(data)
    k = int(rng.integers(1, 9))
    for _ in range(k):
        i = int(rng.integers(len(out)))
        out[i] ^= 1 << int(rng.integers(8))
    return bytes(out), f"flip {k} bits"


def _truncate(data: bytes, rng) -> tuple[bytes, str]:
    n = int(rng.integers(0, len(data)))
    return data[:n], f"truncate to {n} bytes"


def _overwrite_int(data: bytes, rng) -> tuple[bytes, str]:
    out = bytearray(data)
    pos = int(rng.integers(0, max(1, len(out) // 4))) * 4
    value = int(rng.choice(_INTERESTING)) if rng.random() < 0.7 else int(rng.integers(0, len(out) + 64))
    out[pos:pos + 4] = (value & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(out[:len(data)]), f"u32 at {pos} = {value}"


# ---- schema-aware mutations ----------------------------------------------------------

def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _index_value(rng, n: int) -> int:
    return int(rng.choice([-1, -2, n, n + 7, 2**31 - 1, int(rng.integers(0, max(n, 1)))]))


def _edit_op_index(m, rng) -> str:
    sg = m.subgraphs[0]
    op = _pick(rng, sg.operators)
    role = "inputs" if rng.random() < 0.6 else "outputs"
    idx = list(getattr(op, role))
    if not idx:
        return "no-op"
    k = int(rng.integers(len(idx)))
    idx[k] = _index_value(rng, len(sg.tensors))
    setattr(op, role, np.asarray(idx, np.int32))
    return f"op {role}[{k}] = {idx[k]}"


def _edit_operands(m, rng) -> str:
    op = _pick(rng, m.subgraphs[0].operators)
    role = "inputs" if rng.random() < 0.7 else "outputs"
    idx = list(getattr(op, role))
    if rng.random() < 0.5 and idx:
        idx.pop(int(rng.integers(len(idx))))
        what = "drop"
    else:
        idx.append(int(rng.integers(len(m.subgraphs[0].tensors))))
        what = "add"
    setattr(op, role, np.asarray(idx, np.int32))
    return f"{what} an op {role[:-1]}"


def _edit_graph_io(m, rng) -> str:
    sg = m.subgraphs[0]
    role = "inputs" if rng.random() < 0.5 else "outputs"
    idx = list(getattr(sg, role))
    idx[0] = _index_value(rng, len(sg.tensors))
    setattr(sg, role, np.asarray(idx, np.int32))
    return f"subgraph {role}[0] = {idx[0]}"


def _edit_shape(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    kind = int(rng.integers(4))
    if kind == 0 and shape:
        k = int(rng.integers(len(shape)))
        shape[k] = int(rng.choice([0, 1, 2, 3, 2**31 - 1, 2**16, -1, -5, shape[k] + 1, 2 * shape[k]]))
    elif kind == 1:
        shape = shape + [1] * int(rng.choice([1, 3, 7, 70]))
    elif kind == 2 and shape:
        shape = shape[:-1]
    else:
        shape = list(reversed(shape))
    t.shape = np.asarray(shape, np.int32)
    return f"tensor shape = {shape[:8]}{'...' if len(shape) > 8 else ''}"


def _edit_type(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    t.type = int(rng.integers(0, 26))
    return f"tensor type = {t.type}"


def _edit_buffer_index(m, rng) -> str:
    t = _pick(rng, m.subgraphs[0].tensors)
    t.buffer = int(rng.choice([0, int(rng.integers(len(m.buffers))), len(m.buffers), 2**31]))
    return f"tensor buffer = {t.buffer}"


def _edit_quantization(m, rng) -> str:
    quantized = [t for t in m.subgraphs[0].tensors if t.quantization is not None
                 and t.quantization.scale is not None and len(t.quantization.scale)]
    if not quantized:
        return "no-op"
    q = _pick(rng, quantized).quantization
    kind = int(rng.integers(4))
    if kind == 0:
        scale = np.array(q.scale, np.float32)
        scale[int(rng.integers(len(scale)))] = rng.choice([0.0, -1.0, np.nan, np.inf, 1e30, 1e-38])
        q.scale = scale
        return "quantization scale edited"
    if kind == 1:
        zp = np.array(q.zeroPoint, np.int64)
        zp[int(rng.integers(len(zp)))] = int(rng.choice([-129, 128, 255, -32769, 2**40]))
        q.zeroPoint = zp
        return "zero point edited"
    if kind == 2:
        q.quantizedDimension = int(rng.choice([-1, 1, 3, 4, 9]))
        return f"quantized_dimension = {q.quantizedDimension}"
    q.scale = np.concatenate([np.asarray(q.scale, np.float32), [0.5]])
    return "one more scale than zero points"


def _edit_opcode(m, rng) -> str:
    if rng.random() < 0.5:
        op = _pick(rng, m.subgraphs[0].operators)
        op.opcodeIndex = int(rng.choice([len(m.operatorCodes), 2**31 - 1,
                                         int(rng.integers(len(m.operatorCodes)))]))
        return f"opcode_index = {op.opcodeIndex}"
    code = _pick(rng, m.operatorCodes)
    code.builtinCode = int(_pick(rng, _BUILTINS))
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    return f"op code relabelled {fb.op_name(code)}"


def _edit_options(m, rng) -> str:
    op = _pick(rng, m.subgraphs[0].operators)
    if rng.random() < 0.3 or op.builtinOptions is None:
        op.builtinOptionsType = int(_pick(rng, _OPTION_TYPES))
        cls = getattr(fb.schema, f"{_OPTION_NAMES[op.builtinOptionsType]}T", None)
        op.builtinOptions = cls() if cls is not None else None
        return f"options type = {_OPTION_NAMES[op.builtinOptionsType]} (defaults)"
    fields = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, bool))]
    if not fields:
        return "no-op"
    field = _pick(rng, fields)
    value = int(rng.choice([0, -1, 2, 7, 255, 2**31 - 1]))
    setattr(op.builtinOptions, field, value)
    return f"option {field} = {value}"


def _edit_metadata(m, rng) -> str:
    n = len(m.subgraphs[0].tensors)
    buf = fb.schema.BufferT()
    kind = int(rng.integers(3))
    if kind == 1:
        buf.data = np.frombuffer(np.asarray([0, 1, n + 5] + [0] * n, "<i4").tobytes(), np.uint8)
    elif kind == 2:
        words = [0, 1, n] + [int(rng.choice([-1, -7, 0, 1 << 30])) for _ in range(n)]
        buf.data = np.frombuffer(np.asarray(words, "<i4").tobytes(), np.uint8)
    m.buffers.append(buf)
    entry = fb.schema.MetadataT()
    entry.name = b"OfflineMemoryAllocation"
    entry.buffer = len(m.buffers) - 1
    m.metadata = list(m.metadata or []) + [entry]
    return f"OfflineMemoryAllocation metadata, variant {kind}"


def _edit_buffer_data(m, rng) -> str:
    full = [b for b in m.buffers if b is not None and b.data is not None and len(b.data)]
    if not full:
        return "no-op"
    b = _pick(rng, full)
    data = np.asarray(b.data, np.uint8)
    kind = int(rng.integers(3))
    if kind == 0:
        b.data = data[: int(rng.integers(len(data)))]
    elif kind == 1:
        b.data = np.concatenate([data, np.zeros(int(rng.integers(1, 64)), np.uint8)])
    else:
        b.data = rng.integers(0, 256, len(data)).astype(np.uint8)
    return f"buffer data edit {kind}"


def _edit_structure(m, rng) -> str:
    sg = m.subgraphs[0]
    kind = int(rng.integers(5))
    if kind == 0:
        m.version = int(rng.choice([0, 2, 4, 2**31]))
        return f"version = {m.version}"
    if kind == 1 and len(sg.operators) > 1:
        i, j = rng.choice(len(sg.operators), 2, replace=False)
        sg.operators[i], sg.operators[j] = sg.operators[j], sg.operators[i]
        return "two operators swapped"
    if kind == 2 and sg.operators:
        sg.operators.pop(int(rng.integers(len(sg.operators))))
        return "an operator removed"
    if kind == 3:
        _pick(rng, sg.tensors).name = bytes(rng.integers(128, 256, 6).astype(np.uint8))
        return "a tensor name that is not UTF-8"
    sg.tensors.append(copy.deepcopy(_pick(rng, sg.tensors)))
    return "a tensor duplicated"


_RAW = (_bit_flips, _truncate, _overwrite_int)
_SCHEMA = (_edit_op_index, _edit_operands, _edit_graph_io, _edit_shape, _edit_type,
           _edit_buffer_index, _edit_quantization, _edit_opcode, _edit_options, _edit_metadata,
           _edit_buffer_data, _edit_structure)


def mutate(seed: bytes, parsed, rng) -> tuple[bytes, str]:
    """One mutant of ``seed`` (``parsed`` is its unpacked ModelT) and what changed."""
    if rng.random() < 0.4:
        return _pick(rng, _RAW)(seed, rng)
    m = copy.deepcopy(parsed)
    edits = [_pick(rng, _SCHEMA)(m, rng) for _ in range(int(rng.choice([1, 1, 1, 2])))]
    try:
        return _repack(m), "; ".join(edits)
    except Exception as e:  # an edit the builder cannot write: fall back to raw bytes
        data, what = _overwrite_int(seed, rng)
        return data, f"{what} (schema edit unwritable: {type(e).__name__})"


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
    native: dict[str, tuple[bytes, str]] = {}
    found: dict[str, dict] = {}
    start = time.monotonic()
    for n in range(mutants):
        k = int(rng.integers(len(seeds)))
        data, what = mutate(seeds[k], parsed[k], rng)
        target = targets[n % len(targets)]
        result = run_one(target, data, limit)
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
    if findings is not None:
        for key, (data, what) in native.items():
            digest = hashlib.sha256(data).hexdigest()[:12]
            (findings / "native").mkdir(parents=True, exist_ok=True)
            (findings / "native" / f"{digest}.tflite").write_bytes(data)
            (findings / "native" / f"{digest}.json").write_text(json.dumps({"key": key, "mutation": what}))
    return {"mutants": mutants, "seconds": round(time.monotonic() - start, 1),
            "counts": counts, "errors": errors, "findings": list(found.values())}


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
    if "cli" in targets:
        import tinycompress.cli  # noqa: F401 - imported once, before the children fork
    summary = fuzz(seed_models(args.seeds), args.mutants, seed=args.seed, limit=args.limit,
                   targets=targets, findings=args.findings)
    line = {k: summary[k] for k in ("mutants", "seconds", "counts", "errors")}
    line["findings"] = [f["key"] for f in summary["findings"]]
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
