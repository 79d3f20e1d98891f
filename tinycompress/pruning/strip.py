"""`strip_pruning`: a plain Keras model with the pruned zeros baked in."""

from __future__ import annotations

import keras

from tinycompress.core import rewrite

__all__ = ["strip_pruning"]


def strip_pruning(model: keras.Model) -> keras.Model:
    """Return a fresh copy of `model` with no trace of pruning.

    The copy is rebuilt from the layers' configs (which pruning never changes),
    so it has none of the mask constraints or slimming regularizers that
    `PruningCallback` installs on variables during `fit` (even if `fit` was
    interrupted). Weights, pruned zeros included, are copied exactly. The copy
    is not compiled; `model` is left as it is. For a pruned model this is
    what `tinycompress.core.prepare_for_export` does.

    Args:
        model: a pruned functional or Sequential Keras model.

    Returns:
        The stripped model.

    Example:
        >>> import numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> m.layers[0].kernel.constraint = lambda w: w * 0.0
        >>> s = strip_pruning(m)
        >>> s.layers[0].kernel.constraint is None
        True
        >>> all(np.array_equal(a, b) for a, b in zip(s.get_weights(), m.get_weights()))
        True
    """
    return rewrite(model)
