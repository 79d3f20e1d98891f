"""TFLM vs LiteRT op by op: rounding is tolerated per op, drift is reported, a wrong op is named."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.errors import VerificationError
from tflite_export.op_models import op_tolerance, single_op_models

DATA = Path(__file__).with_name("data")


@pytest.fixture(scope="module")
def softmax_model():
    """A pruned digits CNN ending in softmax on which TFLM and LiteRT round differently.

    TFLM's reference FULLY_CONNECTED requantizes with two roundings, LiteRT's with
    one; a 1-LSB logit difference becomes 3 LSB after the softmax on sample 11.
    """
    return (DATA / "softmax_rounding.tflite").read_bytes(), np.load(DATA / "softmax_rounding_x.npy")


@pytest.fixture(scope="module")
def dense_tanh():
    """(tflite bytes, x, weights): Dense 10 -> 32 tanh -> 16 tanh -> 1, briefly trained.

    Converted with `tinycompress.convert` from the weights in ``dense_tanh.npz``
    and 200 calibration samples; on the first 32 samples TFLM and LiteRT end 2 LSB
    apart although every op alone differs by at most 1: the model the old
    end-to-end check refused.
    """
    data = np.load(DATA / "dense_tanh.npz")
    weights = [data[f"w{i}"] for i in range(6)]
    return (DATA / "dense_tanh_drift.tflite").read_bytes(), data["x"], weights


def _float_mlp(x, weights):
    k0, b0, k1, b1, k2, b2 = weights
    return np.tanh(np.tanh(x @ k0 + b0) @ k1 + b1) @ k2 + b2


def _ops(model):
    m = fb.unpack(model)
    return [fb.op_name(m.operatorCodes[op.opcodeIndex]) for op in m.subgraphs[0].operators]


def test_softmax_output_tolerance_follows_its_slope(softmax_model):
    model, _ = softmax_model
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    softmax = next(op for op in sg.operators if fb.op_name(m.operatorCodes[op.opcodeIndex]) == "SOFTMAX")
    s_in = sg.tensors[softmax.inputs[0]].quantization.scale[0]
    s_out = sg.tensors[softmax.outputs[0]].quantization.scale[0]
    gain = 0.5 * softmax.builtinOptions.beta * s_in / s_out  # largest total softmax slope
    assert tflite_export.output_tolerances(model) == [1 + math.ceil(gain)]
    assert tflite_export.output_tolerances(model, max_lsb=2) == [2 + math.ceil(2 * gain)]
    assert gain > 1
    index = _ops(model).index("SOFTMAX")
    assert op_tolerance(m, index, 1) == (1 + math.ceil(gain), "slope")


def test_drift_beyond_one_lsb_is_reported_not_refused(dense_tanh):
    model, x, _ = dense_tanh
    xq = tflite_export.quantize(x[:32], model)
    drift = np.abs(tflite_export.run_tflm(model, xq).astype(int)
                   - tflite_export.run_litert(model, xq).astype(int))
    assert drift.max() == 2 > tflite_export.output_tolerances(model)[0]  # the old check refused this
    report = tflite_export.verify(model, x[:32])
    assert report.max_lsb_diff == drift.max()
    assert report.lsb_diff_at == (int(np.argmax(drift[:, 0])), 0, 0)
    assert [o.opcode for o in report.ops] == _ops(model)
    assert all(o.max_lsb_diff <= o.tolerance for o in report.ops)
    assert report.max_op_lsb_diff == 1


def test_each_op_is_held_to_its_own_rule(softmax_model):
    model, x = softmax_model
    report = tflite_export.verify(model, x)
    rules = {o.opcode: (o.rule, o.tolerance) for o in report.ops}
    assert rules["MAX_POOL_2D"] == ("exact", 0) and rules["RESHAPE"] == ("exact", 0)
    assert rules["CONV_2D"] == ("requantized", 1) and rules["FULLY_CONNECTED"] == ("requantized", 1)
    assert rules["SOFTMAX"][0] == "slope" and rules["SOFTMAX"][1] > 1
    assert report.max_lsb_diff == 3  # sample 11: a 1-LSB logit moved by the softmax
    assert report.ops[-1].output == "Identity" and report.ops[-1].tensor == tflite_export.output_details(model)[0].index


def test_a_zero_tolerance_refuses_rounding_and_names_the_op_and_the_fix(softmax_model):
    model, x = softmax_model
    fc = _ops(model).index("FULLY_CONNECTED")
    with pytest.raises(VerificationError, match=(
            rf"^op {fc} FULLY_CONNECTED \(output tensor \d+ 'digits_cnn_1/fc1_1/MatMul.*'\): "
            r"TFLM and LiteRT disagree by 1 LSB \(more than the 0 tolerated.*same input "
            r"tensors.*verify_max_lsb")):
        tflite_export.verify(model, x, max_lsb=0)


def _shift_bias(model: bytes, op_index: int, lsb: int) -> bytes:
    """A copy whose op ``op_index`` adds ``lsb`` output LSBs through its int32 bias."""
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    op = sg.operators[op_index]
    scale = lambda t: float(sg.tensors[int(t)].quantization.scale[0])  # noqa: E731
    step = round(lsb * scale(op.outputs[0]) / (scale(op.inputs[0]) * scale(op.inputs[1])))
    buf = m.buffers[sg.tensors[int(op.inputs[2])].buffer]
    bias = np.frombuffer(bytes(bytearray(buf.data)), np.int32) + np.int32(step)
    buf.data = np.frombuffer(bias.tobytes(), np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("op_index", [2, 4])
def test_an_op_whose_kernels_disagree_is_refused_by_name(dense_tanh, monkeypatch, op_index):
    model, x, _ = dense_tanh
    wrong = _shift_bias(model, op_index, 5)
    # LiteRT runs each op from the copy whose bias is off by 5 LSB; TFLM runs the model.
    monkeypatch.setattr(sys.modules["tflite_export.verify"], "single_op_models", lambda _ref: single_op_models(wrong))
    out = fb.unpack(model).subgraphs[0].operators[op_index].outputs[0]
    with pytest.raises(VerificationError, match=(
            rf"^op {op_index} FULLY_CONNECTED \(output tensor {out} '.+'\): TFLM and LiteRT "
            r"disagree by [4-6] LSB \(more than the 1 tolerated, rule 'requantized'\)")):
        tflite_export.verify(model, x[:8])


def test_single_op_models_reproduce_tflm_bit_exactly(softmax_model, mixed_model):
    for model, x in [softmax_model, (mixed_model[1], np.random.default_rng(0).random((1, 4, 4, 2)))]:
        ops = single_op_models(model)
        assert all(o.model is not None for o in ops)
        tensors = {t for o in ops for t in (*o.inputs, *o.outputs)}
        values = tflite_export.tflm_tensors(model, tflite_export.quantize(x[:1], model), sorted(tensors))
        for o in ops:
            details = tflite_export.input_details(o.model)
            feeds = [values[t].reshape(d.shape) for t, d in zip(o.inputs, details)]
            got = tflite_export.run_tflm(o.model, feeds if len(feeds) > 1 else feeds[0])
            assert np.array_equal(np.asarray(got).reshape(-1), values[o.outputs[0]].reshape(-1)), o.opcode
    assert {"ADD", "TRANSPOSE_CONV", "MEAN"} <= {o.opcode for o in single_op_models(mixed_model[1])}


def test_outputs_that_are_values_get_absolute_errors_not_argmax(dense_tanh):
    model, x, weights = dense_tanh
    ref = _float_mlp(x[:32], weights)
    report = tflite_export.verify(model, x[:32], float_outputs=ref)
    (out,) = report.outputs
    assert out.task == "regression" and out.argmax_agreement is None and report.argmax_agreement is None
    y = tflite_export.dequantize(tflite_export.run_tflm(model, tflite_export.quantize(x[:32], model)), model)
    err = np.abs(y - ref.astype(np.float32))
    assert report.max_abs_error == pytest.approx(float(err.max()), rel=1e-6)
    assert report.mean_abs_error == pytest.approx(float(err.mean()), rel=1e-5)
    assert report.max_abs_error < 0.05 * float(ref.max() - ref.min())
    assert out.float_range == pytest.approx((float(ref.min()), float(ref.max())))
    forced = tflite_export.verify(model, x[:32], float_outputs=ref, task="classification")
    assert forced.outputs[0].task == "classification"


def test_which_outputs_are_class_scores(softmax_model, dense_tanh):
    assert tflite_export.output_tasks(softmax_model[0]) == ["classification"]  # softmax
    assert tflite_export.output_tasks(tflite_export.testing.tiny_model()) == ["classification"]  # logits
    assert tflite_export.output_tasks(dense_tanh[0]) == ["regression"]  # one value
    assert tflite_export.output_tasks(dense_tanh[0], "classification") == ["classification"]
    with pytest.raises(ValueError, match=r"task in .*Received: task='scores'"):
        tflite_export.verify(dense_tanh[0], dense_tanh[1][:2], task="scores")


def test_report_serializes_and_renders_every_op(dense_tanh):
    model, x, weights = dense_tanh
    report = tflite_export.verify(model, x[:8], float_outputs=_float_mlp(x[:8], weights))
    d = json.loads(json.dumps(report.to_dict()))
    assert [o["opcode"] for o in d["ops"]] == _ops(model) and d["outputs"][0]["task"] == "regression"
    md = report.to_markdown()
    assert md.startswith("## Verification") and md.count("| FULLY_CONNECTED |") == 3
    assert "drift" in report.summary() and "abs error vs float" in report.summary()


def test_a_slimmed_model_is_checked_through_its_named_original(dense_tanh):
    model, x, _ = dense_tanh
    slimmed = tflite_export.slim(model).model
    plain = tflite_export.verify(slimmed, x[:32])
    assert plain.ops[0].output.startswith("tensor ")  # slimming drops names
    named = tflite_export.verify(slimmed, x[:32], litert_model=model)
    assert named.ops[0].output == tflite_export.verify(model, x[:8]).ops[0].output
    assert named.max_lsb_diff == plain.max_lsb_diff == 2
    assert plain.outputs[0].name == "" and named.outputs[0].name == "Identity"


def _export_and_check(model, x, tmp_path, n_ops):
    from tinycompress.export import export

    result = export(model, x, tmp_path / "out")  # default options
    v = result.verification
    assert len(v.ops) == n_ops and all(o.max_lsb_diff <= o.tolerance for o in v.ops)
    assert v.outputs[0].task == "regression" and v.argmax_agreement is None
    assert "| FULLY_CONNECTED |" in (tmp_path / "out" / "report.md").read_text()
    assert all(o.output and not o.output.startswith("tensor ") for o in v.ops)  # named
    return v


@pytest.mark.slow
def test_the_dense_tanh_model_exports_with_default_options(dense_tanh, tmp_path):
    import keras

    _, x, weights = dense_tanh
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, activation="tanh"),
                              keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(1)])
    model.set_weights(weights)
    v = _export_and_check(model, x, tmp_path, 5)
    assert v.max_lsb_diff == 2
    assert v.max_abs_error < 0.05 * float(np.ptp(_float_mlp(x[:32], weights)))


def _log_mel_frames(n: int, seed: int) -> np.ndarray:
    """Spectrum-like inputs: 5 frames x 128 mel bins of a machine sound in dB/10."""
    rng = np.random.default_rng(seed)
    mel = np.arange(128)
    base = -3.0 - 0.02 * mel + 0.8 * np.exp(-((mel - 20) / 6.0) ** 2) + 0.5 * np.exp(-((mel - 60) / 4.0) ** 2)
    x = base + rng.normal(0, 0.15, (n, 5, 128)) + rng.normal(0, 0.3, (n, 1, 1))
    return x.reshape(n, 640).astype("float32")


@pytest.mark.slow
def test_the_mlperf_tiny_anomaly_autoencoder_exports_with_default_options(tmp_path):
    """MLPerf Tiny's ad01 architecture (mlcommons/tiny, seeded weights): 10 FULLY_CONNECTED."""
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((640,))]
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        layers += [keras.layers.Dense(units), keras.layers.BatchNormalization(), keras.layers.ReLU()]
    model = keras.Sequential([*layers, keras.layers.Dense(640)])
    x = _log_mel_frames(200, seed=0)
    v = _export_and_check(model, x, tmp_path, 10)
    assert v.max_lsb_diff >= 2  # what the end-to-end check refused
    assert v.max_abs_error is not None and v.mean_abs_error <= v.max_abs_error


def test_every_test_model_passes_with_the_default_tolerance(conv_model, pruned_dense_model, mixed_model):
    rng = np.random.default_rng(0)
    for model, shape in [(conv_model[1], (8, 8, 3)), (pruned_dense_model[1], (10,)),
                         (mixed_model[1], (4, 4, 2)), (tflite_export.testing.tiny_model(), (4,))]:
        report = tflite_export.verify(model, rng.random((8, *shape)).astype(np.float32))
        assert [o.opcode for o in report.ops] == _ops(model)
        assert all(o.rule != "not checked" and o.max_lsb_diff <= o.tolerance for o in report.ops)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "residual", "dwsep", "mlp", "conv1d"])
def test_every_suite_model_exports_with_default_options(name, keras_models, tmp_path):
    from tinycompress.export import export

    model, x = keras_models(name)
    v = export(model, x, tmp_path / name).verification
    assert v.ops and all(o.rule != "not checked" and o.max_lsb_diff <= o.tolerance for o in v.ops)
    # Untrained: near-uniform scores, so the argmax is noise; the error is not.
    assert v.outputs[0].task == "classification" and v.argmax_agreement is not None
    assert v.max_abs_error < 0.05 * max(1.0, float(np.ptp(v.outputs[0].float_range)))


def test_an_op_that_cannot_run_alone_says_why():
    m = fb.unpack(tflite_export.testing.tiny_model())
    m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = fb.schema.BuiltinOperator.CUSTOM
    m.operatorCodes[0].customCode = "MY_OP"
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    ops = single_op_models(bytes(builder.Output()))
    assert all(o.model is None and "custom op MY_OP" in o.reason for o in ops)


@pytest.mark.slow
def test_float_outputs_are_compared_on_the_dequantized_grid(keras_models):
    from tinycompress import convert

    model, x = keras_models("cnn")
    tflite = convert(model, x, io_dtype="float32")
    report = tflite_export.verify(tflite, x[:16], float_outputs=model.predict(x[:16], verbose=0))
    assert _ops(tflite)[-1] == "DEQUANTIZE" and report.ops[-1].max_lsb_diff == 0
    assert report.max_lsb_diff <= 1 and report.outputs[0].task == "classification"


def _many_ops_model():
    """Keras model whose int8 conversion uses 16 kinds of op TFLM runs."""
    import keras

    layers = keras.layers
    keras.utils.set_random_seed(0)
    x_in = keras.Input((8, 8, 3))
    a = layers.Conv2D(8, 3, padding="same")(x_in)
    gated = layers.Multiply()([layers.LeakyReLU(0.1)(a), layers.Activation("sigmoid")(a)])
    b = layers.Subtract()([layers.Activation("hard_swish")(a), gated])
    c = layers.Concatenate()([b, layers.Conv2D(4, 1)(x_in)])
    up = layers.UpSampling2D(2, interpolation="bilinear")(c)
    near = layers.Resizing(16, 16, interpolation="nearest")(c)
    d = layers.Add()([layers.AveragePooling2D(2)(up), layers.MaxPooling2D(2)(near)])
    e = layers.Conv2D(8, 3, activation="relu6")(layers.ZeroPadding2D(1)(d))
    f = layers.ReLU()(layers.Activation("tanh")(layers.BatchNormalization()(e)))
    g = layers.Reshape((64, 12))(layers.Conv2D(12, 1)(f))
    out = layers.Dense(6, activation="softmax")(layers.GlobalMaxPooling1D()(g))
    model = keras.Model(x_in, out)
    bn = next(layer for layer in model.layers if isinstance(layer, layers.BatchNormalization))
    bn.set_weights([np.full(8, v, np.float32) for v in (1.5, 0.2, 0.1, 2.0)])
    return model


@pytest.mark.slow
def test_every_kind_of_op_agrees_within_its_default_tolerance():
    from tinycompress import convert

    model = _many_ops_model()
    x = np.random.default_rng(0).normal(size=(200, 8, 8, 3)).astype(np.float32)
    tflite = convert(model, x)
    report = tflite_export.verify(tflite, x[:32], float_outputs=model.predict(x[:32], verbose=0))
    assert {"LOGISTIC", "HARD_SWISH", "LEAKY_RELU", "MUL", "SUB", "CONCATENATION", "RESIZE_BILINEAR",
            "RESIZE_NEAREST_NEIGHBOR", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD", "TANH", "RELU",
            "REDUCE_MAX", "SOFTMAX", "RESHAPE"} <= {o.opcode for o in report.ops}
    assert all(o.rule != "not checked" and o.max_lsb_diff <= o.tolerance for o in report.ops)


def test_a_model_that_is_not_an_exact_rewrite_of_its_original_is_refused(dense_tanh):
    model, x, _ = dense_tanh
    with pytest.raises(VerificationError, match=r"output 0 .* differently from litert_model"):
        tflite_export.verify(_shift_bias(model, 4, 3), x[:8], litert_model=model)
