"""derive_student: width and depth scaling of a teacher architecture."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tinycompress.distillation import DistillationConfigError, derive_student


def _residual_teacher():
    x_in = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(x_in)
    y = keras.layers.SeparableConv2D(16, 3, padding="same", name="branch")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    return keras.Model(x_in, keras.layers.Dense(5, name="logits")(x), name="res")


def test_functional_width_scaling_keeps_names_shapes_and_head():
    teacher = _residual_teacher()
    student = derive_student(teacher, width_multiplier=0.25)
    assert student.name == "res_student"
    assert [layer.name for layer in student.layers[1:]] == [layer.name for layer in teacher.layers[1:]]
    assert student.get_layer("stem").filters == 4
    assert student.get_layer("branch").filters == 4
    assert student.get_layer("fc").units == 8
    assert student.get_layer("logits").units == 5
    assert student.input_shape == teacher.input_shape and student.output_shape == teacher.output_shape
    # stem 3*3*3*4+4, branch 3*3*4+4*4+4, fc 4*8+8, logits 8*5+5
    assert student.count_params() == 112 + 56 + 40 + 45
    out = student.predict(np.zeros((2, 10, 10, 3), "float32"), verbose=0)
    assert out.shape == (2, 5)


def test_weights_are_fresh_not_copied():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="h"), keras.layers.Dense(2, name="o")])
    student = derive_student(teacher, 1.0)
    assert student.count_params() == teacher.count_params()
    assert not np.array_equal(student.get_layer("h").kernel.numpy(), teacher.get_layer("h").kernel.numpy())


def test_depth_scaling_drops_trailing_same_shape_blocks_with_their_followers():
    layers = [keras.Input((12, 4)), keras.layers.Conv1D(8, 3, padding="same", name="c0")]
    for i in range(1, 5):
        layers += [keras.layers.Conv1D(8, 3, padding="same", name=f"c{i}"),
                   keras.layers.BatchNormalization(name=f"bn{i}"), keras.layers.ReLU(name=f"r{i}")]
    layers += [keras.layers.GlobalAveragePooling1D(name="gap"), keras.layers.Dense(3, name="out")]
    teacher = keras.Sequential(layers, name="deep")
    student = derive_student(teacher, width_multiplier=0.5, depth_multiplier=0.5)
    assert [layer.name for layer in student.layers] == ["c0", "c1", "bn1", "r1", "c2", "bn2", "r2", "gap", "out"]
    assert [student.get_layer(n).filters for n in ("c0", "c1", "c2")] == [4, 4, 4]
    assert student.output_shape == (None, 3)


@pytest.mark.parametrize("kwargs,match", [
    ({"width_multiplier": 0}, "width_multiplier"),
    ({"width_multiplier": 1.5}, "width_multiplier"),
    ({"depth_multiplier": -1}, "depth_multiplier"),
    ({"width_multiplier": True}, "width_multiplier"),
])
def test_bad_multipliers(kwargs, match):
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(DistillationConfigError, match=match):
        derive_student(teacher, **kwargs)


def test_depth_needs_sequential_and_scalable_layers():
    with pytest.raises(DistillationConfigError, match="Sequential teacher for depth_multiplier"):
        derive_student(_residual_teacher(), depth_multiplier=0.5)
    no_weights = keras.Sequential([keras.Input((4,)), keras.layers.ReLU()], name="plain")
    with pytest.raises(DistillationConfigError, match="'plain' has no layer"):
        derive_student(no_weights)


def test_student_of_a_frozen_teacher_is_trainable():
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="h"), keras.layers.Dense(2, name="o")])
    teacher.trainable = False
    student = derive_student(teacher, 0.5)
    assert len(student.trainable_weights) == 4


@pytest.mark.parametrize("functional", [False, True])
def test_student_of_a_compiled_teacher_is_uncompiled(functional):
    teacher = _residual_teacher() if functional else keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, name="h"), keras.layers.Dense(2, name="o")], name="t")
    teacher.compile(optimizer="adam", loss="mse")
    student = derive_student(teacher, 0.5)
    assert not student.compiled and getattr(student, "optimizer", None) is None
    assert isinstance(student, keras.Sequential) is not functional
    assert [l.name for l in student.layers if l.weights] == [l.name for l in teacher.layers if l.weights]
    assert student.input_shape == teacher.input_shape and student.output_shape == teacher.output_shape
