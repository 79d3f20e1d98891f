"""Run the TFLite converter in a child process, where a crash is an error.

The converter and its calibrator are native code: on some graphs (a Keras 3
LSTM among them) they kill the process with a segmentation fault instead of
raising. `run_converter` therefore saves the traced function as a SavedModel
in a temporary job directory, with the calibration samples and the options,
and converts it in a Python process (``python -P _convert_worker.py``)
that imports only TensorFlow. The child reads one job directory per
line on stdin, writes ``model.tflite`` there (or ``error.txt`` when the
converter raised) and answers ``done``; a child that dies, or runs past the
timeout, becomes a `tinycompress.errors.ConversionError` in the caller, and
the next conversion starts a new child. The child stays up between
conversions, so TensorFlow's import is paid once per calling process.

The SavedModel route also keeps functions that carry an ``api_implements``
attribute intact, which is how the converter recognises an LSTM and fuses it
into one ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (freezing a concrete function in
Python inlines them).

Measured cost on this machine (2 cores shared by several jobs): the first
conversion pays the child's start and TensorFlow import (about 8 s of CPU,
up to 30 s of wall time under load); every conversion pays about 1 s to save
the SavedModel; the conversion itself costs what it cost in process.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger("tinycompress.convert")

#: Seconds a conversion may run before the child is killed.
DEFAULT_TIMEOUT_S = 600.0

_DETAIL_CHARS = 2000


def _save_job(job: str, concrete, samples, options: dict) -> None:
    import tensorflow as tf

    root = tf.Module()
    # The signature reads the model's variables: the SavedModel must track them.
    root.variables_ = list(concrete.variables)
    # Saving logs each renamed resource input and the assets folder at INFO.
    quiet = [logging.getLogger(name) for name in ("absl", "tensorflow")]
    levels = [log.level for log in quiet]
    for log in quiet:
        log.setLevel(logging.WARNING)
    try:
        tf.saved_model.save(root, os.path.join(job, "saved_model"), signatures=concrete)
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
    names = [spec.name for spec in concrete.structured_input_signature[0]]
    arrays = {name: np.concatenate([s[i] for s in samples]) for i, name in enumerate(names)}
    np.savez(os.path.join(job, "samples.npz"), **arrays)
    with open(os.path.join(job, "options.json"), "w") as f:
        json.dump({**options, "inputs": names}, f)


def _error_detail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "error" in ln.lower() or " op" in ln.lower()]
    return ("\n".join(lines) or text)[:_DETAIL_CHARS]


class _Child:
    """The converter process, started on first use and reused until it dies."""

    def __init__(self):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-P", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )

    def run(self, job: str, timeout_s: float) -> bool:
        """Send a job; True when answered, False when the child died."""
        self.proc.stdin.write(job.encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            self.stop()
            raise TimeoutError
        return self.proc.stdout.readline().strip() == b"done"

    def stderr_tail(self, lines: int = 8) -> str:
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


_CHILD: list[_Child] = []
_LOCK = threading.Lock()


def _stop_child() -> None:
    while _CHILD:
        _CHILD.pop().stop()


atexit.register(_stop_child)


def _run_job(job: str, timeout_s: float) -> tuple[bool, str]:
    """Run one job in the shared child: (answered, how it died)."""
    with _LOCK:
        if not _CHILD or _CHILD[0].proc.poll() is not None:
            _stop_child()
            _CHILD.append(_Child())
        child = _CHILD[0]
        try:
            if child.run(job, timeout_s):
                return True, ""
        except TimeoutError:
            _stop_child()
            raise
        except BrokenPipeError:
            pass
        child.proc.wait()
        code = child.proc.returncode
        how = f"crashed with signal {-code}" if code < 0 else f"exited with code {code}"
        tail = child.stderr_tail()
        _stop_child()
        return False, f"{how}. Converter's last output:\n{tail}"


def run_converter(
    concrete,
    samples: Sequence[Sequence[np.ndarray]],
    options: dict,
    *,
    suspects: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """Convert a traced function to `.tflite` bytes in a child process.

    Args:
        concrete: a `tf.function` concrete function with fixed input shapes
            whose inputs are named (`tf.TensorSpec(..., name=...)`).
        samples: calibration samples, each one array of shape ``(1, ...)`` per
            input (as `tinycompress.data.prepare_samples` returns them).
        options: ``mode``, ``io_dtype`` and ``per_channel_dense`` as
            `tinycompress.convert` takes them.
        suspects: descriptions of the model's layers most likely to crash the
            converter (named in the error when it does). Default none.
        timeout_s: seconds before the child is killed. Default 600.

    Returns:
        The converter's flatbuffer bytes.

    Raises:
        ConversionError: the converter raised, crashed or timed out.
    """
    from tinycompress.errors import ConversionError

    mode = options["mode"]
    with tempfile.TemporaryDirectory(prefix="tinycompress-convert-") as job:
        _save_job(job, concrete, samples, options)
        start = time.monotonic()
        try:
            answered, death = _run_job(job, timeout_s)
        except TimeoutError as e:
            raise ConversionError(
                f"the TFLite converter did not finish within {timeout_s:.0f} s and was "
                "killed. Convert a smaller model or raise the timeout."
            ) from e
        error_path = os.path.join(job, "error.txt")
        if answered and not os.path.exists(error_path):
            with open(os.path.join(job, "model.tflite"), "rb") as f:
                model = f.read()
            logger.info("child conversion took %.1f s, %d bytes", time.monotonic() - start, len(model))
            return model
        if answered:
            with open(error_path, encoding="utf-8") as f:
                detail = _error_detail(f.read())
            raise ConversionError(
                f"the TFLite converter could not produce a full-integer {mode} model:\n"
                f"{detail}\nLayers whose ops have no integer TFLite kernel must be "
                "replaced (tflite_export.tflm_ops lists what TFLM runs)."
            )
        advice = (
            f"Layers it has no tested conversion for: {', '.join(suspects)}. Replace or "
            "remove them (tinycompress.recurrent lists the recurrent layers it exports)."
            if suspects
            else "Find the layer by converting parts of the model, and replace it."
        )
        raise ConversionError(
            f"the TFLite converter died while converting the model to {mode}; the "
            f"calling process is unharmed. {advice} The converter {death}"
        )


def _convert(job: str) -> bytes:
    import tensorflow as tf

    with open(os.path.join(job, "options.json")) as f:
        options = json.load(f)
    with np.load(os.path.join(job, "samples.npz"), allow_pickle=False) as data:
        arrays = {name: data[name] for name in options["inputs"]}
    n = len(next(iter(arrays.values())))

    def representative():
        for s in range(n):
            yield {name: a[s : s + 1] for name, a in arrays.items()}

    converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(job, "saved_model"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    ops = tf.lite.OpsSet
    converter.target_spec.supported_ops = [
        ops.TFLITE_BUILTINS_INT8
        if options["mode"] == "int8"
        else ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]
    io = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}
    converter.inference_input_type = io[options["io_dtype"]]
    converter.inference_output_type = io[options["io_dtype"]]
    converter._experimental_disable_per_channel_quantization_for_dense_layers = (  # noqa: SLF001
        not options["per_channel_dense"]
    )
    return bytes(converter.convert())


def _serve_one(job: str) -> None:
    try:
        model = _convert(job)
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ...
        with open(os.path.join(job, "error.txt"), "w", encoding="utf-8") as f:
            f.write(f"{type(e).__name__}: {e}")
        return
    with open(os.path.join(job, "model.tflite"), "wb") as f:
        f.write(model)


def main() -> int:
    """Child entry point: convert each job directory read from stdin."""
    # Answers go to the original stdout; anything native code prints to fd 1
    # goes to stderr, where it cannot be taken for an answer.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    # Keep the stderr tail shown after a crash for the converter's own output.
    warnings.filterwarnings("ignore", category=UserWarning)
    for line in sys.stdin:
        _serve_one(line.strip())
        answers.write("done\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
