"""Full-integer conversion of real models, verified on TFLM and LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tinycompress import ConversionError, convert
from tflite_export.errors import UnsupportedModelError

ALL_MODELS = ["cnn", "residual", "dwsep", "mlp", "conv1d"]


def _ops(model: bytes) -> list[str]:
    m = fb.unpack(model)
    return [fb.op_name(m.operatorCodes[op.opcodeIndex]) for op in m.subgraphs[0].operators]


def _types(model: bytes) -> set[str]:
    return {fb.tensor_type_name(t.type) for t in fb.unpack(model).subgraphs[0].tensors}


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_runs_on_tflm_like_litert_and_float(name, keras_models, converted):
    model, x = keras_models(name)
    tflite = converted(name)
    assert _types(tflite) <= {"INT8", "INT32"}
    ref = model.predict(x[:32], verbose=0)
    report = tflite_export.verify(tflite, x[:32], float_outputs=ref)
    assert report.max_lsb_diff <= 1
    scale = tflite_export.output_details(tflite)[0].scale
    assert report.max_abs_error <= 0.05 * float(ref.max() - ref.min()) + 2 * scale
    # argmax must agree wherever the float model's top-2 margin exceeds int8 noise
    y = tflite_export.dequantize(tflite_export.run_tflm(tflite, tflite_export.quantize(x[:32], tflite)), tflite)
    top2 = np.sort(ref, -1)
    confident = (top2[:, -1] - top2[:, -2]) > 4 * scale
    assert np.all(np.argmax(y, -1)[confident] == np.argmax(ref, -1)[confident])


def test_batch_is_fixed_so_flatten_needs_no_shape_ops(converted):
    ops = _ops(converted("cnn"))
    assert "SHAPE" not in ops and "PACK" not in ops and "STRIDED_SLICE" not in ops
    assert tflite_export.input_details(converted("cnn"))[0].shape == (1, 12, 12, 1)


def test_dense_is_per_tensor_by_default_and_per_channel_on_request(keras_models):
    model, x = keras_models("mlp")
    per_tensor = convert(model, x)
    per_channel = convert(model, x, per_channel_dense=True)

    def fc_weight_scales(b):
        m = fb.unpack(b)
        sg = m.subgraphs[0]
        return [len(sg.tensors[op.inputs[1]].quantization.scale) for op in sg.operators
                if fb.op_name(m.operatorCodes[op.opcodeIndex]) == "FULLY_CONNECTED"]

    assert fc_weight_scales(per_tensor) == [1, 1, 1]
    assert fc_weight_scales(per_channel) == [32, 16, 3]
    assert len(per_tensor) < len(per_channel)


@pytest.mark.parametrize("io_dtype, np_dtype", [("uint8", "uint8"), ("float32", "float32")])
def test_io_dtypes(io_dtype, np_dtype, keras_models):
    model, x = keras_models("cnn")
    tflite = convert(model, x, io_dtype=io_dtype)
    assert tflite_export.input_details(tflite)[0].dtype == np_dtype
    assert tflite_export.output_details(tflite)[0].dtype == np_dtype
    y = tflite_export.run_tflm(tflite, tflite_export.quantize(x[:4], tflite))
    ref = model.predict(x[:4], verbose=0)
    assert np.array_equal(np.argmax(tflite_export.dequantize(y, tflite), -1), np.argmax(ref, -1))


def test_int16x8_mode_has_int16_activations(keras_models):
    model, x = keras_models("cnn")
    tflite = convert(model, x, mode="int16x8")
    assert "INT16" in _types(tflite) and "FLOAT32" not in _types(tflite)
    assert tflite_export.input_details(tflite)[0].dtype == "int16"
    report = tflite_export.verify(tflite, x[:16], float_outputs=model.predict(x[:16], verbose=0))
    assert report.max_lsb_diff <= 1 and report.argmax_agreement == 1.0


def test_bad_mode_and_io_dtype_are_named(keras_models):
    model, x = keras_models("mlp")
    with pytest.raises(ValueError, match="mode="):
        convert(model, x, mode="int4")
    with pytest.raises(ValueError, match="io_dtype='int16'"):
        convert(model, x, io_dtype="int16")


def test_op_tflm_lacks_fails_clearly():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                              keras.layers.Activation("gelu"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(100, 8)).astype("float32")
    with pytest.raises(UnsupportedModelError, match=r"op 1 GELU: TFLM has no kernel"):
        convert(model, x)


def test_float_fallback_op_is_refused_naming_the_tensor():
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4),
                              keras.layers.Activation("elu"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(100, 8)).astype("float32")
    with pytest.raises(UnsupportedModelError, match=r"ELU: input tensor \d+ .* is FLOAT32"):
        convert(model, x)


def test_converter_failure_is_a_conversion_error():
    import keras

    class Erf(keras.layers.Layer):
        def call(self, x):
            import tensorflow as tf

            return tf.math.lgamma(x)

    model = keras.Sequential([keras.Input((4,)), Erf(), keras.layers.Dense(2)])
    x = np.random.default_rng(0).random((100, 4)).astype("float32") + 1
    with pytest.raises((ConversionError, UnsupportedModelError), match="(?i)lgamma|Lgamma|integer"):
        convert(model, x)
