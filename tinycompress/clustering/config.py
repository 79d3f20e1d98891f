"""`ClusteringConfig`: the settings of weight clustering, as a value object."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tinycompress.clustering.wrapper import check_settings
from tinycompress.core import LayerSelector, selector_config
from tinycompress.errors import ClusteringError

__all__ = ["ClusteringConfig"]


@dataclass(frozen=True)
class ClusteringConfig:
    """How `cluster_weights` clusters and `ReassignClusters` re-assigns.

    Args:
        bits: index width, 2..7 (K = 2**bits values per table). Default 4.
        layers: the `layers=` selector. Default None: every clusterable layer.
        granularity: "auto" (default), "per_tensor" or "per_channel".
        init: "kmeans++" (default) or "linear".
        preserve_sparsity: keep exact zeros at zero. Default True.
        seed: k-means++ seed. Default 0.
        reassign_every: epochs between `ReassignClusters` re-assignments, or
            None (default: assignments stay fixed, only centroids train).

    Raises:
        ClusteringError: a setting is out of range.

    Example:
        >>> c = ClusteringConfig(bits=3, layers=["fc"], reassign_every=2)
        >>> ClusteringConfig.from_config(c.get_config()) == c
        True
    """

    bits: int = 4
    layers: LayerSelector = None
    granularity: str = "auto"
    init: str = "kmeans++"
    preserve_sparsity: bool = True
    seed: int = 0
    reassign_every: int | None = None

    def __post_init__(self) -> None:
        check_settings(self.bits, self.granularity, self.init)
        if isinstance(self.layers, list):
            object.__setattr__(self, "layers", tuple(self.layers))
        r = self.reassign_every
        if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 1):
            raise ClusteringError(
                f"expected reassign_every to be None or a positive integer (epochs). "
                f"Received reassign_every={r!r}."
            )

    def get_config(self) -> dict[str, Any]:
        """The fields as a flat dictionary (layers as names).

        Raises:
            ClusteringError: `layers` is a class or predicate (only names serialize).
        """
        config = {f.name: getattr(self, f.name) for f in fields(self)}
        config["layers"] = selector_config(self.layers, ClusteringError)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ClusteringConfig":
        """Rebuild from `get_config`'s dictionary."""
        return cls(**config)
