"""tinycompress: compress Keras models and ship them to microcontrollers.

Data flows one way: compress at train time (`tinycompress.pruning`,
`tinycompress.quantization`, `tinycompress.clustering`,
`tinycompress.distillation`) -> strip/fold -> `convert` to a full-integer
TFLite model -> verify on TFLM, emit C and firmware, report (`tflite_export`).
`export` runs the whole second half in one call: `build` (in memory) then
`write`. Every technique follows one contract on one model core
(`tinycompress.core`); `prepare_for_export` readies any trained model.

Importing the package is cheap: each public name below is imported from its
module on first use (PEP 562), so ``import tinycompress`` and the command
line's ``--help``, ``--version`` and ``inspect`` load no TensorFlow or Keras.
``from tinycompress import export`` and ``tinycompress.export`` work as usual.

Example:
    >>> import tinycompress
    >>> tinycompress.ExportError.__name__
    'ExportError'
    >>> "export" in dir(tinycompress)
    True
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

_SUBPACKAGES = (
    "core", "pruning", "quantization", "clustering", "distillation", "lowrank", "layer_pruning", "recurrent", "auto",
)

# Public name -> the module that defines it.
_NAMES = {
    "PruningCallback": "tinycompress.pruning",
    "strip_pruning": "tinycompress.pruning",
    "shrink": "tinycompress.pruning",
    "quantize_model": "tinycompress.quantization",
    "strip_qat": "tinycompress.quantization",
    "fold_batchnorm": "tinycompress.quantization",
    "cluster_weights": "tinycompress.clustering",
    "strip_clustering": "tinycompress.clustering",
    "distill": "tinycompress.distillation",
    "factorize": "tinycompress.lowrank",
    "prune_layers": "tinycompress.layer_pruning",
    "prepare_for_export": "tinycompress.core",
    "export": "tinycompress.export",
    "build": "tinycompress.build",
    "write": "tinycompress.write",
    "BuildResult": "tinycompress.result",
    "ExportResult": "tinycompress.result",
    "convert": "tinycompress.convert",
    "LoadedModel": "tinycompress.loading",
    "layer_errors": "tinycompress.layer_error",
    "LayerError": "tinycompress.layer_error",
    "AutoError": "tinycompress.errors",
    "BudgetError": "tinycompress.errors",
    "NoFeasibleModelError": "tinycompress.errors",
    "load_model": "tinycompress.loading",
    "load_calibration": "tinycompress.data",
    "load_digit_images": "tinycompress.datasets",
    "DigitImages": "tinycompress.datasets",
    "TinyCompressError": "tflite_export.errors",
    "ArgumentError": "tinycompress.errors",
    "ConversionError": "tinycompress.errors",
    "CompressionError": "tinycompress.errors",
    "UnsupportedLayerError": "tinycompress.errors",
    "DataError": "tinycompress.errors",
    "ExportError": "tinycompress.errors",
    "LoadError": "tinycompress.errors",
    "UnsafeModelError": "tinycompress.errors",
}

__all__ = [*_SUBPACKAGES, *_NAMES]

# Functions named like their module (`export`, `convert`): importing the module
# must not replace the function on the package.
_SHADOWED = frozenset(name for name, module in _NAMES.items() if module == f"{__name__}.{name}")


def __getattr__(name: str):
    """Import a public name on first access and keep it (PEP 562)."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_NAMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package's module type: when the import system binds a submodule
    named like a public function (`tinycompress.export`) on the package, the
    function keeps the name."""

    def __setattr__(self, name: str, value) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
