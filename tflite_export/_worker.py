"""Child-process entry point that runs native interpreters on a model.

TFLM does not verify flatbuffers, so a malformed model can crash the process
that loads it. `tflite_export.runtime` therefore runs every native interpreter
here, in a separate Python process: ``python _worker.py JOB_DIR``.
The job directory holds ``model.tflite``, ``request.json`` and, where needed,
``inputs.npy``; the worker writes ``result.npz`` and ``result.json``. Anything
the native code prints to the C-level stderr (fd 2) stays in this process's
stderr, where the parent reads it (TFLM's allocation report is printed there).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def _tflm(model: bytes, arena_size: int, preserve: bool = False):
    from tflite_micro.python.tflite_micro import runtime

    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve
        else runtime.InterpreterConfig.kAllocationRecording
    )
    return runtime.Interpreter.from_bytes(
        model, arena_size=arena_size, intrepreter_config=config
    )


def _run_tflm(model: bytes, inputs: list[np.ndarray], arena_size: int) -> dict:
    interp = _tflm(model, arena_size)
    n = inputs[0].shape[0]
    outputs: dict[int, list[np.ndarray]] = {}
    for s in range(n):
        # Samples are independent: zero the variable tensors (an LSTM's state)
        # that the previous sample left behind.
        interp.reset()
        for i, x in enumerate(inputs):
            interp.set_input(x[s : s + 1], i)
        interp.invoke()
        k = 0
        while True:
            try:
                y = interp.get_output(k)
            except (RuntimeError, IndexError, ValueError):
                break
            outputs.setdefault(k, []).append(np.array(y)[0])
            k += 1
    return {f"out{k}": np.stack(v) for k, v in outputs.items()}


def _tensors_tflm(model: bytes, inputs: list[np.ndarray], arena_size: int, indices) -> dict:
    interp = _tflm(model, arena_size, preserve=True)
    for i, x in enumerate(inputs):
        interp.set_input(x[0:1], i)
    interp.invoke()
    result = {}
    for t in indices:
        result[f"t{t}"] = np.array(interp.GetTensor(int(t), 0)["tensor_data"])
    return result


def _run_litert(model: bytes, inputs: list[np.ndarray]) -> dict:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    in_details = interp.get_input_details()
    out_details = interp.get_output_details()
    for i, x in enumerate(inputs):
        shape = (1,) + tuple(x.shape[1:])
        if tuple(in_details[i]["shape"]) != shape:
            interp.resize_tensor_input(in_details[i]["index"], shape)
    interp.allocate_tensors()
    outputs: dict[int, list[np.ndarray]] = {}
    for s in range(inputs[0].shape[0]):
        interp.reset_all_variables()
        for i, x in enumerate(inputs):
            interp.set_tensor(in_details[i]["index"], x[s : s + 1])
        interp.invoke()
        for k, d in enumerate(out_details):
            outputs.setdefault(k, []).append(interp.get_tensor(d["index"])[0].copy())
    return {f"out{k}": np.stack(v) for k, v in outputs.items()}


def _arena_ok(model: bytes, inputs: list[np.ndarray], arena_size: int) -> bool:
    """Whether TFLM sets up and runs the model with this arena.

    Each try runs in a forked process: some TFLM kernels crash instead of
    failing cleanly when an allocation does not fit, and such a crash means
    the arena is too small.
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            interp = _tflm(model, arena_size)
            for i, x in enumerate(inputs):
                interp.set_input(x[0:1], i)
            interp.invoke()
            code = 0
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _smallest_arena(model: bytes, inputs: list[np.ndarray], upper: int, hint: int | None) -> int:
    """Smallest arena (bytes) with which TFLM sets up and runs the model.

    The recording allocator reports the final head and tail (``hint``), but
    planning needs temporary head space too, so the requirement is found by
    bisection, started between ``hint - 17`` and ``hint * 1.25 + 1 KiB`` when
    those bracket it (checked), else between 0 and ``upper``. Prints
    ``progress DONE TOTAL`` on stdout before each step and at the end.
    """
    lo, hi = 0, upper
    if hint:
        guess = min(upper, hint + hint // 4 + 1024)
        if _arena_ok(model, inputs, guess):
            hi = guess
            below = max(0, hint - 17)
            if below and not _arena_ok(model, inputs, below):
                lo = below
    if hi == upper and not _arena_ok(model, inputs, hi):
        raise SystemExit(f"TFLM cannot run the model even with {upper} arena bytes")
    steps, done = max(1, (hi - lo - 1).bit_length()), 0  # at most this many halvings
    print(f"progress 0 {steps}", flush=True)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _arena_ok(model, inputs, mid):
            hi = mid
        else:
            lo = mid
        done += 1
        if done < steps:
            print(f"progress {done} {steps}", flush=True)
    print(f"progress {steps} {steps}", flush=True)
    return hi


def _tflm_intermediates(model: bytes, xs: list[np.ndarray], arena_size: int, needed) -> dict:
    """TFLM's values of the ``needed`` tensors for every sample, stacked."""
    interp = _tflm(model, arena_size, preserve=True)
    values: dict[int, list[np.ndarray]] = {t: [] for t in needed}
    for s in range(xs[0].shape[0]):
        interp.reset()  # samples are independent: no LSTM state carried over
        for i, x in enumerate(xs):
            interp.set_input(x[s : s + 1], i)
        interp.invoke()
        for t in needed:
            values[t].append(np.array(interp.GetTensor(int(t), 0)["tensor_data"]).reshape(-1))
    return {t: np.stack(v) for t, v in values.items()}


def _op_differences(blob: np.ndarray, feeds: list[np.ndarray], expected: list[np.ndarray]) -> dict:
    """Run one single-op model on LiteRT and compare each output with ``expected``.

    Per sample and output k: ``d{k}`` largest |TFLM - LiteRT|, ``e{k}`` its flat
    element, ``a{k}``/``b{k}`` the TFLM/LiteRT values there, ``m{k}`` the largest
    |LiteRT| value (for float tensors compared relatively).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_content=blob.tobytes(), experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    got: list[list[np.ndarray]] = [[] for _ in outs]
    for s in range(expected[0].shape[0]):
        interp.reset_all_variables()
        for d, feed in zip(ins, feeds):
            interp.set_tensor(d["index"], feed[s].reshape(d["shape"]).astype(d["dtype"]))
        interp.invoke()
        for k, d in enumerate(outs):
            got[k].append(interp.get_tensor(d["index"]).astype(np.float64).reshape(-1))
    result = {}
    for k, (a, b) in enumerate(zip(expected, got)):
        b = np.stack(b)
        a = a.astype(np.float64).reshape(b.shape)
        if not b.shape[1]:
            continue
        diff = np.abs(a - b)
        e = np.argmax(diff, axis=1)
        rows = np.arange(len(b))
        result.update({f"d{k}": diff[rows, e], f"e{k}": e, f"a{k}": a[rows, e],
                       f"b{k}": b[rows, e], f"m{k}": np.abs(b).max(axis=1)})
    return result


def _verify_ops(reference: bytes, inputs: list[np.ndarray], request: dict) -> tuple[dict, dict]:
    """Everything `tflite_export.verify` needs from the native runtimes, in one process.

    ``inputs`` holds the model's quantized inputs, then uint8 arrays: the
    single-op models (``request["ops"]``, each with its op index and the source
    tensors of its inputs and outputs) and, when TFLM runs another model than
    LiteRT (a LUT-compressed one), that model last. Returns end-to-end outputs
    (``tflm{k}``, ``litert{k}``; TFLM's flattened per sample; with a separate
    TFLM model also ``reference{k}``, TFLM's outputs of the reference) and per-op
    differences (``op{index}_...``); ``meta["op_errors"]`` maps the index of an
    op that LiteRT could not run alone to why.
    """
    xs = inputs[: request["n_model_inputs"]]
    blobs = inputs[request["n_model_inputs"] :]
    ops = request["ops"]
    outputs = request["model_outputs"]
    needed = sorted({int(t) for op in ops for t in op["inputs"] + op["outputs"]} | set(outputs))
    values = _tflm_intermediates(reference, xs, request["arena_size"], needed)
    arrays = {f"tflm{k}": values[t] for k, t in enumerate(outputs)}
    if len(blobs) > len(ops):
        arrays = {f"reference{k}": values[t] for k, t in enumerate(outputs)}
        tflm = _run_tflm(blobs[len(ops)].tobytes(), xs, request["arena_size"])
        arrays.update({f"tflm{k[3:]}": v.reshape(len(v), -1) for k, v in tflm.items()})
    arrays.update({f"litert{k[3:]}": v for k, v in _run_litert(reference, xs).items()})
    errors = {}
    for blob, op in zip(blobs, ops):
        try:
            diffs = _op_differences(
                blob, [values[t] for t in op["inputs"]], [values[t] for t in op["outputs"]]
            )
        except (RuntimeError, ValueError) as e:
            text = str(e).strip()
            errors[str(op["index"])] = text.splitlines()[-1] if text else type(e).__name__
            continue
        arrays.update({f"op{op['index']}_{k}": v for k, v in diffs.items()})
    return arrays, {"op_errors": errors}


def _recorded_total(interp) -> int | None:
    """TFLM's allocation report (printed on fd 2, where the parent reads it too)
    and the total it gives."""
    import re
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    sys.stderr.write(text)
    sys.stderr.flush()
    found = re.search(r"Arena allocation total (\d+) bytes", text)
    return int(found.group(1)) if found else None


def main(job_dir: str) -> int:
    with open(os.path.join(job_dir, "request.json")) as f:
        request = json.load(f)
    with open(os.path.join(job_dir, "model.tflite"), "rb") as f:
        model = f.read()
    inputs = []
    if request.get("n_inputs"):
        with np.load(os.path.join(job_dir, "inputs.npz"), allow_pickle=False) as data:
            inputs = [data[f"in{i}"] for i in range(request["n_inputs"])]
    kind = request["kind"]
    meta: dict = {}
    arrays: dict = {}
    if kind == "tflm_run":
        arrays = _run_tflm(model, inputs, request["arena_size"])
    elif kind == "tflm_tensors":
        arrays = _tensors_tflm(model, inputs, request["arena_size"], request["tensors"])
    elif kind == "litert_run":
        arrays = _run_litert(model, inputs)
    elif kind == "verify_ops":
        arrays, meta = _verify_ops(model, inputs, request)
    elif kind == "tflm_arena":
        interp = _tflm(model, request["arena_size"])
        for i, x in enumerate(inputs):
            interp.set_input(x[0:1], i)
        interp.invoke()
        hint = _recorded_total(interp)
        meta["required"] = _smallest_arena(model, inputs, request["arena_size"], hint)
    elif kind == "tflm_arena_ok":
        meta["ok"] = [_arena_ok(model, inputs, int(n)) for n in request["sizes"]]
    else:
        raise SystemExit(f"unknown request kind {kind!r}")
    np.savez(os.path.join(job_dir, "result.npz"), **arrays)
    with open(os.path.join(job_dir, "result.json"), "w") as f:
        json.dump(meta, f)
    return 0


def _die_with_parent() -> None:
    """End this worker (Linux) when the process that started it dies, so a
    killed caller leaves no interpreter running without its time limit."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent()
    sys.exit(main(sys.argv[1]))
