"""Per-layer channel-pruning sensitivity, measured, and the per-layer ratios drawn from it.

`channel_sensitivity` prunes a fraction of one layer's channels at a time (the
lowest-L1 filters, through `PruningCallback` with ``granularity="channel"``,
no training) and measures the float model's accuracy drop on validation
data. `allocate` turns a global ratio into per-layer ratios: robust layers
(small drop) are pruned more, sensitive ones less, with the same mean ratio
(AMC-style layer-wise ratios, from a measurement rather than a learned agent).
"""

from __future__ import annotations

import logging

import numpy as np

from tinycompress.errors import CompressionError

__all__ = ["channel_sensitivity", "allocate", "MAX_LAYER_SPARSITY"]

_LOG = logging.getLogger(__name__)

#: Highest ratio `allocate` gives one layer.
MAX_LAYER_SPARSITY = 0.9
#: Accuracy drop added to every layer's so a layer measured at 0 does not take every channel.
_FLOOR = 0.01


def channel_sensitivity(model, val: tuple[np.ndarray, np.ndarray], *, fraction: float = 0.5,
                        layers: list[str] | None = None) -> dict[str, float]:
    """Float validation-accuracy drop when ``fraction`` of one layer's channels are pruned.

    Args:
        model: a trained Keras classifier; not modified (each layer is pruned on a copy).
        val: ``(x, labels)``.
        fraction: channels pruned per layer. Default 0.5.
        layers: layers to scan. Default None: every channel-prunable layer but the last.

    Returns:
        ``{layer name: accuracy drop}`` (drops below 0, a gain, are reported as 0),
        rounded to 4 decimals.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="h"),
        ...                       keras.layers.Dense(2, name="out")])
        >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
        >>> list(channel_sensitivity(m, (x, np.argmax(x[:, :2], 1))))
        ['h']
    """
    import keras

    from tinycompress import pruning
    from tinycompress.auto._stages import float_accuracy, hidden_prunable
    from tinycompress.core import rewrite

    base = float_accuracy(model, *val)
    drops = {}
    try:
        names = hidden_prunable(model) if layers is None else layers
    except CompressionError as e:
        _LOG.info("no channel-pruning sensitivity scan: %s", e)
        return drops
    for name in names:
        copy = rewrite(model)
        copy.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        config = pruning.PruningConfig(pruning.ConstantSparsity(fraction), layers=[name], granularity="channel")
        callback = pruning.callbacks(config, log_summary=False)[0]
        callback.set_model(copy)
        try:
            callback.on_train_begin()
            callback.on_train_batch_begin(0)
            callback.on_train_end()
        except CompressionError as e:  # the layer's channels cannot be pruned: left out of the scan
            _LOG.info("channel-pruning sensitivity: layer %s skipped (%s)", name, e)
            continue
        drops[name] = round(max(0.0, base - float_accuracy(copy, *val)), 4)
    return drops


def allocate(sparsity: float, sensitivity: dict[str, float]) -> dict[str, float]:
    """Per-layer ratios with mean ``sparsity``, inversely proportional to each layer's drop.

    Example:
        >>> allocate(0.5, {"a": 0.0, "b": 0.2})
        {'a': 0.9, 'b': 0.1}
        >>> allocate(0.3, {"a": 0.05, "b": 0.05})
        {'a': 0.3, 'b': 0.3}
    """
    if not sensitivity or sparsity <= 0:
        return {name: 0.0 for name in sensitivity}
    robust = {name: 1.0 / (drop + _FLOOR) for name, drop in sensitivity.items()}
    mean = sum(robust.values()) / len(robust)
    ratios = {name: min(MAX_LAYER_SPARSITY, sparsity * r / mean) for name, r in robust.items()}
    # what the cap took from robust layers goes to the others, keeping the mean
    for _ in range(len(ratios)):
        missing = sparsity * len(ratios) - sum(ratios.values())
        open_ = [n for n, v in ratios.items() if v < MAX_LAYER_SPARSITY]
        if missing <= 1e-9 or not open_:
            break
        weight = sum(robust[n] for n in open_)
        for n in open_:
            ratios[n] = min(MAX_LAYER_SPARSITY, ratios[n] + missing * robust[n] / weight)
    return {name: round(value, 2) for name, value in ratios.items()}
