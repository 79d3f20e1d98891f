"""`LowRankConfig`: how ranks are chosen for low-rank factorization (a value object)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinycompress.core import LayerSelector, selector_config
from tinycompress.errors import LowRankError

__all__ = ["LowRankConfig", "LowRankError", "DEFAULT_ENERGY"]

#: Kept singular-value energy when no rule is given.
DEFAULT_ENERGY = 0.95


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_rank(name: str, rank: object) -> tuple[int, ...]:
    ranks = (rank,) if _is_int(rank) else tuple(rank) if isinstance(rank, (list, tuple)) else None
    if ranks is None or len(ranks) not in (1, 2) or not all(_is_int(r) and r >= 1 for r in ranks):
        raise LowRankError(
            f"the rank of layer {name!r} must be a positive integer (SVD) or a pair of positive "
            f"integers (Tucker-2 input and output ranks of a convolution). Received: {rank!r}."
        )
    return ranks


def _check(c: "LowRankConfig") -> None:
    given = [n for n in ("energy", "max_params", "ranks") if getattr(c, n) is not None]
    if len(given) > 1:
        raise LowRankError(
            f"give exactly one rank rule: energy=, max_params= or ranks=. Received: {given}."
        )
    if c.energy is not None and (isinstance(c.energy, bool) or not isinstance(c.energy, (int, float))
                                 or not 0.0 < c.energy <= 1.0):
        raise LowRankError(f"`energy` must be in (0, 1]. Received: energy={c.energy!r}.")
    if c.max_params is not None and (not _is_int(c.max_params) or c.max_params < 1):
        raise LowRankError(
            f"`max_params` must be a positive integer (whole-model parameters). "
            f"Received: max_params={c.max_params!r}."
        )
    if c.ranks is not None and (not isinstance(c.ranks, dict) or not c.ranks):
        raise LowRankError(
            "`ranks` must be a non-empty dict {layer name: rank}. Received: ranks="
            f"{c.ranks!r}."
        )
    if not isinstance(c.tucker, bool):
        raise LowRankError(f"`tucker` must be True or False. Received: tucker={c.tucker!r}.")


@dataclass(frozen=True)
class LowRankConfig:
    """How `tinycompress.lowrank.apply` chooses each layer's rank.

    Exactly one rule: `energy` (per layer, the smallest rank keeping that
    fraction of the squared singular values), `max_params` (one energy level
    for all layers, the highest whose factored model has at most that many
    parameters; int8 flash is about one byte per parameter plus the
    flatbuffer's overhead) or `ranks` (explicit). None given: energy 0.95.
    A layer whose factored form would not have fewer kernel parameters than
    the original is left alone and reported.

    Args:
        layers: the `layers=` selector over Dense, Conv1D and Conv2D layers.
            Default None: all of them (the names in `ranks` when given).
        energy: kept singular-value energy in (0, 1]. Default None.
        max_params: parameter budget of the whole model. Default None.
        ranks: ``{layer name: r}`` (SVD) or ``{name: (r_in, r_out)}``
            (Tucker-2 for a convolution). Default None.
        tucker: let convolutions with a kernel larger than 1 use Tucker-2
            (1x1 -> kxk -> 1x1) where it needs fewer parameters than SVD at the
            same energy. Default True.

    Raises:
        LowRankError: several rules, or a value out of range.

    Example:
        >>> c = LowRankConfig(ranks={"fc1": 16, "conv2": (8, 12)})
        >>> LowRankConfig.from_config(c.get_config()) == c, c.ranks["conv2"]
        (True, (8, 12))
        >>> LowRankConfig().energy
        0.95
    """

    layers: LayerSelector = None
    energy: float | None = None
    max_params: int | None = None
    ranks: dict[str, Any] | None = None
    tucker: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        _check(self)
        if self.ranks is not None:
            ranks = {str(n): _check_rank(n, r) for n, r in self.ranks.items()}
            object.__setattr__(self, "ranks", {n: r[0] if len(r) == 1 else r for n, r in ranks.items()})
        if self.energy is None and self.max_params is None and self.ranks is None:
            object.__setattr__(self, "energy", DEFAULT_ENERGY)
        if self.energy is not None:
            object.__setattr__(self, "energy", float(self.energy))

    def get_config(self) -> dict[str, Any]:
        """Flat config (ranks as lists; `layers` as names).

        Raises:
            LowRankError: `layers` is a class or predicate (only names serialize).
        """
        config = {f.name: getattr(self, f.name) for f in fields(self)}
        config["layers"] = selector_config(self.layers, LowRankError)
        if self.ranks is not None:
            config["ranks"] = {n: list(r) if isinstance(r, tuple) else r for n, r in self.ranks.items()}
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "LowRankConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)
