"""Score candidates by validation loss, remove the least important; the technique contract."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras

from tinycompress.core import Technique, rewrite
from tinycompress.layer_pruning.candidates import Candidate, find_candidates, macs
from tinycompress.layer_pruning.config import LayerPruningConfig, LayerPruningError
from tinycompress.layer_pruning.remove import remove_candidates

__all__ = ["ScoredCandidate", "LayerPruningReport", "score_candidates", "prune_layers", "apply",
           "callbacks", "TECHNIQUE"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate and the validation-loss increase when it alone is bypassed."""

    candidate: Candidate
    loss_increase: float


@dataclass(frozen=True)
class LayerPruningReport:
    """What layer pruning removed and what it saved.

    Attributes:
        scores: every candidate with its score, least important first.
        removed: the removed candidates.
        base_loss: validation loss of the unpruned model.
        macs_before: Dense/conv MACs per sample before (see `macs`).
        macs_after: after.
        params_before: parameters before.
        params_after: after.
    """

    scores: tuple[ScoredCandidate, ...]
    removed: tuple[Candidate, ...]
    base_loss: float
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int

    def __str__(self) -> str:
        gone = {c.name for c in self.removed}
        rows = [f"{'candidate':<20} {'kind':<9} {'loss +':>9} {'MACs':>10}  removed"]
        rows += [f"{s.candidate.name:<20} {s.candidate.kind:<9} {s.loss_increase:>9.4f} "
                 f"{s.candidate.macs:>10}  {'yes' if s.candidate.name in gone else ''}"
                 for s in self.scores]
        rows.append(f"MACs {self.macs_before} -> {self.macs_after}, "
                    f"params {self.params_before} -> {self.params_after}")
        return "\n".join(rows)


def _loss(model: keras.Model, data: Any, loss: Any, batch_size: int) -> float:
    model = rewrite(model)
    model.compile(loss=loss)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        result = model.evaluate(data[0], data[1], batch_size=batch_size, verbose=0)
    else:
        result = model.evaluate(data, verbose=0)
    return float(result[0] if isinstance(result, (list, tuple)) else result)


def score_candidates(
    model: keras.Model,
    candidates: Sequence[Candidate],
    validation_data: Any,
    loss: Any,
    batch_size: int = 256,
) -> tuple[float, tuple[ScoredCandidate, ...]]:
    """Bypass each candidate alone and measure the validation-loss increase.

    Args:
        model: the trained model; not modified (scored on copies).
        candidates: from `find_candidates(model)`.
        validation_data: ``(x, y)`` arrays, or a dataset of ``(x, y)`` batches.
        loss: the Keras loss the model was trained with (name or object).
        batch_size: batch size for arrays. Default 256.

    Returns:
        ``(base_loss, scores)``, scores sorted least important first.
    """
    base = _loss(model, validation_data, loss, batch_size)
    scores = [ScoredCandidate(c, _loss(remove_candidates(model, [c]), validation_data, loss,
                                       batch_size) - base) for c in candidates]
    return base, tuple(sorted(scores, key=lambda s: s.loss_increase))


def _choose(scores, config: LayerPruningConfig, model_macs: int, model_params: int) -> list[Candidate]:
    chosen: list[Candidate] = []
    taken: set[str] = set()
    left_macs, left_params = model_macs, model_params

    def done() -> bool:
        if config.remove is not None:
            return len(chosen) >= config.remove
        if config.max_macs is not None:
            return left_macs <= config.max_macs
        return left_params <= config.max_params

    for score in scores:
        if done():
            break
        cand = score.candidate
        if taken.isdisjoint(cand.layers):
            chosen.append(cand)
            taken.update(cand.layers)
            left_macs, left_params = left_macs - cand.macs, left_params - cand.params
    if not done():
        raise LayerPruningError(
            f"cannot meet {config.get_config()}: removing every non-overlapping candidate "
            f"({len(chosen)}) leaves {left_macs} MACs and {left_params} parameters. Relax the "
            "budget, allow more candidate kinds, or combine with channel pruning."
        )
    return chosen


def prune_layers(
    model: keras.Model,
    config: LayerPruningConfig | None = None,
    *,
    validation_data: Any,
    loss: Any,
) -> tuple[keras.Model, LayerPruningReport]:
    """Remove the least important residual blocks / layer groups of a trained model.

    Candidates (`find_candidates`) are scored one by one (`score_candidates`)
    and removed least important first, skipping any that overlaps one
    already removed, until `config`'s count or budget is met. Fine-tune the
    result with ``fit``, or with `tinycompress.distillation.distill` from
    the unpruned model as teacher.

    Args:
        model: a trained Functional or Sequential model; not modified.
        config: a `LayerPruningConfig`. Default None: remove 1.
        validation_data: ``(x, y)`` or a dataset, to score candidates.
        loss: the training loss (name or Keras loss object).

    Returns:
        ``(pruned_model, report)``: an uncompiled model and a `LayerPruningReport`.

    Raises:
        LayerPruningError: no candidate, or a budget that removing every
            candidate cannot meet.

    Example:
        >>> import numpy as np
        >>> x = keras.Input((8,)); h = keras.layers.Dense(8, activation="relu", name="stem")(x)
        >>> y = keras.layers.Add(name="add")([h, keras.layers.Dense(8, name="f")(h)])
        >>> m = keras.Model(x, keras.layers.Dense(2, name="head")(y))
        >>> data = (np.ones((4, 8), "float32"), np.zeros((4, 2), "float32"))
        >>> small, report = prune_layers(m, LayerPruningConfig(kinds=["residual"]),
        ...                              validation_data=data, loss="mse")
        >>> [c.name for c in report.removed], report.macs_before - report.macs_after
        (['add'], 64)
    """
    config = LayerPruningConfig() if config is None else config
    if not isinstance(config, LayerPruningConfig):
        raise LayerPruningError(f"expected a LayerPruningConfig. Received: {type(config).__name__}.")
    candidates = find_candidates(model, config.kinds)
    if not candidates:
        raise LayerPruningError(
            f"model {model.name!r} has no removable {' or '.join(config.kinds)} candidate: expected "
            "Add([x, F(x)]) blocks with an identity shortcut or shape-preserving layers."
        )
    base, scores = score_candidates(model, candidates, validation_data, loss, config.batch_size)
    chosen = _choose(scores, config, macs(model), model.count_params())
    pruned = remove_candidates(model, chosen)
    report = LayerPruningReport(scores, tuple(chosen), base, macs(model), macs(pruned),
                                model.count_params(), pruned.count_params())
    _LOG.info("layer pruning of %s:\n%s", model.name, report)
    return pruned, report


def apply(model: keras.Model, config: LayerPruningConfig, *, validation_data: Any, loss: Any) -> keras.Model:
    """The pruned model to fine-tune (the contract's ``apply``; see `prune_layers`).

    Example:
        >>> import numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="a"),
        ...                       keras.layers.Dense(1, name="b")])
        >>> data = (np.ones((8, 4), "float32"), np.ones((8, 1), "float32"))
        >>> [l.name for l in apply(m, LayerPruningConfig(), validation_data=data, loss="mse").layers]
        ['b']
    """
    return prune_layers(model, config, validation_data=validation_data, loss=loss)[0]


def callbacks(config: LayerPruningConfig) -> list[keras.callbacks.Callback]:
    """None needed: fine-tuning the pruned model is a plain `fit`.

    Example:
        >>> callbacks(LayerPruningConfig())
        []
    """
    if not isinstance(config, LayerPruningConfig):
        raise LayerPruningError(f"expected a LayerPruningConfig. Received: {type(config).__name__}.")
    return []


#: Layer pruning's contract entry points.
TECHNIQUE = Technique("layer_pruning", LayerPruningConfig, apply, callbacks)
