"""Full-integer post-training quantization with the TFLite converter.

The model is traced with a batch of one (a fixed batch removes the SHAPE /
STRIDED_SLICE / PACK ops a dynamic batch adds around ``Flatten`` and
``Reshape``); recurrent layers are rewritten into forms the converter turns
into TFLM ops (`tinycompress.recurrent`); the converter runs in a child
process (`tinycompress._convert_worker`), so a native crash becomes a
`ConversionError`, and quantizes weights to
int8 (per channel for convolutions; per tensor for Dense unless asked, since
per-channel Dense costs flash and persistent arena per output channel on TFLM)
and activations to int8 (or int16 in ``"int16x8"`` mode) from the
representative data. The result must pass `tflite_export.check_deployable`.

`convert` returns the converter's output as is. `tinycompress.export` (and
`tinycompress.build`) go on to slim it (`tflite_export.slim`, verified
bit-exact on TFLM), so ``inspect(convert(m))`` reports more flash than
``export(m)`` for the same model; ``inspect(tflite_export.slim(convert(m)).model)``
reports what ``export`` writes. The tensor names slimming drops are what
`tinycompress.layer_errors` needs, so `convert` keeps them.
"""

from __future__ import annotations

import logging

from tflite_export.checks import check_deployable
from tinycompress._convert_worker import run_converter
from tinycompress.data import prepare_samples
from tinycompress.errors import ArgumentError
from tinycompress.loading import LoadedModel, load_model

__all__ = ["MODES", "IO_DTYPES", "convert", "resolve_io_dtype"]

logger = logging.getLogger(__name__)

#: Quantization modes: int8 activations, or int16 activations with int8 weights.
MODES = ("int8", "int16x8")
#: Model input/output dtypes accepted per mode.
IO_DTYPES = {"int8": ("int8", "uint8", "float32"), "int16x8": ("int16", "float32")}


def resolve_io_dtype(mode: str, io_dtype: str | None) -> str:
    """Check ``mode`` and ``io_dtype`` and return the I/O dtype `convert` uses.

    Args:
        mode: one of `MODES`.
        io_dtype: one of ``IO_DTYPES[mode]``, or None for the mode's default
            (``"int8"``, or ``"int16"`` in int16x8 mode).

    Returns:
        The I/O dtype name.

    Raises:
        ArgumentError: unknown mode, or an I/O dtype the mode does not allow.

    Example:
        >>> resolve_io_dtype("int16x8", None)
        'int16'
    """
    if mode not in MODES:
        raise ArgumentError(f"expected mode in {MODES}. Received: mode={mode!r}.")
    io_dtype = io_dtype or ("int8" if mode == "int8" else "int16")
    if io_dtype not in IO_DTYPES[mode]:
        raise ArgumentError(
            f"expected io_dtype in {IO_DTYPES[mode]} for mode={mode!r}. "
            f"Received: io_dtype={io_dtype!r}."
        )
    return io_dtype


def _concrete_function(loaded: LoadedModel, samples):
    import tensorflow as tf

    # Zero-padded names keep the inputs in order in the SavedModel signature.
    specs = [
        tf.TensorSpec((1,) + tuple(s.shape[1:]), tf.float32, name=f"input_{i:03d}")
        for i, s in enumerate(samples[0])
    ]

    def fn(*xs):
        ys = loaded.call(list(xs))
        ys = list(ys.values()) if isinstance(ys, dict) else ys  # as LoadedModel.predict
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        # Zero-padded keys keep the outputs in the model's order: the converter
        # orders a SavedModel signature's outputs by key.
        return {f"output_{i:03d}": y for i, y in enumerate(ys)}

    return tf.function(fn).get_concrete_function(*specs)


def _exportable(loaded: LoadedModel) -> LoadedModel:
    """Refuse unexportable layers; rewrite recurrent ones (`tinycompress.recurrent`)."""
    if loaded.source != "keras":
        return loaded
    from tinycompress.recurrent import for_export  # imports Keras: only when converting

    rewritten = for_export(loaded.model)
    return loaded if rewritten is loaded.model else load_model(rewritten)


def convert(
    model,
    representative_data,
    *,
    io_dtype: str | None = None,
    mode: str = "int8",
    per_channel_dense: bool = False,
    allow_unsafe: bool = False,
) -> bytes:
    """Convert a Keras model to a full-integer TFLite model TFLM can run.

    Args:
        model: a Keras 3 / tf_keras model, a `LoadedModel`, or a path to a
            `.keras` file, `.h5` file or SavedModel directory.
        representative_data: calibration samples: a float array (samples
            first), a list of arrays (one per input), a `tf.data.Dataset` or a
            generator (see `tinycompress.data.prepare_samples`).
        io_dtype: dtype of the model's inputs and outputs. Default None:
            ``"int8"`` in int8 mode, ``"int16"`` in int16x8 mode. ``"uint8"``
            and ``"float32"`` add QUANTIZE/DEQUANTIZE ops at the edges.
        mode: ``"int8"`` (default) or ``"int16x8"`` (int16 activations, int8
            weights, for models that need the headroom).
        per_channel_dense: quantize Dense kernels per output channel. Default
            False (per tensor: fewer flash and arena bytes on TFLM).
        allow_unsafe: load saved models with Lambda/foreign layers. Default False.

    Returns:
        The `.tflite` flatbuffer bytes, not slimmed (see the module docstring).

    Raises:
        ArgumentError: unknown ``mode`` or an ``io_dtype`` the mode does not allow.
        DataError: the representative data does not fit the model.
        ConversionError: a layer cannot be exported (named, before converting),
            or the converter failed or crashed (the message names the op or
            the layers it has no tested conversion for).
        UnsupportedModelError: the result has float, hybrid, Flex or
            non-TFLM ops.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(100, 4)).astype("float32")
        >>> tflite = convert(m, x)
        >>> tflite[4:8]
        b'TFL3'
    """
    io_dtype = resolve_io_dtype(mode, io_dtype)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, allow_unsafe=allow_unsafe)
    samples = prepare_samples(representative_data, loaded.input_shapes)

    from tinycompress.recurrent import crash_suspects

    loaded = _exportable(loaded)
    concrete = _concrete_function(loaded, samples)
    # The converter is native code that can crash: it runs in a child process.
    tflite = run_converter(
        concrete,
        samples,
        {"mode": mode, "io_dtype": io_dtype, "per_channel_dense": per_channel_dense},
        suspects=crash_suspects(loaded.model),
    )
    check_deployable(tflite, float_io=io_dtype == "float32")
    logger.info("converted to %d bytes (%s, io %s)", len(tflite), mode, io_dtype)
    return tflite
