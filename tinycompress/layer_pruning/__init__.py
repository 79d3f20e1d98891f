"""Layer pruning: remove whole residual blocks or shape-preserving layers.

- `find_candidates`: residual blocks with an identity shortcut
  (``Add([x, F(x)])``) and shape-preserving layer groups (a Dense/conv layer
  with its BatchNormalization/activation) in the top-level graph.
- `score_candidates`: the validation-loss increase when each is bypassed.
- `prune_layers` / `apply`: remove the k least important, or as many as a
  MACs/parameter budget needs (`LayerPruningConfig`), through the model
  core's graph rebuild; the report lists what was removed and the MACs and
  parameters saved. Fine-tune with ``fit`` or with
  `tinycompress.distillation.distill` from the unpruned model.
- `remove_candidates`: remove chosen candidates directly.

Not done: a learnable gate with an L1 penalty as a second score.

The technique contract: `LayerPruningConfig`, `apply` (needs
``validation_data=`` and ``loss=``), `callbacks` (none), `TECHNIQUE`; the
result holds only plain Keras layers (`prepare_for_export` copies it).
"""

from tinycompress.layer_pruning.candidates import COMPANION_TYPES, Candidate, find_candidates, macs
from tinycompress.layer_pruning.config import KINDS, LayerPruningConfig, LayerPruningError
from tinycompress.layer_pruning.remove import remove_candidates
from tinycompress.layer_pruning.technique import (
    TECHNIQUE,
    LayerPruningReport,
    ScoredCandidate,
    apply,
    callbacks,
    prune_layers,
    score_candidates,
)

__all__ = [
    "LayerPruningConfig",
    "LayerPruningError",
    "KINDS",
    "apply",
    "callbacks",
    "TECHNIQUE",
    "prune_layers",
    "find_candidates",
    "score_candidates",
    "remove_candidates",
    "Candidate",
    "ScoredCandidate",
    "LayerPruningReport",
    "macs",
    "COMPANION_TYPES",
]
