"""Low-rank factorization: split Dense and convolution kernels into thinner layers.

- Dense ``W (m x n)`` -> ``Dense(r) -> Dense(n)`` by truncated SVD (bias and
  activation on the second); Conv1D/Conv2D ``k x k`` -> ``k x k`` conv with
  `r` filters -> 1x1 conv, or Tucker-2 ``1x1 -> k x k -> 1x1`` where that
  needs fewer parameters. Every new layer is a plain Keras layer
  (FULLY_CONNECTED / CONV_2D on TFLM).
- Ranks per layer by kept singular-value energy, by a whole-model
  parameter budget, or explicit (`LowRankConfig`). A layer is factored only
  when it saves kernel parameters: SVD needs ``r < m n / (m + n)``; Tucker-2
  needs ``c_in r_in + k k r_in r_out + r_out c_out < k k c_in c_out``. The
  others are left alone and listed in the `LowRankReport`.
- Fine-tune afterwards with plain ``fit``, or distill from the unfactored
  model*: ``distill(original, factored, x, y, epochs=...)``
  (`tinycompress.distillation.distill`; both logits models).

Orders with the other techniques (tested ones marked *):

- structured pruning (``PruningCallback(granularity="channel")`` + `shrink`)
  **then** low-rank*: factor the shrunk model (fewer, smaller layers).
- low-rank **then** QAT* (`quantize_model`, `prepare_for_export`, convert):
  the factors are ordinary Dense/Conv layers.
- low-rank **then** unstructured pruning or clustering: the factors are
  ordinary Dense/Conv layers those techniques select like any other (not
  tested here).
- Not the other way round: factoring a pruned (sparse) or clustered kernel
  destroys its zeros / shared values, and QAT wrappers are not factorable
  (factor the float model, then QAT).

The technique contract (`tinycompress.core.technique`): `LowRankConfig`,
`apply`, `callbacks` (none needed), `TECHNIQUE`; `prepare_for_export` has
nothing to undo (no toolkit layers remain).
"""

from tinycompress.lowrank.config import DEFAULT_ENERGY, LowRankConfig, LowRankError
from tinycompress.lowrank.factor import FACTORABLE_TYPES, Spectrum, factor_layer, rank_for_energy, spectrum
from tinycompress.lowrank.plan import LayerRank, LowRankReport, plan
from tinycompress.lowrank.technique import TECHNIQUE, apply, callbacks, factorize

__all__ = [
    "LowRankConfig",
    "LowRankError",
    "DEFAULT_ENERGY",
    "apply",
    "callbacks",
    "TECHNIQUE",
    "factorize",
    "plan",
    "LowRankReport",
    "LayerRank",
    "factor_layer",
    "spectrum",
    "Spectrum",
    "rank_for_energy",
    "FACTORABLE_TYPES",
]
