"""LogitsDistillation and standardize_logits: the math against numpy, invariances, config."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from _distill_models import mlp
from tinycompress.distillation import (
    DistillationConfigError,
    LogitsDistillation,
    build_distiller,
    standardize_logits,
)


def _np_standardize(z):
    z = z.astype("float64")
    centered = z - z.mean(-1, keepdims=True)
    return centered / (np.sqrt((centered**2).mean(-1, keepdims=True)) + 1e-7)


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_kd(t, s, temperature, standardize):
    """Sun et al. 2024, Eq. for logit-standardized KD: T**2 * mean KL(p_t || p_s)."""
    if standardize:
        t, s = _np_standardize(t), _np_standardize(s)
    p, q = _np_softmax(t / temperature), _np_softmax(s / temperature)
    return float((p * np.log(p / q)).sum(-1).mean() * temperature**2)


def _logits(seed, n=6, classes=5, scale=4.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, classes)) * scale).astype("float32")


def test_standardize_matches_numpy_and_gives_zero_mean_unit_std():
    z = _logits(0) * 7 + 3
    got = np.asarray(standardize_logits(z))
    np.testing.assert_allclose(got, _np_standardize(z), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.mean(-1), 0.0, atol=1e-6)
    np.testing.assert_allclose(got.std(-1), 1.0, rtol=1e-5)
    # constant logits carry no ranking: zeros, not NaN
    assert np.asarray(standardize_logits(np.full((2, 4), 3.0))).tolist() == [[0.0] * 4] * 2


@pytest.mark.parametrize("standardize", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 8.0])
def test_loss_matches_numpy(temperature, standardize):
    t, s = _logits(1, scale=10.0), _logits(2)
    got = float(LogitsDistillation(temperature, standardize).compute_loss(t, s))
    np.testing.assert_allclose(got, _np_kd(t, s, temperature, standardize), rtol=1e-4)


def test_standardized_loss_ignores_per_sample_shift_and_scale():
    t, s = _logits(3, scale=15.0), _logits(4)
    rng = np.random.default_rng(5)
    scale_t, scale_s = rng.uniform(0.05, 20.0, (2, len(t), 1)).astype("float32")
    shift_t, shift_s = rng.uniform(-50.0, 50.0, (2, len(t), 1)).astype("float32")
    for temperature in (1.0, 4.0):
        std_loss = LogitsDistillation(temperature, standardize=True)
        base = float(std_loss.compute_loss(t, s))
        moved = float(std_loss.compute_loss(scale_t * t + shift_t, scale_s * s + shift_s))
        assert base > 0.01
        np.testing.assert_allclose(moved, base, rtol=1e-4)
        # without standardization the scale matters: the invariance is the option's doing
        plain = LogitsDistillation(temperature, standardize=False)
        assert abs(float(plain.compute_loss(t, scale_s * s)) - float(plain.compute_loss(t, s))) > 0.1
    # a student with the teacher's shape at another scale and offset has nothing left to learn
    assert float(LogitsDistillation(2.0, True).compute_loss(t, 0.02 * t - 9.0)) == pytest.approx(0, abs=1e-5)


def test_standardized_gradient_reaches_the_student():
    t = _logits(6, scale=20.0)
    s = keras.Variable(_logits(7))
    with tf.GradientTape() as tape:
        loss = LogitsDistillation(4.0, standardize=True).compute_loss(t, s)
    grad = tape.gradient(loss, s.value)
    assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).max() > 1e-4
    # per sample, the gradient of a shift- and scale-invariant loss is orthogonal to 1 and to s
    np.testing.assert_allclose(grad.numpy().sum(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose((grad.numpy() * s.numpy()).sum(-1), 0.0, atol=1e-4)


def test_checks_and_config_round_trip():
    with pytest.raises(DistillationConfigError, match="standardize=1"):
        LogitsDistillation(2.0, standardize=1)
    with pytest.raises(DistillationConfigError, match="temperature"):
        LogitsDistillation(0.0)
    loss = LogitsDistillation(temperature=2.0, standardize=True)
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"] == "tinycompress>LogitsDistillation"
    again = keras.saving.deserialize_keras_object(config)
    assert type(again) is LogitsDistillation
    assert again.get_config() == {"temperature": 2.0, "standardize": True}


def test_build_distiller_passes_standardize(tmp_path):
    d = build_distiller(mlp(8, "t"), mlp(4, "s"), temperature=2.0, standardize=True)
    (loss,) = d.distillation_losses
    assert isinstance(loss, LogitsDistillation) and loss.standardize and loss.temperature == 2.0
    x = np.random.default_rng(0).random((16, 6)).astype("float32")
    d.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    d.fit(x, np.arange(16) % 3, epochs=1, verbose=0)
    d.save(tmp_path / "d.keras")
    (reloaded,) = keras.saving.load_model(tmp_path / "d.keras").distillation_losses
    assert reloaded.get_config() == {"temperature": 2.0, "standardize": True}
