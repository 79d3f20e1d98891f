"""Per-layer sparsity of a model: how many weights are exactly zero."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import keras
import numpy as np

from tinycompress.core import walk_layers
from tinycompress.pruning.selection import is_prunable, prunable_weights

__all__ = ["LayerSparsity", "sparsity_summary"]


@dataclass(frozen=True)
class LayerSparsity:
    """Zeros in one prunable weight.

    Attributes:
        layer: layer name.
        weight: variable name (e.g. ``kernel``).
        shape: variable shape.
        size: number of weights.
        zeros: number of exact zeros.
        channels: output channels (last axis).
        dead_channels: output channels whose weights are all zero.
    """

    layer: str
    weight: str
    shape: tuple[int, ...]
    size: int
    zeros: int
    channels: int
    dead_channels: int

    @property
    def sparsity(self) -> float:
        """Fraction of zeros."""
        return self.zeros / self.size if self.size else 0.0

    def to_dict(self) -> dict:
        """JSON-ready dict, with `sparsity`."""
        return {**asdict(self), "shape": list(self.shape), "sparsity": self.sparsity}


def sparsity_summary(model: keras.Model) -> list[LayerSparsity]:
    """Sparsity of every prunable weight of `model`.

    Args:
        model: a built Keras model.

    Returns:
        One `LayerSparsity` per prunable weight, in model order.

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
        >>> _ = m.layers[0].kernel.assign(np.array([[0, 1], [0, 2], [0, 3], [0, 0]], "float32"))
        >>> r = sparsity_summary(m)[0]
        >>> r.layer, r.zeros, r.sparsity, r.dead_channels
        ('d', 5, 0.625, 1)
    """
    rows = []
    for layer in dict.fromkeys(walk_layers(model)):
        if not is_prunable(layer) or not layer.built:
            continue
        for v in prunable_weights(layer):
            w = keras.ops.convert_to_numpy(v)
            per_out = w.reshape(-1, w.shape[-1]) if w.ndim else w.reshape(1, 1)
            rows.append(LayerSparsity(
                layer=layer.name, weight=v.name, shape=tuple(w.shape), size=int(w.size),
                zeros=int(np.sum(w == 0)), channels=int(per_out.shape[-1]),
                dead_channels=int(np.sum(~np.any(per_out != 0, axis=0))),
            ))
    return rows
