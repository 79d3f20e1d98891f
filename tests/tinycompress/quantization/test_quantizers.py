"""ActivationQuantizer ranges, fake_quant_kernel grids, QATConfig values."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tinycompress.quantization import (
    ActivationQuantizer,
    QATConfig,
    QuantizationError,
    fake_quant_kernel,
    int8_scale,
)


def _grid_index(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scale = int8_scale(lo, hi)
    zero = round(-lo / scale)
    return y / scale + zero


def test_first_batch_sets_range_then_moving_average():
    q = ActivationQuantizer(ema_decay=0.9)
    q(np.array([[-1.0, 0.5, 3.0]], "float32"), training=True)
    assert q.range == pytest.approx((-1.0, 3.0))
    q(np.array([[0.5, 1.0, 13.0]], "float32"), training=True)   # batch min widened to 0
    assert q.range == pytest.approx((-0.9, 0.9 * 3.0 + 0.1 * 13.0), rel=1e-6)


def test_inference_and_update_false_leave_range_and_output_lies_on_grid():
    q = ActivationQuantizer()
    q(np.linspace(-2, 5, 50, dtype="float32")[None], training=True)
    lo, hi = q.range
    x = np.random.default_rng(0).uniform(-4, 8, (1, 200)).astype("float32")
    y = np.asarray(q(x, training=False))
    q(x * 10, training=True, update=False)
    assert q.range == (lo, hi)
    idx = _grid_index(y, lo, hi)
    np.testing.assert_allclose(idx, np.round(idx), atol=1e-3)
    assert idx.min() >= -1e-3 and idx.max() <= 255 + 1e-3


def test_frozen_quantizer_keeps_its_range():
    q = ActivationQuantizer()
    q(np.array([[-1.0, 1.0]], "float32"), training=True)
    q.freeze()
    q(np.array([[-50.0, 50.0]], "float32"), training=True)
    assert q.range == pytest.approx((-1.0, 1.0))
    q.freeze(False)
    q(np.array([[-50.0, 50.0]], "float32"), training=True)
    assert q.range[1] > 1.0


def test_all_zero_tensor_still_has_a_positive_range():
    q = ActivationQuantizer()
    q(np.zeros((2, 3), "float32"), training=True)
    lo, hi = q.range
    assert lo == 0.0 and hi > 0.0


@pytest.mark.parametrize("per_channel", [True, False])
def test_kernel_is_symmetric_narrow_int8(per_channel):
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype("float32")
    fq = np.asarray(fake_quant_kernel(w, per_channel=per_channel))
    bound = np.abs(w).max(axis=(0, 1, 2)) if per_channel else np.abs(w).max()
    q = fq / (bound / 127)
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    assert np.abs(np.round(q)).max() == 127
    np.testing.assert_allclose(fq, np.round(w / (bound / 127)) * (bound / 127), atol=1e-6)


def test_depthwise_kernel_uses_one_scale_per_output_channel():
    w = np.random.default_rng(1).normal(size=(3, 3, 2, 3)).astype("float32")
    w[..., 1, 2] *= 100.0            # output channel 1 * 3 + 2 = 5
    fq = np.asarray(fake_quant_kernel(w, per_channel=True, depthwise=True))
    bound = np.abs(w).max(axis=(0, 1))
    q = fq / (bound / 127)
    np.testing.assert_allclose(q, np.round(q), atol=1e-3)
    assert np.abs(np.round(q)).max(axis=(0, 1)).tolist() == [[127] * 3] * 2


def test_pruned_zeros_stay_zero():
    w = np.random.default_rng(2).normal(size=(6, 4)).astype("float32")
    w[::2] = 0.0
    w[:, 3] = 0.0                    # a whole dead channel
    fq = np.asarray(fake_quant_kernel(w, per_channel=True))
    assert np.all(fq[w == 0] == 0) and np.all(np.isfinite(fq))


def test_quantizer_config_round_trip_and_validation():
    q = ActivationQuantizer(ema_decay=0.5, name="q")
    assert ActivationQuantizer.from_config(q.get_config()).get_config() == q.get_config()
    with pytest.raises(QuantizationError, match="ema_decay"):
        ActivationQuantizer(ema_decay=1.0)
    with pytest.raises(QuantizationError, match="ema_decay"):
        QATConfig(ema_decay=-0.1)
    with pytest.raises(QuantizationError, match="per_channel_dense"):
        QATConfig(per_channel_dense="yes")
    c = QATConfig(ema_decay=0.95, per_channel_dense=True)
    assert QATConfig.from_config(c.get_config()) == c
    assert keras.saving.get_registered_name(ActivationQuantizer) == "tinycompress>ActivationQuantizer"
