"""Teacher-assistant distillation (Mirzadeh et al. 2019): teacher -> assistants -> student."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from tinycompress.distillation._validate import check_positive_int
from tinycompress.distillation.distiller import distill
from tinycompress.distillation.errors import DistillationConfigError
from tinycompress.distillation.fallback import CallbackSpec, FallbackReport
from tinycompress.distillation.student import derive_student

__all__ = ["TeacherAssistantResult", "assistant_widths", "distill_with_assistants"]

_log = logging.getLogger(__name__)

_BISECTION_STEPS = 20


@dataclass(frozen=True)
class TeacherAssistantResult:
    """What `distill_with_assistants` trained.

    Attributes:
        student: the student, trained in place (the object passed in).
        assistants: the trained assistants, largest first.
        histories: one `keras.callbacks.History` per stage, teacher ->
            first assistant first, last assistant -> student last; each has
            the ``fallback`` attribute `distill` sets.
    """

    student: keras.Model
    assistants: tuple[keras.Model, ...]
    histories: tuple[keras.callbacks.History, ...]

    @property
    def fallbacks(self) -> tuple[FallbackReport | None, ...]:
        """Per stage, the `FallbackReport` of ``fallback="scratch"``, else None."""
        return tuple(getattr(h, "fallback", None) for h in self.histories)


def assistant_widths(teacher: keras.Model, student_params: int, count: int) -> list[float]:
    """Width multipliers of `count` assistants spaced geometrically in parameters.

    Assistant ``k`` (1-based) targets ``T**(1 - k/(count+1)) * S**(k/(count+1))``
    parameters, with ``T`` the teacher's and ``S = student_params``; its width
    multiplier for `derive_student` is found by bisection.

    Args:
        teacher: the teacher (Sequential or Functional, see `derive_student`).
        student_params: parameter count of the student, below the teacher's.
        count: number of assistants, >= 1.

    Returns:
        `count` multipliers in (0, 1], decreasing.

    Raises:
        DistillationConfigError: `count` < 1, or a student not smaller than
            the teacher.

    Example:
        >>> import keras
        >>> teacher = keras.Sequential([keras.Input((32,)), keras.layers.Dense(256, activation="relu"),
        ...                             keras.layers.Dense(10)])
        >>> [round(w, 2) for w in assistant_widths(teacher, student_params=1000, count=1)]
        [0.3]
    """
    count = check_positive_int("count", count)
    teacher_params = teacher.count_params()
    if not 0 < student_params < teacher_params:
        raise DistillationConfigError(
            f"expected a student smaller than the teacher ({teacher_params} parameters). "
            f"Received: student_params={student_params}. Pass a smaller student."
        )
    widths = []
    for k in range(1, count + 1):
        share = k / (count + 1)
        target = teacher_params ** (1 - share) * student_params**share
        lo, hi = 0.0, 1.0
        for _ in range(_BISECTION_STEPS):
            mid = (lo + hi) / 2
            if derive_student(teacher, mid).count_params() < target:
                lo = mid
            else:
                hi = mid
        widths.append(hi)
    return widths


def _resolve_assistants(
    teacher: keras.Model, student: keras.Model, assistants: int | Sequence[float | keras.Model]
) -> list[keras.Model]:
    if isinstance(assistants, int) and not isinstance(assistants, bool):
        widths = assistant_widths(teacher, student.count_params(), assistants)
        specs: list[float | keras.Model] = list(widths)
    elif isinstance(assistants, Sequence) and not isinstance(assistants, (str, bytes)) and assistants:
        specs = list(assistants)
    else:
        raise DistillationConfigError(
            "expected `assistants` to be a count >= 1, a list of width multipliers or a list "
            f"of keras.Model. Received: {assistants!r}."
        )
    models = []
    for i, spec in enumerate(specs):
        if isinstance(spec, keras.Model):
            model = spec
        elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
            model = derive_student(teacher, spec, name=f"{teacher.name}_assistant_{i}")
        else:
            raise DistillationConfigError(
                f"expected `assistants[{i}]` to be a width multiplier or a keras.Model. "
                f"Received: {type(spec).__name__}."
            )
        models.append(model)
    sizes = [teacher.count_params(), *(m.count_params() for m in models), student.count_params()]
    for a, b in zip(sizes, sizes[1:]):
        if a <= b:
            raise DistillationConfigError(
                "expected parameter counts to shrink strictly from teacher through the assistants "
                f"to the student. Received: {sizes}. Order the assistants largest first and keep "
                "each between its neighbours."
            )
    return models


def distill_with_assistants(
    teacher: keras.Model,
    student: keras.Model,
    x: Any,
    y: Any = None,
    *,
    assistants: int | Sequence[float | keras.Model] = 1,
    epochs: int = 1,
    optimizer: str | Any = "adam",
    callbacks: CallbackSpec = (),
    **distill_kwargs: Any,
) -> TeacherAssistantResult:
    """Distill teacher -> assistant(s) -> student, each stage with `distill`.

    Each assistant is trained from the previous (larger) model for `epochs`
    epochs, and the student from the last assistant for `epochs` epochs.
    Every stage uses the same `distill` settings (temperature,
    standardization, loss weights, ``validation_data`` and ``fallback``): with
    ``fallback="scratch"`` each assistant, like the student, keeps the better
    of its distilled and labels-only weights before it teaches the next stage.

    Args:
        teacher: trained logits model; not modified.
        student: logits model, trained in place.
        x: training inputs (arrays or a dataset yielding ``(x, y)``).
        y: labels, or None for datasets. Default None.
        assistants: a count (sizes chosen by `assistant_widths` from the
            teacher's architecture), a list of width multipliers for
            `derive_student`, or a list of models; largest first. Default 1.
        epochs: epochs per stage. Default 1.
        optimizer: optimizer name or zero-argument factory; a fresh optimizer
            is made per stage, so instances are refused. Default ``"adam"``.
        callbacks: callbacks (or, with a fallback, a factory returning them)
            for the final (student) stage only, e.g. a pruning callback
            wrapped in `StudentCallback`. Default none.
        **distill_kwargs: other `distill` keywords (batch_size, temperature,
            standardize, student_loss_weight, feature losses,
            validation_data, fallback, verbose, ...), used for every stage.
            Feature losses must name layers present in every model.

    Returns:
        A `TeacherAssistantResult`.

    Raises:
        DistillationConfigError: an optimizer instance, assistants that do not
            shrink strictly between teacher and student, or any `distill` error.

    Example:
        >>> import keras, numpy as np
        >>> keras.utils.set_random_seed(0)
        >>> x = np.random.rand(64, 8).astype("float32"); y = (x[:, 0] > 0.5).astype("int32")
        >>> teacher = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"),
        ...                             keras.layers.Dense(2)])
        >>> student = derive_student(teacher, 0.05)
        >>> result = distill_with_assistants(teacher, student, x, y, assistants=1, epochs=1)
        >>> [m.count_params() for m in (teacher, *result.assistants, result.student)]
        [706, 167, 35]
        >>> result.fallbacks
        (None, None)
    """
    if isinstance(optimizer, keras.optimizers.Optimizer):
        raise DistillationConfigError(
            "expected `optimizer` to be a name or a zero-argument factory: each stage needs a "
            f"fresh optimizer. Received the instance {optimizer!r}. Pass e.g. "
            "lambda: keras.optimizers.Adam(1e-3)."
        )
    models = _resolve_assistants(teacher, student, assistants)
    chain = [teacher, *models, student]
    histories = []
    for stage, (big, small) in enumerate(zip(chain, chain[1:])):
        _log.info(
            "teacher-assistant stage %d: %s (%d params) -> %s (%d params)",
            stage, big.name, big.count_params(), small.name, small.count_params(),
        )
        is_last = small is student
        histories.append(
            distill(
                big,
                small,
                x,
                y,
                epochs=epochs,
                optimizer=optimizer,
                callbacks=callbacks if is_last else (),
                **distill_kwargs,
            )
        )
    return TeacherAssistantResult(student=student, assistants=tuple(models), histories=tuple(histories))
