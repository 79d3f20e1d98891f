"""`PruningCallback`: schedule-driven pruning with a plain `model.fit`.

Design: each pruned variable gets a non-trainable mask variable (owned by the
callback, not the model) and, for the duration of `fit`, a variable constraint
``w -> w * mask``. Keras optimizers apply variable constraints inside the
compiled train step right after every update, so pruned weights stay exactly
zero with no extra Python per batch and under `tf.distribute` strategies. Masks
are recomputed in numpy only at the schedule's pruning steps. At the end of
`fit` the constraints are removed, leaving a plain model whose pruned weights
are exact zeros.

State survives interruption without extra files: the step is the optimizer's
``iterations`` (saved by `.keras` files and `keras.callbacks.BackupAndRestore`)
and the masks are re-read from the zeros of the restored weights.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import keras
import numpy as np

from tinycompress.core import optimizer_step, walk_layers
from tinycompress.errors import PruningError
from tinycompress.pruning.config import PruningConfig
from tinycompress.pruning.graph import ChannelGraph, build_channel_graph
from tinycompress.pruning.masks import magnitude_masks, n_of_m_mask
from tinycompress.pruning.schedules import PruningSchedule
from tinycompress.pruning.selection import LayerSelector, prunable_weights, select_layers
from tinycompress.pruning.summary import sparsity_summary

__all__ = ["PruningCallback"]

logger = logging.getLogger(__name__)


class _Masked:
    """Constraint ``w -> inner(w) * mask`` that ``owner`` installs on a variable during `fit`."""

    def __init__(self, mask: keras.Variable, inner, owner: "PruningCallback"):
        self.mask, self.inner, self.owner = mask, inner, owner

    def __call__(self, w):
        return (w if self.inner is None else self.inner(w)) * self.mask


def _rechain(constraint, keep):
    """``constraint`` without the masks ``keep(mask)`` rejects; the user's own constraint
    (innermost) and the other masks stay in their order."""
    if not isinstance(constraint, _Masked):
        return constraint
    inner = _rechain(constraint.inner, keep)
    return _Masked(constraint.mask, inner, constraint.owner) if keep(constraint) else inner


@keras.saving.register_keras_serializable(package="tinycompress")
class PruningCallback(keras.callbacks.Callback):
    """Prune a model during `fit` following a schedule; pruned weights stay zero.

    Args:
        schedule: a `PruningSchedule` (e.g. `PolynomialDecay`, `ConstantSparsity`).
        layers: which layers to prune: None (default: every Dense, Conv and
            DepthwiseConv layer and layers defining ``get_prunable_weights``),
            names, classes or a predicate (see `select_layers`). With
            ``granularity="channel"`` only the producers' channels are pruned
            and the others follow through the channel graph.
        granularity: ``"weight"`` (default), ``"block"`` (1 x `block_size`
            along the input axis), ``"n_of_m"`` (`n` of every `m` inputs kept;
            the schedule then only sets when, not how much) or ``"channel"``
            (whole output channels/neurons; see `shrink`).
        criterion: ``"l1"`` (default), ``"l2"``, or ``"bn_gamma"`` (network
            slimming: rank channels by |gamma| of their BatchNorm; channel only).
        scope: ``"layer"`` (default: each layer reaches the sparsity) or
            ``"global"`` (one threshold over all selected layers).
        block_size: block length for ``"block"``. Default 4.
        n: weights kept per group for ``"n_of_m"``. Default 2.
        m: group length for ``"n_of_m"``. Default 4.
        slimming_l1: L1 penalty on the gammas of every BatchNormalization
            added during `fit` (network slimming, Liu et al. 2017), whatever
            the granularity. Default 0.0 (none).
        log_summary: log per-layer sparsity at each epoch end and add
            ``"sparsity"`` to the epoch logs. Default True.

    Raises:
        PruningError: an invalid setting (at construction) or a model without
            optimizer/selected layers (at `fit`).

    Example:
        >>> import numpy as np
        >>> from tinycompress.pruning import ConstantSparsity
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16),
        ...                       keras.layers.Dense(2)])
        >>> m.compile(optimizer="adam", loss="mse")
        >>> cb = PruningCallback(ConstantSparsity(0.75, frequency=1))
        >>> _ = m.fit(np.ones((8, 8)), np.ones((8, 2)), epochs=1, verbose=0, callbacks=[cb])
        >>> float(np.mean(m.layers[0].kernel.numpy() == 0))
        0.75
    """

    def __init__(
        self,
        schedule: PruningSchedule,
        *,
        layers: LayerSelector = None,
        granularity: str = "weight",
        criterion: str = "l1",
        scope: str = "layer",
        block_size: int = 4,
        n: int = 2,
        m: int = 4,
        slimming_l1: float = 0.0,
        log_summary: bool = True,
    ):
        super().__init__()
        self.config = PruningConfig(
            schedule, layers=layers, granularity=granularity, criterion=criterion, scope=scope,
            block_size=block_size, n=n, m=m, slimming_l1=slimming_l1)
        c = self.config
        self.schedule, self.layers = c.schedule, layers
        self.granularity, self.criterion, self.scope = c.granularity, c.criterion, c.scope
        self.block_size, self.n, self.m, self.slimming_l1 = c.block_size, c.n, c.m, c.slimming_l1
        self.log_summary = log_summary
        self.step = 0
        self._targets: list[tuple[keras.Variable, keras.Variable]] = []
        self._graph: ChannelGraph | None = None
        self._saved_regularizers: list[tuple[keras.Variable, Any]] = []
        self._synced = False
        self._model_id: int | None = None

    # -- configuration ----------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Config that rebuilds an equivalent callback: `PruningConfig`'s plus `log_summary`.

        Raises:
            PruningError: `layers` is a class or predicate (only names serialize).
        """
        return {**self.config.get_config(), "log_summary": self.log_summary}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "PruningCallback":
        """Rebuild a callback from `get_config()`."""
        return cls(**config)

    # -- mask state ---------------------------------------------------------------------
    def _resolve(self) -> None:
        if self.model is None:
            raise PruningError(
                "PruningCallback has no model; pass it to model.fit(callbacks=[...])."
            )
        self._model_id = id(self.model)
        if self.granularity == "channel":
            self._graph = build_channel_graph(self.model)
            selected = {l.name for l in select_layers(self.model, self.layers)}
            for name in set(self._graph.producers) - selected:
                self._graph.freeze(self._graph.producers[name])
            variables = [v for v, _ in self._graph.masks(set())[0]]
        else:
            variables = [v for l in select_layers(self.model, self.layers) for v in prunable_weights(l)]
        strategy = getattr(self.model, "distribute_strategy", None)
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        with scope:
            self._targets = [
                (v, keras.Variable(np.ones(tuple(v.shape), dtype="float32"), dtype=v.dtype,
                                   trainable=False, name=f"{v.name}_prune_mask"))
                for v in variables
            ]

    def _compute(self, sparsity: float) -> list[np.ndarray]:
        if self.granularity == "channel":
            pruned = self._graph.select(sparsity, self.criterion, self.scope)
            masks, means = self._graph.masks(pruned)
            for var, zero in means:
                if zero.any():
                    var.assign(np.where(zero, 0.0, keras.ops.convert_to_numpy(var)))
            return [mk for _, mk in masks]
        values = [keras.ops.convert_to_numpy(v) for v, _ in self._targets]
        if self.granularity == "n_of_m":
            return [n_of_m_mask(w, self.n, self.m) for w in values]
        return magnitude_masks(values, sparsity, granularity=self.granularity,
                               block_size=self.block_size, criterion=self.criterion, scope=self.scope)

    def _masks_from_weights(self) -> list[np.ndarray]:
        if self.granularity == "channel":
            return [mk for _, mk in self._graph.masks(self._graph.pruned_from_weights())[0]]
        return [(keras.ops.convert_to_numpy(v) != 0).astype(np.float32) for v, _ in self._targets]

    def _assign(self, masks: list[np.ndarray]) -> None:
        for (var, mask_var), mk in zip(self._targets, masks):
            mask_var.assign(mk)
            var.assign(keras.ops.convert_to_numpy(var) * mk)

    @property
    def masks(self) -> list[np.ndarray]:
        """Current masks, one per pruned variable (1 keeps a weight)."""
        return [keras.ops.convert_to_numpy(mv) for _, mv in self._targets]

    # -- Keras hooks --------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        if not self._targets or self._model_id != id(self.model):
            self._resolve()
        # Several callbacks may mask one variable in the same fit (channel pruning at
        # several ratios: a layer's kernel follows its own channels and its producer's);
        # each keeps the others' masks and replaces its own and those an interrupted fit left.
        same_fit = lambda m: m.owner is not self and m.owner.params is self.params  # noqa: E731
        for v, mv in self._targets:
            v.constraint = _Masked(mv, _rechain(v.constraint, same_fit), self)
        if self.slimming_l1:
            bns = [l for l in dict.fromkeys(walk_layers(self.model))
                   if isinstance(l, keras.layers.BatchNormalization) and l.scale]
            self._saved_regularizers = [(l.gamma, l.gamma.regularizer) for l in bns]
            for l in bns:
                l.gamma.regularizer = keras.regularizers.L1(self.slimming_l1)
        # A train function traced before the constraints existed would skip them.
        self.model.make_train_function(force=True)
        self._synced = False

    def _sync(self) -> None:
        step = optimizer_step(self.model)
        self.step = self.step if step is None else step
        started = self.step > self.schedule.begin_step
        self._assign(self._masks_from_weights() if started else [np.ones(tuple(v.shape), np.float32)
                                                                 for v, _ in self._targets])
        self._synced = True

    def on_epoch_begin(self, epoch, logs=None) -> None:
        if self._synced:
            step = optimizer_step(self.model)
            self.step = self.step if step is None else step

    def on_train_batch_begin(self, batch, logs=None) -> None:
        if not self._synced:
            self._sync()
        prune, sparsity = self.schedule(self.step)
        if prune:
            self._assign(self._compute(sparsity))
        self.step += int(getattr(self.model, "steps_per_execution", 1) or 1)

    def on_epoch_end(self, epoch, logs=None) -> None:
        if not self.log_summary:
            return
        rows = sparsity_summary(self.model)
        total = sum(r.size for r in rows)
        overall = sum(r.zeros for r in rows) / total if total else 0.0
        if logs is not None:
            logs["sparsity"] = overall
        logger.info("epoch %d: step %d, sparsity %.4f; %s", epoch, self.step, overall,
                    ", ".join(f"{r.layer}/{r.weight}={r.sparsity:.3f}" for r in rows))

    def on_train_end(self, logs=None) -> None:
        for v, _ in self._targets:
            v.constraint = _rechain(v.constraint, lambda m: m.owner is not self)
        for v, r in self._saved_regularizers:
            v.regularizer = r
        self._saved_regularizers = []
        self.model.make_train_function(force=True)
