"""distill(..., fallback="scratch"): same start, both scored, the better one kept and reported."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from _distill_models import blobs, mlp
from tinycompress.distillation import (
    DistillationConfigError,
    FallbackReport,
    StudentCallback,
    derive_student,
    distill,
    distill_with_assistants,
)


class _Recorder(keras.callbacks.Callback):
    """Weights of the model it trains, at the start and at the end of the run."""

    def on_train_begin(self, logs=None):
        self.start = [w.copy() for w in self.model.get_weights()]

    def on_train_end(self, logs=None):
        self.end = [w.copy() for w in self.model.get_weights()]


def _trained_teacher(x, y, wrong=False):
    """A 32-unit teacher fit to `y`, or to the wrong class ``(y + 1) % 3`` when `wrong`."""
    teacher = mlp(32, "t")
    target = (y + 1) % 3 if wrong else y
    teacher.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, target, epochs=20, verbose=0)
    return teacher


def _run(teacher, x, y, val, **kwargs):
    recorders = []

    def callbacks():
        recorders.append(_Recorder())
        return [StudentCallback(recorders[-1])]

    student = mlp(4, "s")
    initial = student.get_weights()
    history = distill(teacher, student, x, y, epochs=15, validation_data=val, fallback="scratch",
                      callbacks=callbacks, optimizer=lambda: keras.optimizers.Adam(0.02), **kwargs)
    distilled_run, scratch_run = recorders
    for start in (distilled_run.start, scratch_run.start):  # both runs began from the same weights
        assert all(np.array_equal(a, b) for a, b in zip(start, initial))
    return student, history, distilled_run, scratch_run


def _same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def _accuracy(model, val):
    return float((model.predict(val[0], verbose=0).argmax(1) == val[1]).mean())


def test_scratch_is_kept_when_distillation_loses():
    """A teacher fit to wrong labels, at a high temperature with no label loss: KD must lose."""
    keras.utils.set_random_seed(0)
    x, y = blobs(384)
    val = (x[256:], y[256:])
    x, y = x[:256], y[:256]
    teacher = _trained_teacher(x, y, wrong=True)
    assert _accuracy(teacher, val) < 0.1
    student, history, distilled_run, scratch_run = _run(
        teacher, x, y, val, temperature=8.0, standardize=False, student_loss_weight=0.0)
    report = history.fallback
    assert isinstance(report, FallbackReport)
    assert report.kept == "scratch"
    assert report.scratch_accuracy >= 0.9 > 0.2 > report.distilled_accuracy
    assert _same(student.get_weights(), scratch_run.end)  # the control's weights, exactly
    assert not _same(student.get_weights(), distilled_run.end)
    assert history is report.scratch_history and "distillation_loss" not in history.history
    assert "distillation_loss" in report.distilled_history.history
    assert len(history.history["val_accuracy"]) == 15
    assert _accuracy(student, val) == pytest.approx(report.scratch_accuracy)


def test_distilled_is_kept_when_distillation_wins():
    """Noisy training labels: the control learns noise, the distilled student learns the teacher."""
    keras.utils.set_random_seed(1)
    x, y = blobs(384)
    val = (x[256:], y[256:])
    x, y = x[:256], y[:256]
    teacher = _trained_teacher(x, y)
    noise = np.random.default_rng(0).integers(0, 3, len(y)).astype("int32")
    student, history, distilled_run, scratch_run = _run(
        teacher, x, noise, val, temperature=2.0, standardize=False, student_loss_weight=0.0)
    report = history.fallback
    assert report.kept == "distilled"
    assert report.distilled_accuracy >= 0.85 and report.scratch_accuracy < 0.7
    assert _same(student.get_weights(), distilled_run.end)
    assert not _same(student.get_weights(), scratch_run.end)
    assert history is report.distilled_history and "distillation_loss" in history.history
    assert _accuracy(student, val) == pytest.approx(report.distilled_accuracy)


def test_fallback_scores_a_validation_dataset_batch_by_batch():
    keras.utils.set_random_seed(2)
    x, y = blobs(64)
    student = mlp(4, "s")
    val = tf.data.Dataset.from_tensor_slices((x[:50], y[:50])).batch(16)  # last batch partial
    history = distill(mlp(8, "t"), student, x, y, epochs=1, fallback="scratch", validation_data=val)
    report = history.fallback
    kept = max(report.distilled_accuracy, report.scratch_accuracy)
    assert _accuracy(student, (x[:50], y[:50])) == pytest.approx(kept)
    assert report.kept == ("scratch" if report.scratch_accuracy > report.distilled_accuracy
                           else "distilled")


def test_fallback_checks():
    x, y = blobs(16)
    teacher, student = mlp(8, "t"), mlp(4, "s")
    with pytest.raises(DistillationConfigError, match="None or 'scratch'.*'best'"):
        distill(teacher, student, x, y, fallback="best", validation_data=(x, y))
    with pytest.raises(DistillationConfigError, match="validation_data=\\(x_val, y_val\\)"):
        distill(teacher, student, x, y, fallback="scratch")
    with pytest.raises(DistillationConfigError, match="fresh optimizer"):
        distill(teacher, student, x, y, fallback="scratch", validation_data=(x, y),
                optimizer=keras.optimizers.Adam())
    with pytest.raises(DistillationConfigError, match="zero-argument factory"):
        distill(teacher, student, x, y, fallback="scratch", validation_data=(x, y),
                callbacks=[keras.callbacks.TerminateOnNaN()])
    with pytest.raises(DistillationConfigError, match="no samples"):
        distill(teacher, student, x, y, fallback="scratch", validation_data=(x[:0], y[:0]))


def test_assistant_chain_applies_the_fallback_per_stage():
    keras.utils.set_random_seed(3)
    x, y = blobs(128)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(64, activation="relu", name="h"),
                                keras.layers.Dense(3, name="out")], name="teacher")
    student = derive_student(teacher, 1 / 16, name="student")
    result = distill_with_assistants(teacher, student, x, y, assistants=[0.25], epochs=2,
                                     validation_data=(x, y), fallback="scratch",
                                     temperature=2.0, standardize=True)
    assert len(result.fallbacks) == 2
    assert all(isinstance(r, FallbackReport) for r in result.fallbacks)
    for model, report in zip((*result.assistants, student), result.fallbacks):
        kept = max(report.distilled_accuracy, report.scratch_accuracy)
        assert _accuracy(model, (x, y)) == pytest.approx(kept)
