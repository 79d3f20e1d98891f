"""Argument checks shared by the distillation helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tinycompress.distillation.errors import DistillationConfigError


def check_temperature(temperature: object) -> float:
    """Return `temperature` as a float or raise `DistillationConfigError`."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise DistillationConfigError(
            "expected `temperature` to be a finite number > 0 (typical values 2-8). "
            f"Received: temperature={temperature!r}. Pass e.g. temperature=4.0."
        )
    return float(temperature)


def check_weight(name: str, value: object, *, upper: float | None = None) -> float:
    """Return a finite, non-negative loss weight (at most `upper` if given)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (upper is not None and value > upper)
    ):
        bound = f"in [0, {upper:g}]" if upper is not None else ">= 0"
        raise DistillationConfigError(
            f"expected `{name}` to be a finite number {bound}. Received: {name}={value!r}. "
            f"Pass a number {bound}."
        )
    return float(value)


def check_weights(name: str, values: Sequence[object], count: int) -> list[float]:
    """Validate a list of `count` loss weights."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise DistillationConfigError(
            f"expected `{name}` to be a list of {count} numbers. Received: {values!r}. "
            "Pass one weight per loss."
        )
    if len(values) != count:
        raise DistillationConfigError(
            f"expected `{name}` to hold one weight per loss ({count}). Received "
            f"{len(values)} weights: {list(values)!r}. Pass {count} weights or None for 1.0 each."
        )
    return [check_weight(f"{name}[{i}]", v) for i, v in enumerate(values)]


def check_positive_int(name: str, value: object) -> int:
    """Return `value` if it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DistillationConfigError(
            f"expected `{name}` to be a positive integer. Received: {name}={value!r}."
        )
    return value
