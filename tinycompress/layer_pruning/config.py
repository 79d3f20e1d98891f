"""`LayerPruningConfig`: how many layers or blocks layer pruning removes (a value object)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinycompress.errors import LayerPruningError

__all__ = ["LayerPruningConfig", "LayerPruningError", "KINDS"]

#: Candidate kinds: identity residual blocks, shape-preserving layer groups.
KINDS = ("residual", "layer")


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class LayerPruningConfig:
    """How `tinycompress.layer_pruning.apply` chooses what to remove.

    Exactly one stopping rule: `remove` (the k least important candidates),
    `max_macs` or `max_params` (remove least important first until the
    model's Dense/conv MACs or parameters fit). None given: remove 1.

    Args:
        remove: number of candidates to remove. Default None.
        max_macs: MACs budget of the whole model (Dense and convolution
            multiply-accumulates per sample, as `macs` counts them). Default None.
        max_params: parameter budget of the whole model. Default None.
        kinds: candidate kinds, a subset of ``("residual", "layer")``.
            Default both.
        batch_size: batch size of the validation passes that score candidates.
            Default 256.

    Raises:
        LayerPruningError: several rules, or a value out of range.

    Example:
        >>> c = LayerPruningConfig(max_macs=1_000_000, kinds=["residual"])
        >>> LayerPruningConfig.from_config(c.get_config()) == c, LayerPruningConfig().remove
        (True, 1)
    """

    remove: int | None = None
    max_macs: int | None = None
    max_params: int | None = None
    kinds: tuple[str, ...] = KINDS
    batch_size: int = 256

    def __post_init__(self) -> None:
        rules = [n for n in ("remove", "max_macs", "max_params") if getattr(self, n) is not None]
        if len(rules) > 1:
            raise LayerPruningError(
                f"give exactly one of remove=, max_macs=, max_params=. Received: {rules}."
            )
        for name in rules:
            if not _positive_int(getattr(self, name)):
                raise LayerPruningError(
                    f"`{name}` must be a positive integer. Received: {name}={getattr(self, name)!r}."
                )
        if not rules:
            object.__setattr__(self, "remove", 1)
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        if not kinds or any(k not in KINDS for k in kinds):
            raise LayerPruningError(f"`kinds` must be a non-empty subset of {KINDS}. Received: "
                                    f"kinds={self.kinds!r}.")
        object.__setattr__(self, "kinds", kinds)
        if not _positive_int(self.batch_size):
            raise LayerPruningError(f"`batch_size` must be a positive integer. Received: "
                                    f"batch_size={self.batch_size!r}.")

    def get_config(self) -> dict[str, Any]:
        """Flat config (`kinds` as a list)."""
        config = {f.name: getattr(self, f.name) for f in fields(self)}
        config["kinds"] = list(self.kinds)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LayerPruningConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)
