"""Full-integer post-training quantization with the TFLite converter.

The model is traced with a batch of one (a fixed batch removes the SHAPE /
STRIDED_SLICE / PACK ops a dynamic batch adds around ``Flatten`` and
``Reshape``), its variables are frozen, and the converter quantizes weights to
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
import warnings
from collections.abc import Iterable

from tflite_export.checks import check_deployable
from tinycompress.data import prepare_samples
from tinycompress.errors import ArgumentError, ConversionError
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
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    specs = [
        tf.TensorSpec((1,) + tuple(s.shape[1:]), tf.float32, name=f"input_{i}")
        for i, s in enumerate(samples[0])
    ]

    def fn(*xs):
        return loaded.call(list(xs))

    concrete = tf.function(fn).get_concrete_function(*specs)
    return convert_variables_to_constants_v2(concrete)


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
        ConversionError: the converter failed (the message names the op).
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

    import tensorflow as tf

    concrete = _concrete_function(loaded, samples)
    absl_logger = logging.getLogger("absl")
    absl_level = absl_logger.level
    # The frozen function has no variables, so the converter's advice to pass a
    # trackable object (and its note on input statistics) does not apply.
    absl_logger.setLevel(logging.ERROR)
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    finally:
        absl_logger.setLevel(absl_level)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative() -> Iterable:
        yield from samples

    converter.representative_dataset = representative
    if mode == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    else:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    tf_dtype = {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io_dtype]
    converter.inference_input_type = tf_dtype
    converter.inference_output_type = tf_dtype
    converter._experimental_disable_per_channel_quantization_for_dense_layers = (  # noqa: SLF001
        not per_channel_dense
    )
    try:
        absl_logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            tflite = bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError, RuntimeError, ...
        detail = "\n".join(
            line for line in str(e).splitlines() if "error" in line.lower() or "op" in line.lower()
        )[:2000] or str(e)[:2000]
        raise ConversionError(
            f"the TFLite converter could not produce a full-integer {mode} model:\n{detail}\n"
            "Layers whose ops have no integer TFLite kernel must be replaced "
            "(tflite_export.tflm_ops lists what TFLM runs)."
        ) from e
    finally:
        absl_logger.setLevel(absl_level)
    check_deployable(tflite, float_io=io_dtype == "float32")
    logger.info("converted to %d bytes (%s, io %s)", len(tflite), mode, io_dtype)
    return tflite
