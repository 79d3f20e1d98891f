"""Distillation's side of the technique contract (`tinycompress.core.technique`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import keras

from tinycompress.core import Technique
from tinycompress.distillation._validate import check_temperature, check_weight
from tinycompress.distillation.distiller import build_distiller
from tinycompress.errors import DistillationConfigError

__all__ = ["DistillationConfig", "apply", "callbacks", "TECHNIQUE"]


@dataclass(frozen=True)
class DistillationConfig:
    """The logits-distillation settings of `build_distiller` as a value object.

    Args:
        temperature: softmax temperature, > 0. Default 4.0.
        student_loss_weight: weight of the label loss, in [0, 1]. Default 0.1.
        logits_weight: weight of the logits term, >= 0. Default 1.0.
        standardize: z-score teacher and student logits per sample before the
            temperature softmax (see `build_distiller`). Default True.

    Raises:
        DistillationConfigError: a value is out of range.

    Example:
        >>> c = DistillationConfig(temperature=2.0)
        >>> DistillationConfig.from_config(c.get_config()) == c
        True
    """

    temperature: float = 4.0
    student_loss_weight: float = 0.1
    logits_weight: float = 1.0
    standardize: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperature", check_temperature(self.temperature))
        object.__setattr__(self, "student_loss_weight",
                           check_weight("student_loss_weight", self.student_loss_weight, upper=1.0))
        object.__setattr__(self, "logits_weight", check_weight("logits_weight", self.logits_weight))

    def get_config(self) -> dict[str, Any]:
        """The fields as a flat dictionary."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DistillationConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)


def apply(model: keras.Model, config: DistillationConfig, *, teacher: keras.Model) -> keras.Model:
    """A `keras.distillation.Distiller` that trains `model` (the student) from `teacher`.

    Compile it with the student's label loss (keywords only) and fit it; the
    student trains in place. `tinycompress.core.prepare_for_export` on the
    distiller returns the prepared student.

    Raises:
        DistillationConfigError: `teacher` is missing or not a model, or a
            model ends in softmax (see `build_distiller`).

    Example:
        >>> def mlp(units):
        ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(3)])
        >>> type(apply(mlp(4), DistillationConfig(), teacher=mlp(16))).__name__
        'Distiller'
    """
    if teacher is None:
        raise DistillationConfigError("distillation needs a teacher: apply(student, config, teacher=model).")
    return build_distiller(teacher, model, **config.get_config())


def callbacks(config: DistillationConfig) -> list[keras.callbacks.Callback]:
    """None: the `Distiller` itself trains the student (wrap other techniques' callbacks in
    `StudentCallback`).

    Example:
        >>> callbacks(DistillationConfig())
        []
    """
    return []


#: Distillation's contract entry points.
TECHNIQUE = Technique("distillation", DistillationConfig, apply, callbacks)
