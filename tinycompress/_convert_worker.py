"""Run the TFLite converter in a child process, where a crash is an error.

The converter and its calibrator are native code: on some graphs (a Keras 3
LSTM among them) they kill the process with a segmentation fault instead of
raising. `run_converter` therefore saves the traced function as a SavedModel
in a temporary job directory, with the calibration samples and the options,
and converts it in a fresh Python process (``python -P _convert_worker.py
JOB_DIR``) that imports only TensorFlow. The child writes ``model.tflite``, or
``error.txt`` when the converter raised; a child that dies, or runs past the
timeout, becomes a `tinycompress.errors.ConversionError` in the caller.

The SavedModel route also keeps functions that carry an ``api_implements``
attribute intact, which is how the converter recognises an LSTM and fuses it
into one ``UNIDIRECTIONAL_SEQUENCE_LSTM`` op (freezing a concrete function in
Python inlines them).

Measured cost per conversion on this machine (2 shared cores): about 6 s to
start the child and import TensorFlow, plus under 1 s to save the SavedModel;
the conversion itself takes what it took in process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

#: Seconds a conversion may run before the child is killed.
DEFAULT_TIMEOUT_S = 600.0

_DETAIL_CHARS = 2000


def _save_job(job: str, concrete, samples, options: dict) -> None:
    import tensorflow as tf

    root = tf.Module()
    # The signature reads the model's variables: the SavedModel must track them.
    root.variables_ = list(concrete.variables)
    tf.saved_model.save(root, os.path.join(job, "saved_model"), signatures=concrete)
    names = [spec.name for spec in concrete.structured_input_signature[0]]
    arrays = {name: np.concatenate([s[i] for s in samples]) for i, name in enumerate(names)}
    np.savez(os.path.join(job, "samples.npz"), **arrays)
    with open(os.path.join(job, "options.json"), "w") as f:
        json.dump({**options, "inputs": names}, f)


def _error_detail(text: str) -> str:
    lines = [ln for ln in text.splitlines() if "error" in ln.lower() or " op" in ln.lower()]
    return ("\n".join(lines) or text)[:_DETAIL_CHARS]


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
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        start = time.monotonic()
        try:
            proc = subprocess.run(
                [sys.executable, "-P", os.path.abspath(__file__), job],
                capture_output=True,
                timeout=timeout_s,
                env=env,
            )
        except subprocess.TimeoutExpired as e:
            raise ConversionError(
                f"the TFLite converter did not finish within {timeout_s:.0f} s and was "
                "killed. Convert a smaller model or raise the timeout."
            ) from e
        error_path = os.path.join(job, "error.txt")
        if proc.returncode == 0:
            with open(os.path.join(job, "model.tflite"), "rb") as f:
                model = f.read()
            _log_cost(start, len(model))
            return model
        if os.path.exists(error_path):
            with open(error_path, encoding="utf-8") as f:
                detail = _error_detail(f.read())
            raise ConversionError(
                f"the TFLite converter could not produce a full-integer {mode} model:\n"
                f"{detail}\nLayers whose ops have no integer TFLite kernel must be "
                "replaced (tflite_export.tflm_ops lists what TFLM runs)."
            )
        how = (
            f"crashed with signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with code {proc.returncode}"
        )
        tail = "\n".join(proc.stderr.decode(errors="replace").strip().splitlines()[-8:])
        blame = (
            "Layers it has no tested conversion for: " + ", ".join(suspects) + ". "
            if suspects
            else ""
        )
        raise ConversionError(
            f"the TFLite converter {how} while converting the model to {mode}; the "
            f"calling process is unharmed. {blame}Replace or remove those layers "
            f"(tinycompress.recurrent lists the recurrent layers it exports).\n"
            f"Converter's last output:\n{tail}"
        )


def _log_cost(start: float, size: int) -> None:
    import logging

    logging.getLogger("tinycompress.convert").info(
        "child conversion took %.1f s, %d bytes", time.monotonic() - start, size
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


def main(job: str) -> int:
    """Child entry point: convert the job's SavedModel; exit 0, or 3 on an error."""
    try:
        model = _convert(job)
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ...
        with open(os.path.join(job, "error.txt"), "w", encoding="utf-8") as f:
            f.write(f"{type(e).__name__}: {e}")
        return 3
    with open(os.path.join(job, "model.tflite"), "wb") as f:
        f.write(model)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
