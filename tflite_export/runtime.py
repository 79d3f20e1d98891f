"""Run a `.tflite` model on the real TFLM interpreter and on LiteRT.

Every native call happens in a child process (`tflite_export._worker`) with a
timeout: TFLM loads flatbuffers without a verifier, so a corrupt model may crash
it, and a crash must become a `RuntimeCheckError`, not the end of the caller.
Models are checked with `tflite_export.validate` before they reach native code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tflite_export.errors import RuntimeCheckError
from tflite_export.io_details import input_details

__all__ = ["DEFAULT_TIMEOUT_S", "run_tflm", "run_litert", "tflm_tensors", "evaluate_accuracy"]

# Run as a script (-P: without its folder on sys.path, where inspect.py would
# shadow the standard library), so the child imports only numpy and the interpreters.
_WORKER = Path(__file__).with_name("_worker.py")

#: Seconds a child interpreter may run before it is killed.
DEFAULT_TIMEOUT_S = 300.0


def _default_arena(model: bytes) -> int:
    # Generous on purpose: this arena only runs the model on the host. The size
    # a device needs is measured by `tflite_export.measure_arena`.
    return 8 * 1024 * 1024 + 4 * len(model)


def _as_inputs(model: bytes, x) -> list[np.ndarray]:
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    arrays = [np.ascontiguousarray(a) for a in xs]
    if not arrays or any(a.ndim == 0 or a.shape[0] == 0 for a in arrays):
        raise ValueError(
            "expected a batch of samples with the samples on the first axis. "
            f"Received shapes {[a.shape for a in arrays]}."
        )
    if len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(
            "every model input needs the same number of samples. "
            f"Received {[a.shape[0] for a in arrays]}."
        )
    details = input_details(model)
    if len(arrays) != len(details):
        raise ValueError(
            f"the model has {len(details)} input(s); received {len(arrays)} array(s). "
            "Pass one array per input, a list when there are several."
        )
    for d, a in zip(details, arrays):
        if a.shape[1:] != tuple(d.shape[1:]):
            raise ValueError(
                f"input {d.index} takes samples of shape {tuple(d.shape[1:])}, batch first: "
                f"(n, {', '.join(map(str, d.shape[1:]))}); received shape {a.shape}. "
                "For one sample add the batch axis, e.g. x[None]."
            )
        if a.dtype != np.dtype(d.dtype):
            raise ValueError(
                f"input {d.index} is {d.dtype}; received {a.dtype}. Quantize float samples "
                "with tflite_export.quantize(x, model)."
            )
    return arrays


def call_worker(
    model: bytes,
    kind: str,
    inputs: Sequence[np.ndarray] = (),
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    validate: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    **request,
) -> tuple[dict[str, np.ndarray], dict, str]:
    """Run one request in a child process; return (arrays, metadata, stderr).

    ``on_progress(done, total)`` is called for each ``progress DONE TOTAL``
    line the child prints on its stdout, while it runs.

    Raises:
        ModelFormatError: the model fails `tflite_export.validate`.
        RuntimeCheckError: the child crashed, failed or timed out.
    """
    if validate:
        from tflite_export.validate import validate as _validate

        _validate(model)
    with tempfile.TemporaryDirectory(prefix="tinycompress-") as job:
        with open(os.path.join(job, "model.tflite"), "wb") as f:
            f.write(model)
        if inputs:
            np.savez(os.path.join(job, "inputs.npz"), **{f"in{i}": a for i, a in enumerate(inputs)})
        with open(os.path.join(job, "request.json"), "w") as f:
            json.dump({"kind": kind, "n_inputs": len(inputs), **request}, f)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        try:
            proc = _run_child([sys.executable, "-P", str(_WORKER), job], env, timeout_s, on_progress)
        except subprocess.TimeoutExpired as e:
            raise RuntimeCheckError(
                f"the {kind} run did not finish within {timeout_s:.0f} s and was killed; "
                "the model may be too large for the host check or malformed. "
                "Raise timeout_s or inspect the model."
            ) from e
        stderr = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            how = (
                f"crashed with signal {-proc.returncode}"
                if proc.returncode < 0
                else f"failed with exit code {proc.returncode}"
            )
            tail = "\n".join(stderr.strip().splitlines()[-15:])
            raise RuntimeCheckError(
                f"the native interpreter ({kind}) {how}. Its last output:\n{tail}"
            )
        with np.load(os.path.join(job, "result.npz"), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        with open(os.path.join(job, "result.json")) as f:
            meta = json.load(f)
    return arrays, meta, stderr


def _run_child(cmd: list[str], env: dict, timeout_s: float, on_progress) -> subprocess.CompletedProcess:
    """`subprocess.run` with captured output, reading progress lines as they come."""
    if on_progress is None:
        return subprocess.run(cmd, capture_output=True, timeout=timeout_s, env=env)
    killed = threading.Event()
    with tempfile.TemporaryFile() as err, subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=err, env=env
    ) as proc:

        def kill() -> None:
            killed.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            for line in proc.stdout:
                words = line.split()
                if len(words) == 3 and words[0] == b"progress":
                    on_progress(int(words[1]), int(words[2]))
            proc.wait()
        finally:
            timer.cancel()
        if killed.is_set():
            raise subprocess.TimeoutExpired(cmd, timeout_s)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, b"", err.read())


def _outputs(arrays: dict[str, np.ndarray]) -> np.ndarray | list[np.ndarray]:
    outs = [arrays[f"out{k}"] for k in range(len(arrays))]
    return outs[0] if len(outs) == 1 else outs


def run_tflm(
    model: bytes,
    x,
    *,
    arena_size: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
):
    """Run a model on the TFLM interpreter, one sample at a time.

    Args:
        model: `.tflite` flatbuffer bytes.
        x: array (or list of arrays, one per input) with samples on the first
            axis, already in the model's input dtype (see `quantize`).
        arena_size: tensor arena bytes. Default None: a generous host arena.
        timeout_s: seconds before the child is killed. Default 300.

    Returns:
        The outputs stacked over samples (a list when the model has several).

    Raises:
        ModelFormatError: the model is malformed.
        RuntimeCheckError: TFLM failed, crashed or timed out.

    Example:
        >>> import numpy as np, tflite_export
        >>> y = tflite_export.run_tflm(tflite_export.testing.tiny_model(), np.zeros((2, 4), np.int8))
        >>> y.shape, y.dtype
        ((2, 3), dtype('int8'))
    """
    inputs = _as_inputs(model, x)
    arrays, _, _ = call_worker(
        model,
        "tflm_run",
        inputs,
        arena_size=int(arena_size or _default_arena(model)),
        timeout_s=timeout_s,
    )
    return _outputs(arrays)


def run_litert(model: bytes, x, *, timeout_s: float = DEFAULT_TIMEOUT_S):
    """Run a model on LiteRT's reference kernels; arguments as `run_tflm`."""
    inputs = _as_inputs(model, x)
    arrays, _, _ = call_worker(model, "litert_run", inputs, timeout_s=timeout_s)
    return _outputs(arrays)


def tflm_tensors(
    model: bytes, x, tensors: Sequence[int], *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[int, np.ndarray]:
    """Values of chosen tensors of subgraph 0 after TFLM runs the first sample.

    Args:
        model: `.tflite` flatbuffer bytes.
        x: input batch as in `run_tflm`; only sample 0 is run.
        tensors: tensor indices to read back.
        timeout_s: seconds before the child is killed. Default 300.

    Returns:
        Tensor index -> flat array of the tensor's raw values.
    """
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


def evaluate_accuracy(model: bytes, x_float: np.ndarray, labels: np.ndarray) -> float:
    """Argmax accuracy of a classifier run on TFLM.

    Args:
        model: `.tflite` flatbuffer bytes with one input and one output.
        x_float: float samples (quantized here with the model's input scale).
        labels: integer class labels, one per sample.

    Returns:
        Fraction of samples whose TFLM argmax equals the label.
    """
    from tflite_export.io_details import quantize

    y = run_tflm(model, quantize(x_float, model))
    y = np.asarray(y).reshape(len(labels), -1)
    return float(np.mean(np.argmax(y, axis=-1) == np.asarray(labels).reshape(-1)))
