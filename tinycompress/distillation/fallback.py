"""The scratch fallback of `distill`: a labels-only control from the same start.

Distillation can hurt a very small student (see `distill`). With
``fallback="scratch"`` a copy of the student with the same initial weights is
trained on the labels alone for the same epochs; both are scored on the
validation data and the student keeps the better weights. `FallbackReport`
says which one was kept and what both scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["FALLBACKS", "FallbackReport"]

#: Accepted values of `distill`'s ``fallback`` argument.
FALLBACKS = (None, "scratch")

CallbackSpec = Sequence[keras.callbacks.Callback] | Callable[[], Sequence[keras.callbacks.Callback]]


@dataclass(frozen=True)
class FallbackReport:
    """Both runs of ``distill(..., fallback="scratch")`` and which one was kept.

    Attributes:
        kept: ``"distilled"`` or ``"scratch"``: whose weights the student holds.
            Ties keep the distilled student.
        distilled_accuracy: validation accuracy of the distilled student.
        scratch_accuracy: validation accuracy of the labels-only control.
        distilled_history: `keras.callbacks.History` of the distillation run.
        scratch_history: `keras.callbacks.History` of the control run (keys
            ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``).
    """

    kept: str
    distilled_accuracy: float
    scratch_accuracy: float
    distilled_history: keras.callbacks.History
    scratch_history: keras.callbacks.History


def check_fallback(fallback: object, validation_data: Any, optimizer: Any, callbacks: Any) -> None:
    """Refuse a fallback request that cannot be honoured, naming the fix."""
    if fallback not in FALLBACKS:
        raise DistillationConfigError(
            f"expected `fallback` to be None or 'scratch'. Received: fallback={fallback!r}."
        )
    if fallback is None:
        return
    if validation_data is None:
        raise DistillationConfigError(
            "fallback='scratch' compares the distilled student with a labels-only control on "
            "held-out data, but validation_data is None. Pass validation_data=(x_val, y_val)."
        )
    if _is_pair(validation_data) and len(validation_data[1]) == 0:
        raise _no_samples()
    if isinstance(optimizer, keras.optimizers.Optimizer):
        raise DistillationConfigError(
            "fallback='scratch' trains two students, each with a fresh optimizer; received the "
            f"instance {optimizer!r}. Pass a name or a factory, e.g. lambda: keras.optimizers.Adam(1e-3)."
        )
    if not callable(callbacks) and list(callbacks):
        raise DistillationConfigError(
            "fallback='scratch' trains two students and callbacks keep state, so one list cannot "
            "serve both runs. Pass callbacks as a zero-argument factory returning a fresh list, "
            "e.g. callbacks=lambda: [StudentCallback(make_pruning_callback())]."
        )


def _is_pair(validation_data: Any) -> bool:
    return isinstance(validation_data, (tuple, list)) and len(validation_data) in (2, 3)


def _no_samples() -> DistillationConfigError:
    return DistillationConfigError(
        "fallback='scratch' found no samples in validation_data. Pass a non-empty (x_val, y_val)."
    )


def callback_factory(callbacks: CallbackSpec) -> Callable[[], list[keras.callbacks.Callback]]:
    """A zero-argument function giving the callbacks for one run."""
    if callable(callbacks):
        return lambda: list(callbacks())
    return lambda: list(callbacks)


def clone_initial(student: keras.Model) -> keras.Model:
    """A copy of `student` with its current (initial) weights, for the control run."""
    try:
        control = keras.models.clone_model(student)
    except Exception as e:  # noqa: BLE001 - Keras raises several types for uncloneable models
        raise DistillationConfigError(
            f"fallback='scratch' needs a copy of the student {student.name!r} for the control "
            f"run, but keras.models.clone_model failed: {e} Use a Sequential or Functional student."
        ) from e
    control.set_weights(student.get_weights())
    return control


def validation_accuracy(model: keras.Model, validation_data: Any, batch_size: int | None) -> float:
    """Top-1 accuracy of `model` on ``(x, y[, weights])`` or a dataset of ``(x, y)`` batches.

    Labels are class indices (as for `distill`'s default loss); sample weights
    are ignored.
    """
    if _is_pair(validation_data):
        batches = [(validation_data[0], validation_data[1])]
    else:
        batches = ((batch[0], batch[1]) for batch in validation_data)
    correct = total = 0
    for x, y in batches:
        if len(y) == 0:
            continue
        predicted = np.asarray(model.predict(x, batch_size=batch_size, verbose=0)).argmax(-1)
        labels = np.asarray(y).reshape(predicted.shape)
        correct += int((predicted == labels).sum())
        total += int(labels.size)
    if total == 0:
        raise _no_samples()
    return correct / total


def keep_better(
    student: keras.Model,
    control: keras.Model,
    distilled_history: keras.callbacks.History,
    scratch_history: keras.callbacks.History,
    validation_data: Any,
    batch_size: int | None,
) -> FallbackReport:
    """Score both models, copy the control's weights into `student` if it is better."""
    distilled = validation_accuracy(student, validation_data, batch_size)
    scratch = validation_accuracy(control, validation_data, batch_size)
    kept = "scratch" if scratch > distilled else "distilled"
    if kept == "scratch":
        student.set_weights(control.get_weights())
    return FallbackReport(kept, distilled, scratch, distilled_history, scratch_history)
