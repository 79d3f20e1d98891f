"""build_distiller / distill: validation, real knowledge transfer, save and reload."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from _distill_models import blobs, conv_net, mlp
from tflite_export.errors import TinyCompressError
from tinycompress.distillation import (
    AttentionTransfer,
    DistillationConfigError,
    HintDistillation,
    RelationalDistillation,
    build_distiller,
    distill,
)


@pytest.mark.parametrize("temperature", [0, -1.0, math.nan, math.inf, True, "4", None])
def test_bad_temperature_is_refused_with_value(temperature):
    with pytest.raises(DistillationConfigError, match=r"temperature") as info:
        build_distiller(mlp(8, "t"), mlp(4, "s"), temperature=temperature)
    assert repr(temperature) in str(info.value)
    assert isinstance(info.value, TinyCompressError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan, "0.5"])
def test_bad_student_loss_weight(weight):
    with pytest.raises(DistillationConfigError, match=r"student_loss_weight.*\[0, 1\]"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), student_loss_weight=weight)


def test_feature_weights_must_match_losses():
    losses = [RelationalDistillation()]
    with pytest.raises(DistillationConfigError, match=r"one weight per loss \(1\)"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), feature_losses=losses, feature_loss_weights=[1, 2])
    with pytest.raises(DistillationConfigError, match=r"feature_loss_weights\[0\]"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), feature_losses=losses, feature_loss_weights=[-1])
    with pytest.raises(DistillationConfigError, match="logits_weight"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), logits_weight=-2)


def test_no_distillation_term_is_refused():
    with pytest.raises(DistillationConfigError, match="at least one distillation term"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), logits_weight=0)


def test_softmax_output_is_refused_with_fix():
    with pytest.raises(DistillationConfigError, match="applies softmax.*activation=None"):
        build_distiller(conv_net(8, "t", softmax=True), conv_net(2, "s"))
    with pytest.raises(DistillationConfigError, match="student"):
        build_distiller(conv_net(8, "t"), conv_net(2, "s", softmax=True))


def test_non_model_and_mismatched_pair():
    with pytest.raises(DistillationConfigError, match="keras.Model"):
        build_distiller("teacher.keras", mlp(4, "s"))
    with pytest.raises(DistillationConfigError, match="cannot be paired"):
        build_distiller(mlp(8, "t", classes=3), mlp(4, "s", classes=5))


def test_weights_reach_the_keras_distiller():
    d = build_distiller(
        conv_net(8, "t"), conv_net(2, "s"), temperature=3, student_loss_weight=0.25, logits_weight=2,
        feature_losses=[AttentionTransfer("t_conv", "s_conv")], feature_loss_weights=[0.5],
    )
    assert isinstance(d, keras.distillation.Distiller)
    assert d.student_loss_weight == 0.25
    assert d.distillation_loss_weights == [2.0, 0.5]
    assert d.distillation_losses[0].temperature == 3.0
    assert d.teacher.trainable is False


@pytest.mark.slow
def test_pure_distillation_copies_the_teacher():
    """With no label loss, the student can only learn from the teacher's logits."""
    keras.utils.set_random_seed(1)
    x, y = blobs(512)
    teacher = mlp(32, "t")
    teacher.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=15, verbose=0)
    teacher_pred = teacher.predict(x, verbose=0).argmax(1)
    # Train with labels that are pure noise: only the teacher carries signal.
    noise = np.random.default_rng(0).integers(0, 3, len(y)).astype("int32")
    student = mlp(4, "s")
    before = student.get_weights()
    t_before = teacher.get_weights()
    distill(teacher, student, x, noise, epochs=15, student_loss_weight=0.0, temperature=2.0,
            optimizer=lambda: keras.optimizers.Adam(0.02))
    agreement = (student.predict(x, verbose=0).argmax(1) == teacher_pred).mean()
    assert agreement >= 0.9
    assert (teacher_pred == y).mean() >= 0.9
    assert not all(np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(t_before, teacher.get_weights()))


@pytest.mark.slow
def test_distiller_with_our_losses_saves_and_reloads(tmp_path):
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype("float32")
    y = np.arange(32, dtype="int32") % 3
    hint = HintDistillation("t_conv", "s_conv")
    d = build_distiller(
        conv_net(8, "t"), conv_net(2, "s"),
        feature_losses=[AttentionTransfer("t_conv", "s_conv", p=1.0), hint,
                        RelationalDistillation("t_gap", "s_gap", angle_weight=0.5)],
        feature_loss_weights=[1.0, 0.1, 1.0],
    )
    d.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    d.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "distiller.keras"
    d.save(path)
    reloaded = keras.saving.load_model(path)
    losses = reloaded.distillation_losses
    assert [type(loss).__name__ for loss in losses] == [
        "LogitsDistillation", "AttentionTransfer", "HintDistillation", "RelationalDistillation"]
    assert isinstance(losses[0].loss, keras.losses.KLDivergence)
    assert losses[1].get_config() == d.distillation_losses[1].get_config()
    assert losses[3].get_config() == d.distillation_losses[3].get_config()
    np.testing.assert_array_equal(losses[2].adapter.kernel.numpy(), hint.adapter.kernel.numpy())
    assert reloaded.distillation_loss_weights == [1.0, 1.0, 0.1, 1.0]
    np.testing.assert_array_equal(reloaded.student.predict(x, verbose=0), d.student.predict(x, verbose=0))


def test_logits_term_is_softened_kl_times_t_squared():
    """Keras 3.15's default LogitsDistillation skips the softmax; ours must not."""
    rng = np.random.default_rng(0)
    t_logits = rng.normal(size=(5, 4)).astype("float32") * 3
    s_logits = rng.normal(size=(5, 4)).astype("float32")
    temperature = 2.5
    loss = build_distiller(mlp(8, "t", classes=4), mlp(4, "s", classes=4),
                           temperature=temperature, standardize=False).distillation_losses[0]

    def softmax(z):
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    p, q = softmax(t_logits / temperature), softmax(s_logits / temperature)
    expected = (p * np.log(p / q)).sum(1).mean() * temperature**2
    np.testing.assert_allclose(float(loss.compute_loss(t_logits, s_logits)), expected, rtol=1e-5)


def test_distill_gives_the_teacher_back_with_its_trainable_flags():
    x, y = blobs(32)
    teacher = mlp(8, "t")
    teacher.get_layer("t_h").trainable = False  # user froze one layer on purpose
    distill(teacher, mlp(4, "s"), x, y, epochs=1)
    assert teacher.trainable is True
    assert teacher.get_layer("t_h").trainable is False
    assert teacher.get_layer("t_out").trainable is True
