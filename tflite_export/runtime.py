"""Run a `.tflite` model on the real TFLM interpreter and on LiteRT.

Every native call happens in a child process (`tflite_export._worker`) with a
time limit: TFLM loads flatbuffers without a verifier, so a corrupt model may
crash it, and a crash must become a `RuntimeCheckError`, not the end of the
caller. Models are checked with `tflite_export.validate` before anything reads
them, and inputs are refused before allocation when one sample exceeds the
host arena. The limit is ``timeout_s`` when given, else the environment
variable `TIMEOUT_ENV` (``TINYCOMPRESS_TIMEOUT_S``, seconds), else an estimate
from the model's declared work (`time_limit`: 15 s plus a generous per-invoke
figure); a child past it is killed with everything it forked, and the error
names the limit and how to raise it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tflite_export.errors import InputError, RuntimeCheckError, UnsupportedModelError
from tflite_export.io_details import input_details
from tflite_export.validate import validate as _validate

__all__ = ["DEFAULT_TIMEOUT_S", "TIMEOUT_ENV", "time_limit", "run_tflm", "run_litert", "tflm_tensors",
           "classifier_outputs", "evaluate_accuracy"]

# Run as a script (-P: without its folder on sys.path, where inspect.py would
# shadow the standard library), so the child imports only numpy and the interpreters.
_WORKER = Path(__file__).with_name("_worker.py")

#: Default ``timeout_s`` of every run: None, meaning the limit `time_limit` computes.
DEFAULT_TIMEOUT_S: float | None = None

#: Environment variable that sets the child's time limit in seconds for every
#: run (the CLI's way to raise it); ``timeout_s=`` wins over it.
TIMEOUT_ENV = "TINYCOMPRESS_TIMEOUT_S"
#: Seconds every child gets on top of the work estimate (start-up, imports).
_BASE_S = 15.0
#: Work units (MACs plus tensor elements) per second assumed for TFLM's
#: reference kernels on the host, and seconds per invoke on top (Python
#: round trip): both about 20-40 times slower than measured here.
_UNITS_PER_S = 5e6
_S_PER_RUN = 1e-3


def _default_arena(model: bytes) -> int:
    # Generous on purpose: this arena only runs the model on the host. The size
    # a device needs is measured by `tflite_export.measure_arena`.
    return 8 * 1024 * 1024 + 4 * len(model)


def _work_per_run(model: bytes) -> int:
    """MACs plus elements of every tensor: what one invoke costs, roughly."""
    from tflite_export import _flatbuffer as fb
    from tflite_export._ops_cost import macs

    m = fb.unpack(model)
    total = 0
    for sg in m.subgraphs or []:
        shapes = [tuple(int(d) for d in (t.shape if t.shape is not None else []))
                  for t in sg.tensors or []]
        total += sum(math.prod(sh) for sh in shapes)
        for op in sg.operators or []:
            ins = [shapes[i] if i >= 0 else None for i in (op.inputs if op.inputs is not None else [])]
            outs = [shapes[i] for i in (op.outputs if op.outputs is not None else [])]
            total += macs(fb.op_name(m.operatorCodes[op.opcodeIndex]), ins, outs, op.builtinOptions)
    return total


def time_limit(model: bytes, runs: int, timeout_s: float | None = None) -> tuple[float, str]:
    """Seconds a child may run for ``runs`` invokes of a (validated) model, and why.

    ``timeout_s`` wins, then the `TIMEOUT_ENV` variable, then an estimate from
    the model's declared work:
    ``15 s + runs * (1 ms + (MACs + tensor elements) / 5e6 per s)``.
    """
    if timeout_s is not None:
        return float(timeout_s), "timeout_s"
    env = os.environ.get(TIMEOUT_ENV)
    if env:
        try:
            return float(env), f"${TIMEOUT_ENV}"
        except ValueError:
            raise InputError(f"{TIMEOUT_ENV}={env!r} is not a number of seconds; set it to "
                             "e.g. 600 or unset it.") from None
    estimate = _BASE_S + runs * (_S_PER_RUN + _work_per_run(model) / _UNITS_PER_S)
    return estimate, "the estimate from the model's size"


def check_host_memory(model: bytes, arrays_bytes: int, arena_size: int) -> None:
    """Refuse inputs that cannot fit the host arena before anything allocates them."""
    if arrays_bytes > arena_size:
        raise UnsupportedModelError(
            f"the model's inputs need {arrays_bytes} bytes per sample, more than the "
            f"{arena_size}-byte host arena they must fit in. If the model is right, pass a "
            "larger arena_size= (run_tflm, measure_arena)."
        )


def _as_inputs(model: bytes, x) -> list[np.ndarray]:
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    try:
        arrays = [np.ascontiguousarray(a) for a in xs]
    except (ValueError, TypeError) as e:
        raise InputError(f"expected numeric arrays as model inputs; numpy refused them ({e}).") from e
    if not arrays or any(a.ndim == 0 or a.shape[0] == 0 for a in arrays):
        raise InputError(
            "expected a batch of samples with the samples on the first axis. "
            f"Received shapes {[a.shape for a in arrays]}."
        )
    if len({a.shape[0] for a in arrays}) != 1:
        raise InputError(
            "every model input needs the same number of samples. "
            f"Received {[a.shape[0] for a in arrays]}."
        )
    details = input_details(model)
    if len(arrays) != len(details):
        raise InputError(
            f"the model has {len(details)} input(s); received {len(arrays)} array(s). "
            "Pass one array per input, a list when there are several."
        )
    for d, a in zip(details, arrays):
        if a.shape[1:] != tuple(d.shape[1:]):
            raise InputError(
                f"input {d.index} takes samples of shape {tuple(d.shape[1:])}, batch first: "
                f"(n, {', '.join(map(str, d.shape[1:]))}); received shape {a.shape}. "
                "For one sample add the batch axis, e.g. x[None]."
            )
        if a.dtype != np.dtype(d.dtype):
            raise InputError(
                f"input {d.index} is {d.dtype}; received {a.dtype}. Quantize float samples "
                "with tflite_export.quantize(x, model)."
            )
    return arrays


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the worker's whole session (the worker and what it forked)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _spawn(job: str, kind: str, limit: float, why: str, on_progress=None) -> tuple[int, str]:
    """Run the worker on ``job``; return (exit code, stderr).

    The child reports ``progress DONE TOTAL`` lines on stdout (passed to
    ``on_progress(done, total)`` as they come); its stderr goes to a file, so
    neither pipe can fill up and stall it.
    """
    killed = threading.Event()
    with tempfile.TemporaryFile() as err:
        # A session of its own, so a timeout also ends the processes the worker forked.
        proc = subprocess.Popen(
            [sys.executable, "-P", str(_WORKER), job],
            stdout=subprocess.PIPE, stderr=err, start_new_session=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )

        def kill() -> None:
            killed.set()
            _kill_group(proc)

        timer = threading.Timer(limit, kill)
        timer.start()
        try:
            for line in proc.stdout:
                words = line.split()
                if on_progress is not None and len(words) == 3 and words[0] == b"progress":
                    on_progress(int(words[1]), int(words[2]))
            proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        finally:
            timer.cancel()
            proc.stdout.close()
        if killed.is_set():
            raise RuntimeCheckError(
                f"the {kind} run did not finish within {limit:g} s (the limit from {why}) and "
                "was killed; a malformed model can make TFLM loop. If the model is right and the "
                f"host is slow, raise the limit with timeout_s= or the {TIMEOUT_ENV} environment "
                "variable (seconds)."
            )
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace")


def call_worker(
    model: bytes,
    kind: str,
    inputs: Sequence[np.ndarray] = (),
    *,
    timeout_s: float | None = None,
    runs: int = 1,
    validate: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    **request,
) -> tuple[dict[str, np.ndarray], dict, str]:
    """Run one request in a child process; return (arrays, metadata, stderr).

    Args:
        timeout_s: seconds before the child (and what it forked) is killed.
            Default None: see `time_limit`, for ``runs`` invokes.
        on_progress: called as ``on_progress(done, total)`` for each
            ``progress DONE TOTAL`` line the child prints, while it runs.

    Raises:
        ModelFormatError: the model fails `tflite_export.validate`.
        RuntimeCheckError: the child crashed, failed, timed out or wrote no result.
    """
    if validate:
        _validate(model)
        limit, why = time_limit(model, runs, timeout_s)
    else:
        limit, why = (timeout_s or _BASE_S), "timeout_s" if timeout_s else "the default"
    with tempfile.TemporaryDirectory(prefix="tinycompress-") as job:
        with open(os.path.join(job, "model.tflite"), "wb") as f:
            f.write(model)
        if inputs:
            np.savez(os.path.join(job, "inputs.npz"), **{f"in{i}": a for i, a in enumerate(inputs)})
        with open(os.path.join(job, "request.json"), "w") as f:
            json.dump({"kind": kind, "n_inputs": len(inputs), **request}, f)
        code, stderr = _spawn(job, kind, limit, why, on_progress)
        if code != 0:
            how = f"crashed with signal {-code}" if code < 0 else f"failed with exit code {code}"
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            raise RuntimeCheckError(
                f"the native interpreter ({kind}) {how}. Its last output:\n{tail}"
            )
        try:
            with np.load(os.path.join(job, "result.npz"), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            with open(os.path.join(job, "result.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            raise RuntimeCheckError(
                f"the native interpreter ({kind}) exited without a readable result ({e})."
            ) from e
    return arrays, meta, stderr


def _outputs(arrays: dict[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
    outs = [arrays[f"out{k}"] for k in range(len(arrays))]
    return outs[0] if len(outs) == 1 else outs


def run_tflm(
    model: bytes,
    x,
    *,
    arena_size: int | None = None,
    timeout_s: float | None = None,
):
    """Run a model on the TFLM interpreter, one sample at a time.

    Args:
        model: `.tflite` flatbuffer bytes.
        x: array (or list of arrays, one per input) with samples on the first
            axis, already in the model's input dtype (see `quantize`).
        arena_size: tensor arena bytes. Default None: a generous host arena
            (8 MiB plus 4 bytes per model byte).
        timeout_s: seconds before the child is killed. Default None: 15 s plus
            an estimate from the model's MACs and tensor sizes per sample (see
            `time_limit`; the `TIMEOUT_ENV` variable overrides it).

    Returns:
        The outputs stacked over samples (a list when the model has several).

    Raises:
        ModelFormatError: the model is malformed.
        InputError: ``x`` does not fit the model's inputs.
        UnsupportedModelError: a sample does not fit the arena.
        RuntimeCheckError: TFLM failed, crashed or timed out.

    Example:
        >>> import numpy as np, tflite_export
        >>> y = tflite_export.run_tflm(tflite_export.testing.tiny_model(), np.zeros((2, 4), np.int8))
        >>> y.shape, y.dtype
        ((2, 3), dtype('int8'))
    """
    _validate(model)
    inputs = _as_inputs(model, x)
    arena = int(arena_size or _default_arena(model))
    check_host_memory(model, sum(a[0].nbytes for a in inputs), arena)
    arrays, _, _ = call_worker(model, "tflm_run", inputs, arena_size=arena,
                               timeout_s=timeout_s, runs=len(inputs[0]))
    return _outputs(arrays)


def run_litert(model: bytes, x, *, timeout_s: float | None = None):
    """Run a model on LiteRT's reference kernels; arguments as `run_tflm`."""
    _validate(model)
    inputs = _as_inputs(model, x)
    arrays, _, _ = call_worker(model, "litert_run", inputs, timeout_s=timeout_s,
                               runs=len(inputs[0]))
    return _outputs(arrays)


def tflm_tensors(
    model: bytes, x, tensors: Sequence[int], *, timeout_s: float | None = None
) -> dict[int, np.ndarray]:
    """Values of chosen tensors of subgraph 0 after TFLM runs the first sample.

    Args:
        model: `.tflite` flatbuffer bytes.
        x: input batch as in `run_tflm`; only sample 0 is run.
        tensors: tensor indices to read back.
        timeout_s: seconds before the child is killed. Default None (see `run_tflm`).

    Returns:
        Tensor index -> flat array of the tensor's raw values.
    """
    _validate(model)
    inputs = _as_inputs(model, x)
    arrays, _, _ = call_worker(
        model,
        "tflm_tensors",
        inputs,
        arena_size=_default_arena(model),
        tensors=[int(t) for t in tensors],
        timeout_s=timeout_s,
    )
    return {int(k[1:]): v for k, v in arrays.items()}


def classifier_outputs(model: bytes, x_float: np.ndarray) -> np.ndarray:
    """Float outputs of a one-input, one-output classifier run on TFLM.

    Args:
        model: `.tflite` flatbuffer bytes with one input and one output.
        x_float: float samples (quantized here with the model's input scale).

    Returns:
        ``(samples, classes)`` float32 outputs, dequantized with the output's scale.

    Raises:
        RuntimeCheckError: TFLM failed, crashed or timed out (see `run_tflm`).
    """
    from tflite_export.io_details import dequantize, quantize

    y = dequantize(np.asarray(run_tflm(model, quantize(x_float, model))), model)
    return y.reshape(len(x_float), -1)


def evaluate_accuracy(model: bytes, x_float: np.ndarray, labels: np.ndarray) -> float:
    """Argmax accuracy of a classifier run on TFLM.

    Args:
        model: `.tflite` flatbuffer bytes with one input and one output.
        x_float: float samples (quantized here with the model's input scale).
        labels: integer class labels, one per sample.

    Returns:
        Fraction of samples whose TFLM argmax equals the label.
    """
    y = classifier_outputs(model, x_float)
    return float(np.mean(np.argmax(y, axis=-1) == np.asarray(labels).reshape(-1)))
