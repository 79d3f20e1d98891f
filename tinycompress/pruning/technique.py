"""Pruning's side of the technique contract (`tinycompress.core.technique`)."""

from __future__ import annotations

from dataclasses import fields

import keras

from tinycompress.core import Technique
from tinycompress.pruning.callback import PruningCallback
from tinycompress.pruning.config import PruningConfig
from tinycompress.pruning.graph import build_channel_graph
from tinycompress.pruning.selection import select_layers

__all__ = ["apply", "callbacks", "TECHNIQUE"]


def apply(model: keras.Model, config: PruningConfig) -> keras.Model:
    """Check that `config` can prune `model`, and return `model` to train.

    Pruning needs no wrapper: `PruningCallback` masks the model's own kernels
    during `fit`. Checking here raises before any training.

    Args:
        model: the model to prune.
        config: a `PruningConfig`.

    Returns:
        `model` itself.

    Raises:
        PruningError: nothing selected, or a named layer is missing or not prunable.
        UnsupportedLayerError: channel pruning meets a layer it cannot follow.

    Example:
        >>> from tinycompress.pruning import ConstantSparsity
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> apply(m, PruningConfig(ConstantSparsity(0.5))) is m
        True
    """
    select_layers(model, config.layers)
    if config.granularity == "channel":
        build_channel_graph(model)
    return model


def callbacks(config: PruningConfig, *, log_summary: bool = True) -> list[keras.callbacks.Callback]:
    """The callbacks that prune during `fit`: one `PruningCallback`.

    Example:
        >>> from tinycompress.pruning import ConstantSparsity
        >>> [type(c).__name__ for c in callbacks(PruningConfig(ConstantSparsity(0.5)))]
        ['PruningCallback']
    """
    settings = {f.name: getattr(config, f.name) for f in fields(config)}
    return [PruningCallback(**settings, log_summary=log_summary)]


#: Pruning's contract entry points.
TECHNIQUE = Technique("pruning", PruningConfig, apply, callbacks)
