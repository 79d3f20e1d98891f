"""Keras 3 LSTM, GRU and SimpleRNN to full-integer TFLM models.

The trained models learn a task that needs memory: the class is the channel
with the largest sum over the first four of twelve steps; later steps are
noise. Exported models are run on TFLM and LiteRT and compared with the float
model on held-out sequences.
"""

from __future__ import annotations

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tinycompress import ConversionError, convert
from tinycompress.recurrent import for_export, unsupported_layers

STEPS, CHANNELS = 12, 3
#: TFLM's integer LSTM kernel and LiteRT's compute the gates with different
#: fixed-point arithmetic; on these models they differ by at most 2 LSB.
LSTM_MAX_LSB = 2
#: Unrolled recurrences feed each step's 1-LSB rounding differences (TANH,
#: LOGISTIC) back into the next step; measured up to 3 LSB (GRU) and 10 LSB
#: (two stacked SimpleRNNs) over 12 steps.
UNROLLED_MAX_LSB = 16
#: Accuracy an int8 export may lose against the float model on 300 sequences.
MAX_ACCURACY_LOSS = 0.04


def _task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, STEPS, CHANNELS)).astype("float32")
    return x, np.argmax(x[:, :4].sum(axis=1), axis=-1)


def _ops(model: bytes) -> list[str]:
    m = fb.unpack(model)
    return [fb.op_name(m.operatorCodes[op.opcodeIndex]) for op in m.subgraphs[0].operators]


def _build(kind: str):
    import keras

    layers = keras.layers
    recurrent = {
        "lstm": [layers.LSTM(16, name="lstm")],
        "stacked_lstm": [
            layers.LSTM(12, return_sequences=True, name="lstm_a"),
            layers.LSTM(12, go_backwards=True, return_sequences=True, name="lstm_b"),
            layers.Flatten(),
        ],
        "gru": [layers.GRU(16, name="gru")],
        "simplernn": [layers.SimpleRNN(16, return_sequences=True, name="rnn"), layers.SimpleRNN(16)],
    }[kind]
    return keras.Sequential([keras.Input((STEPS, CHANNELS)), *recurrent, layers.Dense(3)], name=kind)


@pytest.fixture(scope="module")
def trained():
    """kind -> (float model, float test accuracy, int8 TFLite bytes)."""
    import keras

    x, y = _task(1200, 0)
    cache = {}

    def get(kind: str):
        if kind not in cache:
            keras.utils.set_random_seed(0)
            model = _build(kind)
            model.compile(
                optimizer=keras.optimizers.Adam(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            model.fit(x, y, epochs=12, batch_size=32, verbose=0)
            xt, yt = _task(300, 1)
            acc = float(np.mean(np.argmax(model.predict(xt, verbose=0), -1) == yt))
            cache[kind] = (model, acc, convert(model, x[:200]))
        return cache[kind]

    return get


def _tflm_accuracy(tflite: bytes) -> float:
    xt, yt = _task(300, 1)
    return tflite_export.evaluate_accuracy(tflite, xt, yt)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "stacked_lstm"])
def test_lstm_is_one_fused_integer_op_per_layer_and_keeps_accuracy(kind, trained):
    model, float_acc, tflite = trained(kind)
    ops = _ops(tflite)
    assert ops.count("UNIDIRECTIONAL_SEQUENCE_LSTM") == (2 if kind == "stacked_lstm" else 1)
    assert "WHILE" not in ops and "UNPACK" not in ops
    m = fb.unpack(tflite)
    sg = m.subgraphs[0]
    for op in sg.operators:
        if fb.op_name(m.operatorCodes[op.opcodeIndex]) != "UNIDIRECTIONAL_SEQUENCE_LSTM":
            continue
        types = [fb.tensor_type_name(sg.tensors[i].type) if i >= 0 else None for i in op.inputs]
        assert types[0] == "INT8" and set(types[1:9]) == {"INT8"}  # input and gate weights
        assert types[19] == "INT16"  # cell state, as TFLM's integer kernel expects
        assert sg.tensors[op.inputs[18]].isVariable and sg.tensors[op.inputs[19]].isVariable
    assert tflite_export.find_problems(tflite) == []
    if kind == "lstm":  # per step: 4 gates x 16 cells x (3 inputs + 16 outputs), 3 x 16 products
        macs = STEPS * (4 * 16 * (CHANNELS + 16) + 3 * 16) + 16 * 3
        assert tflite_export.inspect(tflite, measure=False).macs == macs
    x, _ = _task(32, 2)
    report = tflite_export.verify(
        tflite, x, float_outputs=model.predict(x, verbose=0), max_lsb=LSTM_MAX_LSB
    )
    assert report.max_lsb_diff <= LSTM_MAX_LSB
    # Default verification (op by op, 1 LSB per requantization) accepts the model.
    default = tflite_export.verify(tflite, x)
    assert all(o.max_lsb_diff <= o.tolerance for o in default.ops if o.tolerance is not None)
    assert float_acc > 0.7  # the model learned the task
    assert _tflm_accuracy(tflite) >= float_acc - MAX_ACCURACY_LOSS


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["gru", "simplernn"])
def test_gru_and_simplernn_unroll_into_ops_tflm_runs(kind, trained):
    model, float_acc, tflite = trained(kind)
    allowed = {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "UNPACK", "PACK",
               "RESHAPE", "QUANTIZE"}
    assert set(_ops(tflite)) <= allowed
    assert tflite_export.find_problems(tflite) == []
    x, _ = _task(32, 2)
    report = tflite_export.verify(
        tflite, x, float_outputs=model.predict(x, verbose=0), max_lsb=UNROLLED_MAX_LSB
    )
    assert report.max_lsb_diff <= UNROLLED_MAX_LSB
    # Default verification (op by op, 1 LSB per requantization) accepts the model.
    default = tflite_export.verify(tflite, x)
    assert all(o.max_lsb_diff <= o.tolerance for o in default.ops if o.tolerance is not None)
    assert float_acc > 0.7  # the model learned the task
    assert _tflm_accuracy(tflite) >= float_acc - MAX_ACCURACY_LOSS


@pytest.mark.parametrize("kind", ["lstm", "stacked_lstm", "gru", "simplernn"])
@pytest.mark.parametrize("lstm", ["fused", "unrolled"])
def test_export_form_computes_what_the_model_computes(kind, lstm):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    model = _build(kind)
    exported = for_export(model, lstm=lstm)
    assert exported is not model
    x, _ = _task(2, 4)
    traced = tf.function(lambda a: exported(a))
    for i in range(2):
        np.testing.assert_allclose(traced(x[i : i + 1]), model(x[i : i + 1]), atol=1e-5)


def test_gru_variants_and_other_activations_unroll_exactly():
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((5, 2)),
        layers.GRU(4, reset_after=False, return_sequences=True, go_backwards=True),
        layers.LSTM(3, activation="relu", recurrent_activation="hard_sigmoid",
                    return_sequences=True),
        layers.SimpleRNN(3, activation="relu", use_bias=False),
    ])
    for layer in model.layers:  # non-zero biases, so a misplaced bias shows
        layer.set_weights([w + 0.1 for w in layer.get_weights()])
    x = np.random.default_rng(6).normal(size=(1, 5, 2)).astype("float32")
    exported = for_export(model)
    assert [layer.fused for layer in exported.layers] == [False, False, False]
    np.testing.assert_allclose(tf.function(lambda a: exported(a))(x), model(x), atol=1e-5)


def test_models_without_recurrent_layers_are_not_rebuilt():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert for_export(model) is model


def test_layers_we_cannot_export_are_refused_by_name_before_converting():
    import keras

    layers = keras.layers
    x_in = keras.Input((6, 2), batch_size=1)
    a = layers.Bidirectional(layers.LSTM(3), name="bidi")(x_in)
    b = layers.LSTM(3, stateful=True, name="streaming")(x_in)
    c = layers.GRU(3, return_state=True, name="with_state")(x_in)[0]
    d = layers.LSTM(3, name="masked")(layers.Masking(name="mask")(x_in))
    model = keras.Model(x_in, layers.Concatenate()([a, b, c, d]))
    found = unsupported_layers(model)
    assert sorted(f.split(" ")[0] for f in found) == ["'bidi'", "'mask'", "'streaming'", "'with_state'"]
    x = np.zeros((1, 6, 2), "float32")
    with pytest.raises(ConversionError, match="(?s)cannot be exported.*'bidi' \\(Bidirectional\\)"):
        convert(model, x)


def test_subclassed_model_with_recurrent_layers_is_refused():
    import keras

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = keras.layers.GRU(3, name="inner_gru")

        def call(self, x):
            return self.rnn(x)

    model = Net()
    model(np.zeros((1, 4, 2), "float32"))
    model.layers  # noqa: B018 - the walker finds tracked sublayers
    with pytest.raises(ConversionError, match="'inner_gru' \\(GRU\\).*functional API"):
        for_export(model)


@pytest.mark.slow
def test_firmware_of_a_stateful_model_checks_two_sequences():
    """An LSTM keeps its state in variable tensors: the firmware self-test gets two golden
    sequences, so a missing reset between them makes it fail (a stateless model gets one)."""
    import keras

    import tinycompress

    keras.utils.set_random_seed(0)
    x, _ = _task(64, 3)
    lstm = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.LSTM(4), keras.layers.Dense(2)])
    dense = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(2)])
    for model, samples in ((lstm, 2), (dense, 1)):
        result = tinycompress.build(model, x, target="cortex-m", verify_samples=4)
        assert [g.shape[0] for g in result.golden_inputs] == [samples]
        header = next(v for k, v in result.firmware.items() if k.endswith("_golden.h")).decode()
        assert f"_GOLDEN_SAMPLES {samples}\n" in header
