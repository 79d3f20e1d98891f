"""Pruning for Keras 3: a `fit` callback, strip, and structured shrink.

- `PruningCallback` prunes during `model.fit` following a schedule
  (`ConstantSparsity`, `PolynomialDecay`): single weights, 1xK blocks, N:M, or
  whole channels (L1/L2 filter norm, or network slimming on BatchNorm gammas),
  per layer or with a global threshold. Pruned weights stay exactly zero.
- `strip_pruning` returns a plain Keras model with the zeros baked in.
- `shrink` removes zeroed channels: a physically smaller model with the same
  outputs, so flash, arena and MACs shrink on the device.
- `sparsity_summary` reports per-layer sparsity and dead channels.

The technique contract (`tinycompress.core.technique`): `PruningConfig`,
`apply`, `callbacks`, `TECHNIQUE`; prepare for export with
`tinycompress.core.prepare_for_export` (same as `strip_pruning`).
"""

from tinycompress.pruning.callback import PruningCallback
from tinycompress.pruning.config import PruningConfig
from tinycompress.errors import PruningError, UnsupportedLayerError
from tinycompress.pruning.masks import magnitude_masks, n_of_m_mask
from tinycompress.pruning.schedules import ConstantSparsity, PolynomialDecay, PruningSchedule
from tinycompress.pruning.selection import PRUNABLE_TYPES, is_prunable, prunable_weights, select_layers
from tinycompress.pruning.strip import strip_pruning
from tinycompress.pruning.summary import LayerSparsity, sparsity_summary
from tinycompress.pruning.surgery import shrink
from tinycompress.pruning.technique import TECHNIQUE, apply, callbacks

__all__ = [
    "PruningConfig",
    "apply",
    "callbacks",
    "TECHNIQUE",
    "PruningCallback",
    "PruningSchedule",
    "ConstantSparsity",
    "PolynomialDecay",
    "strip_pruning",
    "shrink",
    "sparsity_summary",
    "LayerSparsity",
    "magnitude_masks",
    "n_of_m_mask",
    "select_layers",
    "prunable_weights",
    "is_prunable",
    "PRUNABLE_TYPES",
    "PruningError",
    "UnsupportedLayerError",
]
