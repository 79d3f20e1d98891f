"""Pruning schedules: when to prune, and to which sparsity.

A schedule is a small value object. Calling it with the global training step
(the optimizer's ``iterations``) returns ``(prune_now, sparsity)``: whether the
masks are recomputed at this step, and the target sparsity they get.
``from_config(get_config())`` returns an equal object.
"""

from __future__ import annotations

import abc
from typing import Any

import keras

from tinycompress.errors import PruningError

__all__ = ["PruningSchedule", "ConstantSparsity", "PolynomialDecay", "schedule_from_config"]


def _check_sparsity(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise PruningError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}. "
            "Pass the fraction of weights to set to zero, e.g. 0.9."
        )
    return float(value)


def _check_step(name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise PruningError(
            f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}."
        )
    return value


class PruningSchedule(abc.ABC):
    """Base class: prune every `frequency` steps between `begin_step` and `end_step`.

    Subclasses define `sparsity(step)`.

    Args:
        begin_step: first step at which masks are computed. Default 0.
        end_step: last step at which masks are recomputed; -1 (default) means
            never stop. After it the masks stay as they are.
        frequency: recompute masks every `frequency` steps. Default 100.

    Raises:
        PruningError: a step is negative, `end_step` precedes `begin_step` or
            `frequency` is not positive.
    """

    def __init__(self, begin_step: int = 0, end_step: int = -1, frequency: int = 100):
        self.begin_step = _check_step("begin_step", begin_step, 0)
        self.end_step = _check_step("end_step", end_step, -1)
        self.frequency = _check_step("frequency", frequency, 1)
        if end_step != -1 and end_step < begin_step:
            raise PruningError(
                f"`end_step` must be -1 or >= begin_step={begin_step}. "
                f"Received: end_step={end_step}."
            )

    @abc.abstractmethod
    def sparsity(self, step: int) -> float:
        """Target sparsity at `step`."""

    def prune_now(self, step: int) -> bool:
        """Whether masks are recomputed at `step`."""
        if step < self.begin_step or (self.end_step != -1 and step > self.end_step):
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0

    def __call__(self, step: int) -> tuple[bool, float]:
        """Return ``(prune_now, target_sparsity)`` for the global `step`."""
        return self.prune_now(step), self.sparsity(step)

    def get_config(self) -> dict[str, Any]:
        """Flat config; `from_config` of it returns an equal schedule."""
        return {"begin_step": self.begin_step, "end_step": self.end_step, "frequency": self.frequency}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PruningSchedule":
        """Rebuild a schedule from `get_config()`."""
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="tinycompress")
class ConstantSparsity(PruningSchedule):
    """The same target sparsity at every pruning step.

    Args:
        target_sparsity: fraction of weights set to zero, in [0, 1).
        begin_step: first pruning step. Default 0.
        end_step: last pruning step, -1 (default) for never stop.
        frequency: steps between mask updates. Default 100.

    Raises:
        PruningError: an argument is out of range.

    Example:
        >>> s = ConstantSparsity(0.5, begin_step=10, frequency=10)
        >>> s(0), s(10), s(15), s(20)
        ((False, 0.5), (True, 0.5), (False, 0.5), (True, 0.5))
        >>> ConstantSparsity.from_config(s.get_config()) == s
        True
    """

    def __init__(self, target_sparsity: float, begin_step: int = 0, end_step: int = -1,
                 frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _check_sparsity("target_sparsity", target_sparsity)

    def sparsity(self, step: int) -> float:
        """`target_sparsity`, whatever the step."""
        return self.target_sparsity

    def get_config(self) -> dict[str, Any]:
        """Flat config including `target_sparsity`."""
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="tinycompress")
class PolynomialDecay(PruningSchedule):
    """Sparsity that rises from `initial_sparsity` to `final_sparsity` (Zhu & Gupta 2017).

    ``s(t) = final + (initial - final) * (1 - (t - begin) / (end - begin)) ** power``
    for ``begin <= t <= end``; `initial_sparsity` before, `final_sparsity` after.
    This is TFMOT's default schedule.

    Args:
        initial_sparsity: sparsity at `begin_step`, in [0, 1).
        final_sparsity: sparsity at and after `end_step`, in [0, 1).
        begin_step: first pruning step. Default 0.
        end_step: step at which `final_sparsity` is reached (required, > begin_step).
        power: exponent of the decay. Default 3.
        frequency: steps between mask updates. Default 100.

    Raises:
        PruningError: an argument is out of range or `end_step` is not after
            `begin_step`.

    Example:
        >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=50)
        >>> [(p, round(v, 3)) for p, v in (s(0), s(50), s(100), s(150))]
        [(True, 0.0), (True, 0.7), (True, 0.8), (False, 0.8)]
        >>> PolynomialDecay.from_config(s.get_config()) == s
        True
    """

    def __init__(self, initial_sparsity: float, final_sparsity: float, begin_step: int = 0,
                 end_step: int = 1000, power: float = 3.0, frequency: int = 100):
        super().__init__(begin_step, end_step, frequency)
        if end_step <= begin_step:
            raise PruningError(
                f"PolynomialDecay needs end_step > begin_step. Received: "
                f"begin_step={begin_step}, end_step={end_step}. Set end_step to the step at "
                "which final_sparsity is reached."
            )
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        self.final_sparsity = _check_sparsity("final_sparsity", final_sparsity)
        if not isinstance(power, (int, float)) or isinstance(power, bool) or power <= 0:
            raise PruningError(f"`power` must be a positive number. Received: power={power!r}.")
        self.power = float(power)

    def sparsity(self, step: int) -> float:
        """Decayed sparsity at `step`, clamped to [begin_step, end_step]."""
        t = min(max(step, self.begin_step), self.end_step)
        frac = 1.0 - (t - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * frac**self.power

    def get_config(self) -> dict[str, Any]:
        """Flat config including sparsities and `power`."""
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            **super().get_config(),
            "power": self.power,
        }


_SCHEDULES = {"ConstantSparsity": ConstantSparsity, "PolynomialDecay": PolynomialDecay}


def schedule_from_config(config: dict[str, Any]) -> PruningSchedule:
    """Rebuild a schedule from ``{"class_name": ..., "config": ...}``.

    Args:
        config: a dict with the schedule's class name and its `get_config()`.

    Returns:
        The schedule.

    Raises:
        PruningError: the class name is not a known schedule.

    Example:
        >>> schedule_from_config({"class_name": "ConstantSparsity",
        ...                       "config": {"target_sparsity": 0.5}})
        ConstantSparsity(target_sparsity=0.5, begin_step=0, end_step=-1, frequency=100)
    """
    name = config.get("class_name")
    if name not in _SCHEDULES:
        raise PruningError(
            f"Unknown pruning schedule class {name!r}; expected one of {sorted(_SCHEDULES)}."
        )
    return _SCHEDULES[name].from_config(config.get("config", {}))
