"""StudentCallback: compression callbacks see the student inside a Distiller."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from _distill_models import blobs, mlp
from tinycompress.distillation import DistillationConfigError, StudentCallback, distill


class _ZeroFirstKernel(keras.callbacks.Callback):
    """A minimal 'pruning' callback: zeroes half of the first Dense kernel every batch."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        layer = self.model.layers[0]
        kernel = layer.kernel.numpy()
        kernel[: kernel.shape[0] // 2] = 0.0
        layer.kernel.assign(kernel)
        self.calls.append(batch)


class _StopAfterOneEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


@pytest.mark.slow
def test_masking_callback_acts_on_student_not_teacher():
    keras.utils.set_random_seed(0)
    x, y = blobs(64)
    teacher, student = mlp(16, "t"), mlp(4, "s")
    teacher_weights = teacher.get_weights()
    inner = _ZeroFirstKernel()
    distill(teacher, student, x, y, epochs=2, batch_size=16, callbacks=[StudentCallback(inner)])
    assert inner.model is student
    assert inner.calls == [0, 1, 2, 3] * 2
    kernel = student.layers[0].kernel.numpy()
    assert np.count_nonzero(kernel[:3]) == 0 and np.count_nonzero(kernel[3:]) == kernel[3:].size
    for a, b in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_params_and_stop_training_are_forwarded():
    x, y = blobs(32)
    stop = _StopAfterOneEpoch()
    history = distill(mlp(8, "t"), mlp(4, "s"), x, y, epochs=5, callbacks=[StudentCallback(stop)])
    assert len(history.history["loss"]) == 1
    assert stop.params["epochs"] == 5


def test_plain_fit_passes_the_model_through():
    x, y = blobs(32)
    model = mlp(4, "m")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inner = _ZeroFirstKernel()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[StudentCallback(inner)])
    assert inner.model is model and inner.calls == [0, 1]


def test_refuses_non_callback():
    with pytest.raises(DistillationConfigError, match="keras.callbacks.Callback.*Received: function"):
        StudentCallback(lambda: None)
