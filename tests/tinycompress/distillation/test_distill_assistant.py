"""Teacher-assistant chains: sizes chosen or given, order checked, every stage trained."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from _distill_models import blobs
from tinycompress.distillation import (
    DistillationConfigError,
    StudentCallback,
    assistant_widths,
    derive_student,
    distill_with_assistants,
)


def _teacher():
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(128, activation="relu", name="h"),
                             keras.layers.Dense(3, name="out")], name="teacher")


def test_chosen_widths_are_geometric_in_parameters():
    teacher = _teacher()
    student = derive_student(teacher, 1 / 32)
    widths = assistant_widths(teacher, student.count_params(), count=2)
    sizes = [derive_student(teacher, w).count_params() for w in widths]
    t, s = teacher.count_params(), student.count_params()
    targets = [t ** (2 / 3) * s ** (1 / 3), t ** (1 / 3) * s ** (2 / 3)]
    assert widths[0] > widths[1]
    for size, target in zip(sizes, targets):
        # one unit of the hidden layer (6 + 1 + 3 = 10 params) is the resolution
        assert abs(size - target) <= 10


@pytest.mark.slow
def test_chain_trains_every_stage_and_returns_assistants():
    keras.utils.set_random_seed(0)
    x, y = blobs(128)
    teacher = _teacher()
    teacher.compile(optimizer=keras.optimizers.Adam(0.01),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=10, verbose=0)
    assert (teacher.predict(x, verbose=0).argmax(1) == y).mean() >= 0.95
    student = derive_student(teacher, 1 / 16, name="student")
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.model.name)

    result = distill_with_assistants(teacher, student, x, y, assistants=[0.5, 0.25], epochs=10,
                                     callbacks=[StudentCallback(Probe())],
                                     optimizer=lambda: keras.optimizers.Adam(0.02))
    assert result.student is student
    assert [a.get_layer("h").units for a in result.assistants] == [64, 32]
    assert len(result.histories) == 3 and all(len(h.history["loss"]) == 10 for h in result.histories)
    assert seen == ["student"]  # callbacks only in the last stage
    assert (student.predict(x, verbose=0).argmax(1) == y).mean() >= 0.9


def test_given_models_must_shrink_between_teacher_and_student():
    teacher = _teacher()
    student = derive_student(teacher, 0.05)
    too_big = derive_student(teacher, 1.0)
    x, y = blobs(16)
    with pytest.raises(DistillationConfigError, match="shrink strictly"):
        distill_with_assistants(teacher, student, x, y, assistants=[too_big])
    with pytest.raises(DistillationConfigError, match="shrink strictly"):
        distill_with_assistants(teacher, student, x, y, assistants=[0.5, 0.75])


def test_argument_checks():
    teacher = _teacher()
    student = derive_student(teacher, 0.05)
    x, y = blobs(16)
    with pytest.raises(DistillationConfigError, match="fresh optimizer"):
        distill_with_assistants(teacher, student, x, y, optimizer=keras.optimizers.Adam())
    with pytest.raises(DistillationConfigError, match="count >= 1"):
        distill_with_assistants(teacher, student, x, y, assistants=[])
    with pytest.raises(DistillationConfigError, match="positive integer"):
        distill_with_assistants(teacher, student, x, y, assistants=0)
    with pytest.raises(DistillationConfigError, match="smaller than the teacher"):
        assistant_widths(teacher, teacher.count_params(), 1)
    with pytest.raises(DistillationConfigError, match=r"assistants\[0\]"):
        distill_with_assistants(teacher, student, x, y, assistants=["big"])
