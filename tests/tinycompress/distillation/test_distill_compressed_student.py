"""A pruned + QAT student distilled from a teacher exports to a valid int8 TFLM model."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tflite_export
from tinycompress import convert
from tinycompress.distillation import StudentCallback, derive_student, distill
from tinycompress.pruning import ConstantSparsity, PruningCallback, sparsity_summary
from tinycompress.quantization import QATCallback, quantize_model, strip_qat

SPARSITY = 0.5


def _quadrants(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images; the class is the brighter 4x4 quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype("int32")
    x = rng.random((n, 8, 8, 1)).astype("float32") * 0.5
    for i, k in enumerate(y):
        r, c = divmod(int(k), 2)
        x[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 0.5
    return x, y


def _teacher() -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(name="pool2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(4, name="logits"),
    ], name="teacher")


@pytest.fixture(scope="module")
def distilled():
    keras.utils.set_random_seed(0)
    x, y = _quadrants(512, seed=0)
    teacher = _teacher()
    teacher.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=6, batch_size=32, verbose=0)
    float_student = derive_student(teacher, width_multiplier=0.125, name="student")
    student = quantize_model(float_student)
    pruning = PruningCallback(ConstantSparsity(SPARSITY, frequency=4), log_summary=False)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    distill(teacher, student, x, y, epochs=6, batch_size=32, temperature=4.0, student_loss_weight=0.3,
            optimizer=lambda: keras.optimizers.Adam(0.01),
            callbacks=[StudentCallback(pruning), StudentCallback(QATCallback(freeze_after=64))])
    return teacher, teacher_weights, float_student, student, pruning


@pytest.mark.slow
def test_callbacks_pruned_the_student_only(distilled):
    teacher, teacher_weights, _, student, pruning = distilled
    assert pruning.model is student
    rows = sparsity_summary(student)
    kernels = [r for r in rows if r.weight.endswith("kernel")]
    assert len(kernels) == 3
    assert all(r.sparsity == pytest.approx(SPARSITY, abs=0.02) for r in kernels)
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.slow
def test_export_is_int8_tflm_with_student_weights_and_sparsity(distilled):
    teacher, _, float_student, student, _ = distilled
    x_cal, _ = _quadrants(128, seed=1)
    x_test, y_test = _quadrants(256, seed=2)
    model_bytes = convert(student, x_cal)
    report = tflite_export.inspect(model_bytes)
    assert report.tflm_supported
    assert {io.dtype for io in (*report.inputs, *report.outputs)} == {"int8"}
    weighted = [layer for layer in report.layers if layer.weight_shape is not None]
    assert [layer.op for layer in weighted] == ["CONV_2D", "CONV_2D", "FULLY_CONNECTED"]
    # Only the student's weights are in the flatbuffer: its shapes and its parameter count.
    assert [layer.out_channels for layer in weighted] == [4, 8, 4]
    assert report.params == float_student.count_params() == strip_qat(student).count_params()
    assert teacher.count_params() >= 10 * report.params
    # Pruned zeros survive quantization (int8 zero == zero point).
    for layer in weighted:
        assert layer.sparsity >= SPARSITY - 0.02
    assert report.weight_sparsity >= SPARSITY - 0.02
    # The int8 TFLM model still does the task, like the Keras student.
    keras_acc = float((student.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    tflm_acc = tflite_export.evaluate_accuracy(model_bytes, x_test, y_test)
    assert tflm_acc >= 0.85
    assert abs(tflm_acc - keras_acc) <= 0.03


@pytest.mark.slow
def test_channel_pruning_schedule_advances_across_epochs_inside_distill():
    # derive_student of a compiled teacher once returned a compiled student; its idle
    # optimizer reset PruningCallback's step every epoch, so sparsity stalled at epoch 1's.
    from tinycompress.pruning import PolynomialDecay, shrink

    keras.utils.set_random_seed(0)
    x, y = _quadrants(256, seed=0)  # 8 batches of 32 per epoch
    teacher = _teacher()
    teacher.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=1, batch_size=32, verbose=0)
    student = derive_student(teacher, width_multiplier=0.25, name="student")
    pruning = PruningCallback(PolynomialDecay(0.0, 0.5, begin_step=0, end_step=24, frequency=4),
                              layers=["conv1", "conv2"], granularity="channel", log_summary=False)
    distill(teacher, student, x, y, epochs=4, batch_size=32, callbacks=[StudentCallback(pruning)])
    assert pruning.step == 32
    small = shrink(student)
    assert [small.get_layer(n).filters for n in ("conv1", "conv2")] == [4, 8]
