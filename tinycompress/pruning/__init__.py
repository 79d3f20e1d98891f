"""Pruning for Keras 3: a `fit` callback, strip, and structured shrink.

- `PruningCallback` prunes during `model.fit` following a schedule
  (`ConstantSparsity`, `PolynomialDecay`): single weights, 1xK blocks, N:M, or
  whole channels (L1/L2 filter norm, or network slimming on BatchNorm gammas),
  per layer or with a global threshold. Pruned weights stay exactly zero.
- `strip_pruning` returns a plain Keras model with the zeros baked in.
- `shrink` removes zeroed channels: a physically smaller model with the same
  outputs, so flash, arena and MACs shrink on the device.
- `sparsity_summary` reports per-layer sparsity and dead channels.

Unstructured zeros cost flash on TFLM until they are encoded: TFLM stores
weights densely, one int8 byte per zero. Export the stripped model with
``encode="prune"`` (a bitmask of kept weights plus their values, read by TFLM's
DECODE operator) or ``encode="auto"`` (prune, Huffman or LUT per tensor,
whichever is smallest); the encoded model is verified bit-exact on TFLM and
``result.encoding`` gives the measured flash before/after and the arena added
(decoded tensors live in the arena; ``encode_arena_budget=`` bounds it)::

    schedule = PolynomialDecay(0.5, 0.9, begin_step=0, end_step=2000)
    model.fit(x, y, epochs=8, callbacks=[PruningCallback(schedule)])
    r = tinycompress.export(strip_pruning(model), x[:200], "out/", encode="prune")
    r.encoding.flash_before, r.encoding.flash_after, r.encoding.host_arena_added

Measured by ``bench/deep_compression.py`` on Caffe LeNet-5 (MNIST, 90% of the
weights pruned, TFLM accuracy 98.25% vs 97.95% dense int8): 438,008 B dense int8,
104,992 B prune-encoded (4.2x smaller), arena 17,168 B -> 404,912 B. Structured
pruning + `shrink` first, then unstructured pruning, 4-bit clustering and
``encode="auto"`` reaches 120x smaller than the float model within 0.3 points
(150x with the first Dense kernel also factored, `tinycompress.lowrank`).

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
