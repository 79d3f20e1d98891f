"""Low-rank factorization's side of the technique contract, and `factorize`."""

from __future__ import annotations

import logging

import keras

from tinycompress.core import Technique, rewrite
from tinycompress.lowrank.config import LowRankConfig, LowRankError
from tinycompress.lowrank.factor import factor_layer
from tinycompress.lowrank.plan import LowRankReport, plan

__all__ = ["factorize", "apply", "callbacks", "TECHNIQUE"]

_LOG = logging.getLogger(__name__)


def factorize(model: keras.Model, config: LowRankConfig | None = None) -> tuple[keras.Model, LowRankReport]:
    """Factor the selected layers of `model` and return the new model with its report.

    The rest of the graph (other layers, their weights, residual branches,
    nested models) is copied unchanged through `tinycompress.core.rewrite`.
    Layers whose factors would not save kernel parameters are left alone and
    listed in the report's `kept`.

    Args:
        model: a built Sequential or Functional model; not modified.
        config: a `LowRankConfig`. Default None: ``LowRankConfig()`` (energy 0.95).

    Returns:
        ``(factored_model, report)``: an uncompiled model of the same kind
        (fine-tune it with `fit`, or with `tinycompress.distillation.distill`
        from `model` as teacher) and a `LowRankReport`.

    Raises:
        LowRankError, UnsupportedLayerError: see `plan`.

    Example:
        >>> import numpy as np
        >>> m = keras.Sequential([keras.Input((32,)), keras.layers.Dense(32, "relu", name="a"),
        ...                       keras.layers.Dense(3, name="b")])
        >>> small, report = factorize(m, LowRankConfig(ranks={"a": 32, "b": 3}))
        >>> [l.name for l in small.layers], [l.name for l in report.kept]
        (['a', 'b'], ['a', 'b'])
        >>> small, report = factorize(m, LowRankConfig(ranks={"a": 4}))
        >>> [l.name for l in small.layers], small.count_params() == report.params_after
        (['a_lr1', 'a_lr2', 'b'], True)
    """
    config = LowRankConfig() if config is None else config
    if not isinstance(config, LowRankConfig):
        raise LowRankError(f"expected a LowRankConfig. Received: {type(config).__name__}.")
    report = plan(model, config)
    ranks = {row.name: row.rank for row in report.factored}

    def replace(layer):
        rank = ranks.get(layer.name)
        if rank is None:
            return None
        return factor_layer(layer, rank[0] if len(rank) == 1 else rank)

    factored = rewrite(model, replace)
    _LOG.info("low-rank factorization of %s:\n%s", model.name, report)
    return factored, report


def apply(model: keras.Model, config: LowRankConfig) -> keras.Model:
    """The factored model to fine-tune (the contract's ``apply``; see `factorize`).

    Example:
        >>> m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, name="a")])
        >>> [l.name for l in apply(m, LowRankConfig(ranks={"a": 2})).layers]
        ['a_lr1', 'a_lr2']
    """
    return factorize(model, config)[0]


def callbacks(config: LowRankConfig) -> list[keras.callbacks.Callback]:
    """None needed: the factors are plain layers trained by `fit`.

    Example:
        >>> callbacks(LowRankConfig())
        []
    """
    if not isinstance(config, LowRankConfig):
        raise LowRankError(f"expected a LowRankConfig. Received: {type(config).__name__}.")
    return []


#: Low-rank factorization's contract entry points.
TECHNIQUE = Technique("lowrank", LowRankConfig, apply, callbacks)
