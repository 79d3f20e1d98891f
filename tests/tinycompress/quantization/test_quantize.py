"""quantize_model placement, errors, save/reload, strip_qat, QATCallback, pruning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tinycompress.quantization import (
    ActivationQuantizer,
    QATCallback,
    QATConfig,
    QuantizationError,
    QuantizeWrapper,
    UnsupportedLayerError,
    fold_batchnorm,
    quantization_ranges,
    quantize_model,
    strip_qat,
)

from qat_topologies import TOPOLOGIES, blobs

L = keras.layers


def _placement(model: keras.Model) -> dict[str, bool]:
    """Wrapper name -> whether an ActivationQuantizer reads its output directly."""
    names = {l.name for l in model.layers if isinstance(l, ActivationQuantizer)}
    return {l.name: f"{l.name[len('quant_'):]}_quant" in names
            for l in model.layers if isinstance(l, QuantizeWrapper)}


def test_quantizers_sit_where_tflite_has_int8_tensors():
    keras.utils.set_random_seed(0)
    q = quantize_model(TOPOLOGIES["residual"]())
    # stem (relu) feeds Add and branch -> own range; branch feeds Add -> own range;
    # left / right feed Concatenate only -> they take its range.
    assert _placement(q) == {"quant_stem": True, "quant_branch": True,
                             "quant_left": False, "quant_right": False, "quant_head": True}
    quantizers = sorted(l.name for l in q.layers if isinstance(l, ActivationQuantizer))
    # Add is fused with the ReLU after it: one range, after the ReLU. The softmax
    # of the head is split off after the head's range.
    assert quantizers == ["branch_quant", "concat_quant", "gap_quant", "head_quant",
                          "image_quant", "relu_quant", "stem_quant"]
    assert isinstance(q.layers[-1], L.Softmax) and q.layers[-2].name == "head_quant"


def test_batchnorm_folded_separable_split_and_pools_share_ranges():
    keras.utils.set_random_seed(0)
    q = quantize_model(TOPOLOGIES["cnn"]())
    names = [l.name for l in q.layers]
    assert not any(isinstance(l, L.BatchNormalization) for l in q.layers)
    assert {"quant_sep_depthwise", "quant_sep"} <= set(names)
    # Conv2D/Depthwise are followed by ReLU layers: the range is taken after them.
    assert _placement(q) == {"quant_conv": False, "quant_dw": False, "quant_sep_depthwise": True,
                             "quant_sep": True, "quant_head": True}
    # AveragePooling re-uses the separable output's quantizer without updating it.
    sep = q.get_layer("sep_quant")
    assert len(sep._inbound_nodes) == 2
    pooled = sep._inbound_nodes[1].input_tensors[0]
    assert isinstance(pooled._keras_history.operation, L.AveragePooling2D)
    assert q.get_layer("quant_head").per_channel is False
    assert quantize_model(TOPOLOGIES["cnn"](), QATConfig(per_channel_dense=True)).get_layer(
        "quant_head").per_channel is True


def test_unsupported_layers_are_all_listed_before_training():
    x_in = keras.Input((10, 4))
    x = L.Bidirectional(L.LSTM(2, return_sequences=True), name="rnn")(x_in)
    x = L.LeakyReLU(name="leaky")(x)
    x = L.Conv1D(4, 3, activation="elu", name="elu_conv")(x)
    x = L.BatchNormalization(name="lonely_bn")(L.Add()([x, x]))
    x = L.Softmax(name="inner_softmax")(x)
    x = L.Flatten()(x)
    model = keras.Model(x_in, L.Dense(2)(x))
    with pytest.raises(UnsupportedLayerError) as info:
        quantize_model(model)
    msg = str(info.value)
    for name in ("'rnn' (Bidirectional)", "'leaky' (LeakyReLU)", "'elu_conv'", "activation 'elu'",
                 "'lonely_bn'", "cannot be folded", "'inner_softmax'", "model output"):
        assert name in msg
    assert "5 layer(s)" in msg


def test_unbuilt_sequential_is_refused():
    with pytest.raises(UnsupportedLayerError, match="keras.Input"):
        quantize_model(keras.Sequential([L.Dense(2)]))


def test_untrained_qat_model_equals_folded_float_within_int8_error():
    keras.utils.set_random_seed(0)
    model = TOPOLOGIES["conv1d"]()
    x, _ = blobs((20, 3), 4, 64)
    model(x)
    q = quantize_model(model)
    q(x, training=True)          # set ranges from this batch
    diff = np.abs(np.asarray(q(x)) - np.asarray(model(x)))
    span = np.ptp(np.asarray(model(x)))
    assert diff.max() < 0.1 * span
    stripped = strip_qat(q)
    np.testing.assert_allclose(stripped(x), fold_batchnorm(model)(x), rtol=1e-4, atol=1e-5)


def test_strip_leaves_only_keras_layers():
    keras.utils.set_random_seed(0)
    q = quantize_model(TOPOLOGIES["cnn"]())
    stripped = strip_qat(q)
    assert all(type(l).__module__.startswith("keras.") for l in stripped.layers)
    assert stripped.name == "cnn"
    assert [type(l).__name__ for l in stripped.layers].count("DepthwiseConv2D") == 2


@pytest.mark.slow
def test_qat_model_saves_and_reloads_with_ranges(tmp_path):
    keras.utils.set_random_seed(0)
    q = quantize_model(TOPOLOGIES["residual"]())
    x, y = blobs((10, 10, 3), 4, 64)
    q.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    q.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "qat.keras"
    q.save(path)
    r = keras.saving.load_model(path)
    assert quantization_ranges(r) == quantization_ranges(q)
    assert all(lo < 0 or hi > 0 for lo, hi in quantization_ranges(r).values())
    np.testing.assert_array_equal(np.asarray(r(x)), np.asarray(q(x)))


def test_callback_freezes_ranges():
    keras.utils.set_random_seed(0)
    q = quantize_model(keras.Sequential([keras.Input((6,)), L.Dense(4, activation="relu"),
                                         L.Dense(3)]))
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    q.compile(optimizer="adam", loss="mse")
    cb = QATCallback(freeze_after=2)
    q.fit(x[:16], np.zeros((16, 3)), batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    frozen = quantization_ranges(q)
    q.fit(x * 20, np.zeros((64, 3)), batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert quantization_ranges(q) == frozen
    with pytest.raises(QuantizationError, match="positive integer"):
        QATCallback(freeze_after=0)


@pytest.mark.slow
def test_pruned_weights_stay_zero_through_qat():
    from tinycompress.pruning import ConstantSparsity, PruningCallback

    keras.utils.set_random_seed(0)
    model = TOPOLOGIES["cnn"]()
    q = quantize_model(model)
    x, y = blobs((12, 12, 2), 4, 128)
    q.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = PruningCallback(ConstantSparsity(0.5, frequency=1), log_summary=False)
    q.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[cb])
    wrappers = [l for l in q.layers if isinstance(l, QuantizeWrapper)]
    assert len(wrappers) == 5
    for w in wrappers:
        kernel = np.asarray(w.get_prunable_weights()[0])
        assert 0.45 <= float(np.mean(kernel == 0)) <= 0.55, w.name
        fq = np.asarray(w._kernel())
        assert np.all(fq.reshape(-1)[kernel.reshape(-1) == 0] == 0)
