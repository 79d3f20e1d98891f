"""Pruning LSTM kernels: the zeros reach the fused op's weights and DECODE keeps the flash saving."""

import keras
import numpy as np
import pytest

import tinycompress
from tflite_export import _flatbuffer as fb
from tinycompress.pruning import ConstantSparsity, PruningCallback, is_prunable, prunable_weights, strip_pruning

L = keras.layers


def test_recurrent_layers_are_prunable_by_their_input_and_recurrent_kernels():
    for layer in (L.LSTM(4), L.GRU(4), L.SimpleRNN(4)):
        layer.build((None, 5, 3))
        assert is_prunable(layer)
        assert [v.name for v in prunable_weights(layer)] == ["kernel", "recurrent_kernel"]


@pytest.mark.slow
def test_pruned_lstm_weights_are_decode_encoded_and_verified_on_tflm():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((10, 8)), L.LSTM(32, name="lstm"), L.Dense(3, name="head")])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 10, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[
        PruningCallback(ConstantSparsity(0.5, frequency=2), layers="lstm")])
    result = tinycompress.build(strip_pruning(model), x[:100], encode="prune", verify_samples=8)

    m = fb.unpack(result.model)
    sg = m.subgraphs[0]
    codes = [m.operatorCodes[op.opcodeIndex] for op in sg.operators]
    names = [c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode or fb.op_name(c)
             for c in codes]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in names and "TFLM_DECODE" in names, names
    # The four 32x32 recurrent weight tensors are DECODE outputs now (the 32x8
    # input weights save less than DECODE's bookkeeping, so build leaves them).
    lstm = sg.operators[names.index("UNIDIRECTIONAL_SEQUENCE_LSTM")]
    decoded = {t for op, n in zip(sg.operators, names) if n == "TFLM_DECODE" for t in op.outputs}
    assert set(int(t) for t in lstm.inputs[5:9]) <= decoded
    encoding = result.encoding
    assert encoding.flash_after <= encoding.flash_before - 400      # flash saved (624 B measured)
    assert encoding.host_arena_after > encoding.host_arena_before  # decoded copies in the arena
    assert encoding.verified_samples > 0                            # bit-exact on TFLM
