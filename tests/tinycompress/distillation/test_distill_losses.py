"""AttentionTransfer, RelationalDistillation and HintDistillation: values and checks."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from _distill_models import conv_net, mlp
from tinycompress.distillation import (
    AttentionTransfer,
    DistillationConfigError,
    HintDistillation,
    RelationalDistillation,
    build_distiller,
)


def _np_attention(f, p):
    a = (np.abs(f) ** p).mean(-1).reshape(len(f), -1)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _np_smooth_l1(a, b):
    d = np.abs(a - b)
    return np.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def _np_rkd(t, s, wd, wa):
    def dist(e):
        d = np.linalg.norm(e[:, None] - e[None], axis=-1)
        n = len(e)
        return d / (d.sum() / (n * n - n))

    def angle(e):
        diff = e[None] - e[:, None]
        u = diff / np.maximum(np.linalg.norm(diff, axis=-1, keepdims=True), 1e-12)
        return np.einsum("ijd,ikd->ijk", u, u)

    return wd * _np_smooth_l1(dist(s), dist(t)) + wa * _np_smooth_l1(angle(s), angle(t))


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_attention_transfer_matches_numpy(p):
    rng = np.random.default_rng(0)
    t = rng.normal(size=(4, 5, 5, 16)).astype("float32")
    s = rng.normal(size=(4, 5, 5, 3)).astype("float32")
    expected = ((_np_attention(t, p) - _np_attention(s, p)) ** 2).sum(1).mean()
    got = float(AttentionTransfer("a", "b", p=p).compute_loss(t, s))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_attention_transfer_works_on_conv1d_maps():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(3, 20, 8)).astype("float32")
    loss = AttentionTransfer("a", "b")
    assert float(loss.compute_loss(t, t[..., :2])) > 0
    assert float(loss.compute_loss(t, t)) == pytest.approx(0.0, abs=1e-7)


def test_attention_transfer_checks():
    with pytest.raises(DistillationConfigError, match="p=0"):
        AttentionTransfer("a", "b", p=0)
    with pytest.raises(DistillationConfigError, match="both models"):
        AttentionTransfer("a", None)
    with pytest.raises(DistillationConfigError, match="rank >= 3"):
        build_distiller(conv_net(8, "t"), conv_net(2, "s"),
                        feature_losses=[AttentionTransfer("t_gap", "s_gap")])
    with pytest.raises(DistillationConfigError, match=r"no layer 's_nope'.*'s_conv'"):
        build_distiller(conv_net(8, "t"), conv_net(2, "s"),
                        feature_losses=[AttentionTransfer("t_conv", "s_nope")])


def test_attention_transfer_refuses_different_resolution():
    small = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="s_conv"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)], name="s")
    with pytest.raises(DistillationConfigError, match="same spatial dims.*\\(None, 6, 6, 2\\)"):
        build_distiller(conv_net(8, "t"), small, feature_losses=[AttentionTransfer("t_conv", "s_conv")])


@pytest.mark.parametrize("wd,wa", [(1.0, 0.0), (0.0, 1.0), (1.0, 2.0)])
def test_relational_matches_numpy(wd, wa):
    rng = np.random.default_rng(2)
    t = rng.normal(size=(6, 12)).astype("float32")
    s = rng.normal(size=(6, 3)).astype("float32")
    got = float(RelationalDistillation(distance_weight=wd, angle_weight=wa).compute_loss(t, s))
    np.testing.assert_allclose(got, _np_rkd(t.astype("float64"), s.astype("float64"), wd, wa), rtol=1e-4)


def test_relational_is_invariant_to_scale_and_shift():
    t = np.random.default_rng(3).normal(size=(8, 5)).astype("float32")
    loss = RelationalDistillation()
    assert float(loss.compute_loss(t, 4.0 * t + 3.0)) == pytest.approx(0.0, abs=1e-5)


def test_relational_checks():
    with pytest.raises(DistillationConfigError, match="both 0"):
        RelationalDistillation(distance_weight=0, angle_weight=0)
    with pytest.raises(DistillationConfigError, match="angle_weight"):
        RelationalDistillation(angle_weight=-1)
    with pytest.raises(DistillationConfigError, match="in both models or in neither"):
        RelationalDistillation("t_h", None)
    with pytest.raises(DistillationConfigError, match="no layer"):
        build_distiller(mlp(8, "t"), mlp(4, "s"), feature_losses=[RelationalDistillation("t_h", "x")])


@pytest.mark.slow
def test_hint_adapter_projects_channels_and_is_trained_by_the_distiller():
    keras.utils.set_random_seed(0)
    hint = HintDistillation("t_conv", "s_conv")
    teacher, student = conv_net(8, "t"), conv_net(2, "s")
    d = build_distiller(teacher, student, feature_losses=[hint])
    assert tuple(hint.adapter.kernel.shape) == (2, 8)
    trainable = {id(v) for v in d.trainable_variables}
    assert id(hint.adapter.kernel) in trainable
    assert not any(id(v) in trainable for v in teacher.weights)
    # The student itself carries no adapter weights.
    assert student.count_params() == conv_net(2, "x").count_params()
    x = np.random.default_rng(0).random((64, 8, 8, 1)).astype("float32")
    y = np.zeros(64, "int32")
    extractor_t = keras.Model(teacher.input, teacher.get_layer("t_conv").output)
    extractor_s = keras.Model(student.input, student.get_layer("s_conv").output)
    before = float(hint.compute_loss(extractor_t(x), extractor_s(x)))
    d.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    d.fit(x, y, epochs=20, batch_size=32, verbose=0)
    after = float(hint.compute_loss(extractor_t(x), extractor_s(x)))
    assert after < 0.5 * before


def test_hint_value_and_checks():
    hint = HintDistillation("a", "b", use_adapter=False)
    t = np.ones((2, 3, 4), "float32")
    assert float(hint.compute_loss(t, np.zeros_like(t))) == pytest.approx(1.0)
    with pytest.raises(DistillationConfigError, match="use_adapter=True"):
        build_distiller(conv_net(8, "t"), conv_net(2, "s"),
                        feature_losses=[HintDistillation("t_conv", "s_conv", use_adapter=False)])
    with pytest.raises(DistillationConfigError, match="not built"):
        HintDistillation("a", "b").compute_loss(t, t)


@pytest.mark.parametrize("loss", [
    AttentionTransfer("t_conv", "s_conv", p=3.0),
    RelationalDistillation("t_gap", "s_gap", distance_weight=0.5, angle_weight=0.0),
    HintDistillation("t_conv", "s_conv", use_adapter=False, name="hint"),
])
def test_config_round_trip(loss):
    config = keras.saving.serialize_keras_object(loss)
    assert config["registered_name"].startswith("tinycompress>")
    again = keras.saving.deserialize_keras_object(config)
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
