"""Export a Keras model as a verified int8 TFLM model, C sources and a report.

`export` is `write(build(...))`: `tinycompress.build` converts, slims, encodes,
verifies, measures and renders in memory; `tinycompress.write` puts the result
on disk in one atomic step. The output directory is checked first, so an
unusable ``out_dir`` fails in milliseconds rather than after the conversion;
a failure leaves nothing half-written, and an existing ``out_dir`` is only
replaced when ``overwrite=True`` and it is a previous export.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tflite_export.progress import Progress, report
from tflite_export.verify import DEFAULT_MAX_LSB
from tinycompress.build import DEFAULT_VERIFY_SAMPLES, build, check_build_arguments
from tinycompress.result import ExportResult
from tinycompress.write import check_out_dir, write

__all__ = ["ExportResult", "export", "DEFAULT_VERIFY_SAMPLES"]


def export(
    model,
    representative_data,
    out_dir: str | Path,
    *,
    name: str = "model",
    io_dtype: str | None = None,
    mode: str = "int8",
    per_channel_dense: bool = False,
    slim: bool = True,
    verify_samples: int = DEFAULT_VERIFY_SAMPLES,
    verify_max_lsb: int = DEFAULT_MAX_LSB,
    layer_errors: bool = False,
    lut: bool | str | list[int] | Callable = False,
    encode: bool | str | Sequence[str] = False,
    encode_arena_budget: int | None = None,
    encode_min_bytes: int = 256,
    language: str = "c++",
    target: str | None = None,
    device=None,
    overwrite: bool = False,
    allow_unsafe: bool = False,
    progress: Progress | None = None,
) -> ExportResult:
    """Convert, verify, measure and write a model for TFLM.

    Args:
        model: a Keras 3 / tf_keras model or a path (see `load_model`).
        representative_data: calibration samples (see `convert`); the first
            ``verify_samples`` are also used for verification.
        out_dir: directory to create.
        name, io_dtype, mode, per_channel_dense, slim, verify_samples,
            verify_max_lsb, layer_errors, lut, encode, encode_arena_budget,
            encode_min_bytes, language, allow_unsafe: see
            `tinycompress.build`.
        target: also write a firmware project (``cmake``, ``cortex-m``,
            ``arduino``, ``zephyr``, ``esp-idf``) under ``firmware/``, whose
            self-test feeds every model input and checks every output. Default None.
        device: also estimate cycles, ms and µJ per layer and in total on this
            microcontroller (a `tflite_export.DEVICES` name or a
            `tflite_export.Device`); report.json and report.md show them,
            labelled as estimates with their error. Default None.
        overwrite: replace an existing ``out_dir`` written by a previous export
            (it holds the marker file `tinycompress.write.MARKER`). Default False.
        progress: a `tflite_export.Progress` callback (see `tinycompress.build`;
            ``tflite_export.print_progress`` prints the stages). Default None.

    Returns:
        An `ExportResult`.

    Raises:
        ExportError: ``out_dir`` is unusable, exists (without ``overwrite``) or
            is not a previous export; checked before any conversion.
        ArgumentError: a bad argument value; checked before any conversion.
        TinyCompressError: any stage refused the model or data; nothing is written.

    Example:
        >>> import keras, numpy as np, tempfile
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     r = export(m, x, f"{d}/out", verify_samples=4)
        ...     r.files[:2], (r.out_dir / "model.tflite").read_bytes() == r.model
        (['model.tflite', 'model_data.cc'], True)
    """
    check_build_arguments(name=name, mode=mode, io_dtype=io_dtype, language=language,
                          target=target, verify_samples=verify_samples, device=device)
    check_out_dir(out_dir, overwrite=overwrite)
    result = build(
        model, representative_data, name=name, io_dtype=io_dtype, mode=mode,
        per_channel_dense=per_channel_dense, slim=slim, verify_samples=verify_samples,
        verify_max_lsb=verify_max_lsb, layer_errors=layer_errors, lut=lut, encode=encode,
        encode_arena_budget=encode_arena_budget, encode_min_bytes=encode_min_bytes, language=language,
        target=target, device=device, allow_unsafe=allow_unsafe, progress=progress,
    )
    report(progress, "writing model, C sources and report", 0, 0)
    return write(result, out_dir, overwrite=overwrite)
