"""The model core: the only code of `tinycompress` that knows Keras model structure.

Every technique reads and rewrites models through these pieces, one of each:

- **kernel table** (`kernels.py`): `KERNEL_TABLE` maps each layer class
  (Dense, Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D,
  Conv1D/2DTranspose, Embedding, LSTM/GRU/SimpleRNN) to its compressible
  kernels and their channel layout; `kernels(layer)` returns them. User
  layers and wrappers join with ``get_compressible_weights()`` (the older
  ``get_prunable_weights()`` works too).
- **walker** (`selector.walk_layers`): every layer, nested models included,
  optionally inside wrappers.
- **selector** (`selector.select_layers`): the one meaning of ``layers=``
  (None, names, classes, predicate).
- **graph** (`graph.LayerGraph`): layer calls in execution order with their
  tensors, producers and consumers; `LayerGraph.rebuild` re-plays them.
- **rewriter** (`rewrite.rewrite`): replace any layer by zero, one or several
  layers in Sequential and Functional models (residual branches, shared
  layers, nested models), keeping the other weights.
- **technique contract** (`technique.py`): what each technique provides
  (config value object, ``apply``, iteration-driven serializable callbacks)
  and `prepare_for_export`, the one export verb. Read its module docs.

Private Keras APIs appear only in `graph.py` and `kernels.py` (pinned by
``tests/tinycompress/core/test_core_keras_private.py``).
"""

from tinycompress.core.graph import LayerCall, LayerGraph, input_name
from tinycompress.core.kernels import (
    KERNEL_TABLE,
    LINEAR_KINDS,
    Kernel,
    KernelSpec,
    LayerKernels,
    base_layer,
    is_compressible,
    kernels,
    layer_kernels,
)
from tinycompress.core.rewrite import Replacement, copy_layer, rewrite
from tinycompress.core.selector import LayerSelector, select_layers, selector_config, walk_layers
from tinycompress.core.technique import Technique, optimizer_step, prepare_for_export, toolkit_layers

__all__ = [
    "KERNEL_TABLE",
    "LINEAR_KINDS",
    "Kernel",
    "KernelSpec",
    "LayerKernels",
    "LayerCall",
    "LayerGraph",
    "LayerSelector",
    "Replacement",
    "Technique",
    "base_layer",
    "copy_layer",
    "input_name",
    "is_compressible",
    "kernels",
    "layer_kernels",
    "optimizer_step",
    "prepare_for_export",
    "rewrite",
    "select_layers",
    "selector_config",
    "toolkit_layers",
    "walk_layers",
]
