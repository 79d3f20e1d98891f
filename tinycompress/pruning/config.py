"""`PruningConfig`: the settings of pruning, as a value object (the technique contract)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinycompress.core import LayerSelector, selector_config
from tinycompress.errors import PruningError
from tinycompress.pruning.masks import CRITERIA, GRANULARITIES
from tinycompress.pruning.schedules import PruningSchedule, schedule_from_config

__all__ = ["PruningConfig"]


def _check(config: "PruningConfig") -> None:
    c = config
    if not isinstance(c.schedule, PruningSchedule):
        raise PruningError(
            f"`schedule` must be a PruningSchedule such as PolynomialDecay(...). "
            f"Received: schedule={c.schedule!r}."
        )
    if c.granularity not in GRANULARITIES:
        raise PruningError(
            f"`granularity` must be one of {GRANULARITIES}. Received: granularity={c.granularity!r}."
        )
    if c.criterion not in CRITERIA:
        raise PruningError(f"`criterion` must be one of {CRITERIA}. Received: criterion={c.criterion!r}.")
    if c.criterion == "bn_gamma" and c.granularity != "channel":
        raise PruningError(
            "criterion='bn_gamma' (network slimming) ranks whole channels; use it with "
            f"granularity='channel'. Received: granularity={c.granularity!r}."
        )
    if c.scope not in ("layer", "global"):
        raise PruningError(f"`scope` must be 'layer' or 'global'. Received: scope={c.scope!r}.")
    if not isinstance(c.block_size, int) or c.block_size < 1:
        raise PruningError(f"`block_size` must be a positive integer. Received: {c.block_size!r}.")
    if not (isinstance(c.n, int) and isinstance(c.m, int) and 0 < c.n < c.m):
        raise PruningError(f"N:M sparsity needs integers 0 < n < m. Received: n={c.n!r}, m={c.m!r}.")
    if isinstance(c.slimming_l1, bool) or not isinstance(c.slimming_l1, (int, float)) or c.slimming_l1 < 0:
        raise PruningError(f"`slimming_l1` must be >= 0. Received: slimming_l1={c.slimming_l1!r}.")


@dataclass(frozen=True)
class PruningConfig:
    """How `PruningCallback` prunes (see its docs for each setting).

    Args:
        schedule: a `PruningSchedule` (or its ``{"class_name", "config"}`` dict).
        layers: the `layers=` selector. Default None: every prunable layer.
        granularity: "weight" (default), "block", "n_of_m" or "channel".
        criterion: "l1" (default), "l2" or "bn_gamma".
        scope: "layer" (default) or "global".
        block_size: block length for "block". Default 4.
        n: weights kept per group for "n_of_m". Default 2.
        m: group length for "n_of_m". Default 4.
        slimming_l1: L1 penalty on BatchNorm gammas during `fit`. Default 0.0.

    Raises:
        PruningError: a setting is invalid.

    Example:
        >>> from tinycompress.pruning import ConstantSparsity
        >>> c = PruningConfig(ConstantSparsity(0.5), layers=["fc"], granularity="block")
        >>> PruningConfig.from_config(c.get_config()) == c
        True
    """

    schedule: PruningSchedule
    layers: LayerSelector = None
    granularity: str = "weight"
    criterion: str = "l1"
    scope: str = "layer"
    block_size: int = 4
    n: int = 2
    m: int = 4
    slimming_l1: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.schedule, dict):
            object.__setattr__(self, "schedule", schedule_from_config(self.schedule))
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        _check(self)
        object.__setattr__(self, "slimming_l1", float(self.slimming_l1))

    def get_config(self) -> dict[str, Any]:
        """Flat config; the schedule as ``{"class_name", "config"}``.

        Raises:
            PruningError: `layers` is a class or predicate (only names serialize).
        """
        config = {f.name: getattr(self, f.name) for f in fields(self)}
        config["schedule"] = {"class_name": type(self.schedule).__name__,
                              "config": self.schedule.get_config()}
        config["layers"] = selector_config(self.layers, PruningError)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PruningConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)
