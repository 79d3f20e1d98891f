"""Clustering a recurrent layer's input and recurrent kernels: the shared values reach the
exported op's weight tensors, and LUT encoding keeps the saving on TFLM, bit-exactly."""

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tinycompress.clustering import SUPPORTED_LAYERS, ClusterWeights


def _weight_values(model: bytes, op_name: str) -> list[np.ndarray]:
    """The int8 constant inputs (2-D weight tensors) of every `op_name` operator."""
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    out = []
    for op in sg.operators:
        if fb.op_name(m.operatorCodes[op.opcodeIndex]) != op_name:
            continue
        for t in op.inputs:
            tensor = sg.tensors[t] if t >= 0 else None
            if tensor is None or len(tensor.shape) != 2 or tensor.type != 9:  # INT8
                continue
            data = m.buffers[tensor.buffer].data
            if data is not None and len(data):
                out.append(np.frombuffer(bytes(data), np.int8))
    return out


def test_recurrent_layers_are_clusterable_per_tensor():
    import keras

    assert {keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN} <= set(SUPPORTED_LAYERS)
    wrapper = ClusterWeights(keras.layers.LSTM(8), bits=2)
    wrapper(np.zeros((1, 5, 3), "float32"))
    kernel, recurrent = wrapper.clustered_values()
    assert kernel.shape == (3, 32) and recurrent.shape == (8, 32)
    assert len(np.unique(kernel)) <= 4 and len(np.unique(recurrent)) <= 4  # one table per tensor


@pytest.mark.slow
def test_clustered_lstm_exports_shared_values_and_lut_keeps_the_saving():
    import keras

    import tinycompress
    from tinycompress.clustering import cluster_weights

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 10, 6)).astype("float32")
    y = (x[:, :, :3].sum(axis=1).argmax(axis=-1)).astype("int32")
    model = keras.Sequential([keras.Input((10, 6)), keras.layers.LSTM(48, name="lstm"),
                              keras.layers.Dense(3, name="out")])
    clustered = cluster_weights(model, bits=4, layers=["lstm"])
    clustered.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clustered.fit(x, y, epochs=1, batch_size=32, verbose=0)
    prepared = tinycompress.prepare_for_export(clustered)
    plain = tinycompress.build(prepared, x)
    gates = _weight_values(plain.model, "UNIDIRECTIONAL_SEQUENCE_LSTM")
    assert len(gates) == 8  # input and recurrent weights of the four gates
    assert all(len(np.unique(g)) <= 16 for g in gates)  # at most 2**bits values per gate tensor
    encoded = tinycompress.build(prepared, x, encode="lut")
    assert len(encoded.model) < len(plain.model) - 4000  # 8 tensors at 4 of 8 bits each
    xq = tflite_export.quantize(x[:16], plain.model)
    np.testing.assert_array_equal(tflite_export.run_tflm(encoded.model, xq),
                                  tflite_export.run_tflm(plain.model, xq))
