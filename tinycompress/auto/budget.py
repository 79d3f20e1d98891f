"""`Budget`: what a model may cost on the device, and the check against measured figures.

A budget is a small value object (like MCT's ``ResourceUtilization``): flash
bytes, tensor arena bytes, MACs per inference, latency, energy per inference
and a minimum accuracy, each optional. `Budget.is_satisfied_by` compares it
with measured figures: a mapping or object with the keys of `METRICS`, or a
`tinycompress.BuildResult` (flash, arena and MACs). The arena compared is
``kTensorArenaSize`` (`ArenaMeasurement.emitted_bytes`), what the firmware
declares.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tinycompress.errors import BudgetError

__all__ = ["Budget", "METRICS", "parse_bytes", "parse_ms", "parse_uj", "parse_accuracy", "metrics_of"]

#: Budget field -> the measured figure it bounds (``min_accuracy`` is a floor, the rest ceilings).
METRICS = {
    "flash_bytes": "flash_bytes",
    "arena_bytes": "arena_bytes",
    "macs": "macs",
    "latency_ms": "latency_ms",
    "energy_uj": "energy_uj",
    "min_accuracy": "accuracy",
}

_BYTE_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "k": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2,
               "m": 1024 ** 2}
_MS_UNITS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 1e-3, "µs": 1e-3}
_UJ_UNITS = {"": 1.0, "uj": 1.0, "µj": 1.0, "mj": 1e3, "j": 1e6, "nj": 1e-3}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zµ%]*)\s*$", re.IGNORECASE)


def _parse(text: Any, units: dict[str, float], what: str, example: str) -> float:
    if isinstance(text, bool):
        raise BudgetError(f"expected {what} like {example!r}. Received: {text!r}.")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _NUMBER.match(str(text))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in units:
            raise BudgetError(f"expected {what} like {example!r} (units: "
                              f"{', '.join(u for u in units if u)}). Received: {text!r}.")
        value = float(match.group(1)) * units[unit]
    if not math.isfinite(value) or value <= 0:
        raise BudgetError(f"expected {what} > 0. Received: {text!r}.")
    return value


def parse_bytes(text: str | int) -> int:
    """Bytes from ``"64KB"``, ``"20 KiB"``, ``"1MB"`` or a number (KB = 1024 bytes).

    Raises:
        BudgetError: not a positive size.

    Example:
        >>> parse_bytes("64KB"), parse_bytes("1.5k"), parse_bytes(300)
        (65536, 1536, 300)
    """
    return int(round(_parse(text, _BYTE_UNITS, "a size", "64KB")))


def parse_ms(text: str | float) -> float:
    """Milliseconds from ``"30ms"``, ``"0.5s"``, ``"800us"`` or a number (ms).

    Example:
        >>> parse_ms("30ms"), parse_ms("0.5s"), parse_ms(2)
        (30.0, 500.0, 2.0)
    """
    return _parse(text, _MS_UNITS, "a latency", "30ms")


def parse_uj(text: str | float) -> float:
    """Microjoules from ``"50uJ"``, ``"1.2mJ"`` or a number (uJ).

    Example:
        >>> parse_uj("50uJ"), parse_uj("1.2mJ")
        (50.0, 1200.0)
    """
    return _parse(text, _UJ_UNITS, "an energy", "50uJ")


def parse_accuracy(text: str | float) -> float:
    """An accuracy in (0, 1] from ``"0.9"``, ``"90%"`` or a number.

    Example:
        >>> parse_accuracy("90%"), parse_accuracy(0.75)
        (0.9, 0.75)
    """
    value = _parse(text, {"": 1.0, "%": 0.01}, "an accuracy", "0.9")
    if value > 1.0:
        raise BudgetError(f"expected an accuracy in (0, 1] or a percentage. Received: {text!r}.")
    return value


def metrics_of(report: Any) -> dict[str, float | None]:
    """The measured figures of ``report`` under the names of `METRICS`' values.

    Args:
        report: a mapping, an object with those attributes (a
            `tinycompress.auto.TrialRecord`'s ``metrics``), or a
            `tinycompress.BuildResult` (flash, ``kTensorArenaSize``, MACs).

    Returns:
        ``{"flash_bytes", "arena_bytes", "macs", "latency_ms", "energy_uj",
        "accuracy"}`` -> value, None where not measured.
    """
    names = set(METRICS.values())
    if isinstance(report, Mapping):
        return {n: report.get(n) for n in names}
    if hasattr(report, "arena") and hasattr(report, "report") and hasattr(report, "model"):
        return {**dict.fromkeys(names), "flash_bytes": len(report.model),
                "arena_bytes": report.arena.emitted_bytes, "macs": report.report.macs}
    return {n: getattr(report, n, None) for n in names}


@dataclass(frozen=True)
class Budget:
    """What a model may cost on the device; every field optional.

    Args:
        flash_bytes: largest model (flatbuffer) size, bytes or ``"64KB"``. Default None.
        arena_bytes: largest ``kTensorArenaSize``, bytes or ``"20KB"``. Default None.
        macs: most multiply-accumulates per inference. Default None.
        latency_ms: longest inference, ms or ``"30ms"`` (estimated by the device
            cost model, `tflite_export.cost`; needs a device). Default None.
        energy_uj: most energy per inference, uJ or ``"50uJ"`` (cost model). Default None.
        min_accuracy: lowest accuracy of the int8 model on TFLM, in (0, 1]. Default None.

    Raises:
        BudgetError: a value is not positive or not parseable.

    Example:
        >>> b = Budget(flash_bytes="16KB", arena_bytes=8192, min_accuracy="90%")
        >>> b.flash_bytes, Budget.from_config(b.get_config()) == b
        (16384, True)
        >>> b.violations({"flash_bytes": 20000, "arena_bytes": 4000, "accuracy": 0.95})
        ['flash 20000 B > 16384 B']
        >>> b.is_satisfied_by({"flash_bytes": 9000, "arena_bytes": 4000, "accuracy": 0.95})
        True
    """

    flash_bytes: int | None = None
    arena_bytes: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    energy_uj: float | None = None
    min_accuracy: float | None = None

    def __post_init__(self) -> None:
        parsers = {"flash_bytes": parse_bytes, "arena_bytes": parse_bytes,
                   "macs": lambda v: int(round(_parse(v, {"": 1, "k": 1e3, "m": 1e6}, "MACs", "2M"))),
                   "latency_ms": parse_ms, "energy_uj": parse_uj, "min_accuracy": parse_accuracy}
        for name, parse in parsers.items():
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse(value))

    @property
    def needs_device(self) -> bool:
        """Whether a figure of the device cost model (latency, energy) is bounded."""
        return self.latency_ms is not None or self.energy_uj is not None

    def limits(self) -> dict[str, float]:
        """The fields that are set, name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def excess(self, report: Any) -> dict[str, float]:
        """Relative excess over each set limit: ``measured / limit - 1`` for ceilings,
        ``floor - accuracy`` for the accuracy floor; <= 0 where the limit is met,
        ``inf`` where the figure was not measured."""
        measured = metrics_of(report)
        out = {}
        for name, limit in self.limits().items():
            value = measured[METRICS[name]]
            if value is None:
                out[name] = math.inf
            elif name == "min_accuracy":
                out[name] = limit - float(value)
            else:
                out[name] = float(value) / limit - 1.0
        return out

    def violations(self, report: Any) -> list[str]:
        """What ``report`` exceeds, one readable line per limit (empty when satisfied)."""
        measured = metrics_of(report)
        lines = []
        for name, over in self.excess(report).items():
            if over <= 0:
                continue
            value, limit = measured[METRICS[name]], getattr(self, name)
            lines.append(_violation(name, value, limit))
        return lines

    def is_satisfied_by(self, report: Any) -> bool:
        """Whether every set limit is met by ``report`` (see `metrics_of`); an unmeasured
        figure that is bounded does not satisfy the budget."""
        return not self.violations(report)

    def describe(self) -> str:
        """The set limits in one line, e.g. ``"flash <= 16384 B, accuracy >= 0.9"``."""
        parts = [_LABELS[name].format(value) for name, value in self.limits().items()]
        return ", ".join(parts) or "no limit"

    def get_config(self) -> dict[str, Any]:
        """The fields as a flat dictionary."""
        return asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Budget:
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)


_LABELS = {
    "flash_bytes": "flash <= {} B", "arena_bytes": "arena <= {} B", "macs": "MACs <= {}",
    "latency_ms": "latency <= {:g} ms", "energy_uj": "energy <= {:g} uJ",
    "min_accuracy": "accuracy >= {:.4g}",
}
_UNITS = {"flash_bytes": ("flash", " B"), "arena_bytes": ("arena", " B"), "macs": ("MACs", ""),
          "latency_ms": ("latency", " ms"), "energy_uj": ("energy", " uJ")}


def _violation(name: str, value: Any, limit: float) -> str:
    if name == "min_accuracy":
        return "accuracy not measured" if value is None else f"accuracy {value:.4f} < {limit:.4f}"
    label, unit = _UNITS[name]
    if value is None:
        return f"{label} not measured"
    return f"{label} {value:g}{unit} > {limit:g}{unit}"
