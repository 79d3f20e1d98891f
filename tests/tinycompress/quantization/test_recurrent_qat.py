"""QAT of sigmoid/tanh and of LSTM/GRU/SimpleRNN: placement, reload, TFLM faithfulness, pruning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tflite_export import _flatbuffer as fb
from tflite_export.checks import find_problems
from tflite_export.io_details import dequantize, quantize
from tflite_export.runtime import run_tflm
from tinycompress import convert
from tinycompress.quantization import (
    FixedRangeQuantizer,
    QATCallback,
    QuantizeRecurrent,
    int8_scale,
    quantization_ranges,
    quantize_model,
    strip_qat,
)

from qat_topologies import blobs

L = keras.layers
MIN_AGREEMENT = 0.99   # as test_faithfulness
STEPS, CHANNELS = 12, 3


def _recurrent(kind: str) -> keras.Model:
    rnn = {"lstm": L.LSTM(8, name="rnn"), "gru": L.GRU(8, name="rnn"),
           "simplernn": L.SimpleRNN(8, name="rnn")}[kind]
    return keras.Sequential([keras.Input((STEPS, CHANNELS)), rnn,
                             L.Dense(8, activation="tanh", name="mid"), L.Dense(4, name="head")],
                            name=kind)


def _fit(model, x, y, lr: float, epochs: int) -> None:
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)


def _tensors(tflite: bytes, op_name: str):
    """(model, subgraph, ops named `op_name`)."""
    m = fb.unpack(tflite)
    sg = m.subgraphs[0]
    return m, sg, [op for op in sg.operators if fb.op_name(m.operatorCodes[op.opcodeIndex]) == op_name]


def test_sigmoid_and_tanh_are_split_off_onto_tflite_fixed_grids():
    x_in = keras.Input((6,))
    x = L.Dense(5, activation="sigmoid", name="gate")(x_in)
    x = L.Dense(4, name="pre")(x)
    model = keras.Model(x_in, L.Activation("tanh", name="act")(x))
    q = quantize_model(model)
    names = [(type(l).__name__, l.name) for l in q.layers][3:]
    assert names == [("ActivationQuantizer", "gate_quant"), ("Activation", "gate_sigmoid"),
                     ("FixedRangeQuantizer", "gate_sigmoid_quant"), ("QuantizeWrapper", "quant_pre"),
                     ("ActivationQuantizer", "pre_quant"), ("Activation", "act"),
                     ("FixedRangeQuantizer", "act_quant")]
    x = np.random.default_rng(0).normal(size=(16, 6)).astype("float32") * 4
    y = np.asarray(q(x))
    np.testing.assert_array_equal(y * 128, np.round(y * 128))          # TANH: scale 1/128
    assert y.min() >= -1.0 and y.max() <= 127 / 128
    gate = np.asarray(keras.Model(q.inputs, q.get_layer("gate_sigmoid_quant").output)(x))
    np.testing.assert_array_equal(gate * 256, np.round(gate * 256))    # LOGISTIC: scale 1/256
    stripped = strip_qat(q)
    assert not any(isinstance(l, FixedRangeQuantizer) for l in stripped.layers)
    np.testing.assert_allclose(stripped(x), model(x), atol=1e-6)


def test_recurrent_layers_are_wrapped_with_their_state_range_and_reload(tmp_path):
    keras.utils.set_random_seed(0)
    q = quantize_model(_recurrent("gru"))
    wrapper = q.get_layer("quant_rnn")
    assert isinstance(wrapper, QuantizeRecurrent)
    assert "rnn_quant" in quantization_ranges(q)          # the state range, owned by the wrapper
    x, y = blobs((STEPS, CHANNELS), 4, 64, seed=1)
    q.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    q.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[QATCallback(freeze_after=2)])
    assert float(keras.ops.convert_to_numpy(wrapper.state_quantizer.frozen)) == 1.0
    lo, hi = wrapper.state_quantizer.range
    assert -1.0 <= lo < 0 < hi <= 1.0                     # a GRU state lies in (-1, 1)
    path = tmp_path / "gru_qat.keras"
    q.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), q.predict(x, verbose=0), atol=1e-6)
    # The state is int8 over the trained range: every output is on that grid
    # (nudged, as TF does, so that 0 is on it).
    h = np.asarray(keras.Model(q.inputs, wrapper.output)(x))
    steps = h / int8_scale(lo, hi)
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    # A tanh SimpleRNN's state is TANH's output: TFLite fixes its range.
    assert quantize_model(_recurrent("simplernn")).get_layer("quant_rnn").state_quantizer is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru", "simplernn"])
def test_tflm_model_agrees_with_recurrent_qat_model(kind):
    keras.utils.set_random_seed(0)
    x, y = blobs((STEPS, CHANNELS), 4, 600, seed=1)
    x_test, _ = blobs((STEPS, CHANNELS), 4, 300, seed=2)
    model = _recurrent(kind)
    _fit(model, x, y, 3e-3, 3)
    keras.utils.set_random_seed(1)
    qat = quantize_model(model)
    _fit(qat, x, y, 1e-3, 1)
    tflite = convert(qat, x[:100])
    assert find_problems(tflite) == []
    y_keras = np.asarray(qat.predict(x_test, verbose=0))
    y_tflm = dequantize(run_tflm(tflite, quantize(x_test, tflite)), tflite)
    agreement = float(np.mean(y_keras.argmax(-1) == y_tflm.argmax(-1)))
    assert agreement >= MIN_AGREEMENT, f"{kind}: argmax agreement {agreement:.3f}"

    m, sg, tanh_ops = _tensors(tflite, "TANH")
    for op in tanh_ops:      # the split-off tanh (and the unrolled cells') on TFLite's grid
        qp = sg.tensors[op.outputs[0]].quantization
        assert (float(qp.scale[0]), int(qp.zeroPoint[0])) == (1 / 128, 0)
    rnn = qat.get_layer("quant_rnn")
    if kind == "lstm":
        # The fused op's eight weight tensors are the trained per-gate int8 grids.
        _, weights, _ = rnn.recurrent_export()
        (op,) = _tensors(tflite, "UNIDIRECTIONAL_SEQUENCE_LSTM")[2]
        for k, t in enumerate(op.inputs[1:9]):
            tensor = sg.tensors[t]
            q = np.frombuffer(bytes(m.buffers[tensor.buffer].data), np.int8).reshape(tensor.shape)
            grid = weights[k // 4][:, (k % 4) * 8:(k % 4 + 1) * 8].T
            np.testing.assert_allclose(q * tensor.quantization.scale[0], grid, rtol=1e-5, atol=1e-7)
    elif kind == "gru":
        # Every step's state tensor has the trained state range.
        lo, hi = rnn.state_quantizer.range
        scales = [float(t.quantization.scale[0]) for t in sg.tensors
                  if t.quantization is not None and t.quantization.scale is not None
                  and len(t.quantization.scale) == 1]
        assert sum(abs(s - int8_scale(lo, hi)) < 1e-6 * s for s in scales) >= STEPS


@pytest.mark.slow
def test_pruned_qat_lstm_keeps_its_zeros_in_the_fused_op_and_builds():
    from tinycompress import build, pruning
    from tinycompress.core import prepare_for_export

    keras.utils.set_random_seed(0)
    x, y = blobs((STEPS, CHANNELS), 4, 300, seed=1)
    model = _recurrent("lstm")
    _fit(model, x, y, 3e-3, 2)
    qat = quantize_model(model)
    config = pruning.PruningConfig(pruning.ConstantSparsity(0.5, frequency=5), layers="quant_rnn")
    qat.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0,
            callbacks=pruning.callbacks(config, log_summary=False))
    result = build(prepare_for_export(qat), x[:100], verify_samples=8)   # verified on TFLM
    m, sg, (op,) = _tensors(result.model, "UNIDIRECTIONAL_SEQUENCE_LSTM")
    q = np.concatenate([np.frombuffer(bytes(m.buffers[sg.tensors[t].buffer].data), np.int8)
                        for t in op.inputs[1:9]])
    assert q.size == 4 * 8 * (CHANNELS + 8)
    assert np.mean(q == 0) >= 0.5
