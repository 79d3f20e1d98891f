"""Exception classes of the Keras side (`tinycompress`).

All derive from `tflite_export.errors.TinyCompressError`. The train-time
techniques share one family: `CompressionError` is the base of each
technique's settings error (`PruningError`, `QuantizationError`,
`ClusteringError`, `DistillationConfigError`) and of the one
`UnsupportedLayerError`, raised by the model core and every technique for a
layer or model structure it cannot handle.
"""

from __future__ import annotations

from tflite_export.errors import TinyCompressError, UnsupportedModelError

__all__ = [
    "LoadError",
    "UnsafeModelError",
    "DataError",
    "ArgumentError",
    "ConversionError",
    "ExportError",
    "CompressionError",
    "UnsupportedLayerError",
    "PruningError",
    "QuantizationError",
    "ClusteringError",
    "DistillationConfigError",
    "LowRankError",
    "LayerPruningError",
    "AutoError",
    "BudgetError",
    "NoFeasibleModelError",
]


class LoadError(TinyCompressError, ValueError):
    """A model file or object cannot be loaded."""


class UnsafeModelError(LoadError):
    """A saved model would run arbitrary code (Lambda, TFSMLayer, foreign modules)."""


class DataError(TinyCompressError, ValueError):
    """Representative or calibration data is empty, malformed or mismatched."""


class ArgumentError(TinyCompressError, ValueError):
    """An argument of `convert`, `build`, `write` or `export` has a value they do not accept."""


class ConversionError(TinyCompressError, RuntimeError):
    """The TFLite converter failed or produced a model we cannot deploy."""


class ExportError(TinyCompressError, RuntimeError):
    """An export could not be completed; nothing was written."""


class CompressionError(TinyCompressError, ValueError):
    """A train-time compression technique cannot be applied as asked.

    Base of every technique's error; the message names the setting, layer or
    model, what was expected and the fix.
    """


class UnsupportedLayerError(CompressionError, UnsupportedModelError):
    """A layer or model structure that a technique (or the model core) cannot handle.

    Subclassed models (no layer graph), Sequential models without an input,
    layers outside a technique's table: the message names each layer, its
    class and what is supported.
    """


class PruningError(CompressionError):
    """A pruning setting (schedule, granularity, layer selection) is invalid."""


class QuantizationError(CompressionError):
    """A quantization-aware-training setting or model cannot be used."""


class ClusteringError(CompressionError):
    """A clustering setting (bits, granularity, init) or a layer choice is invalid."""


class DistillationConfigError(CompressionError):
    """A distillation setting (temperature, weight, layer, model pair) is invalid."""


class LowRankError(CompressionError):
    """A low-rank setting (energy, budget, explicit rank, layer choice) is invalid."""


class LayerPruningError(CompressionError):
    """A layer-pruning setting, candidate or budget cannot be used."""


class AutoError(TinyCompressError, RuntimeError):
    """The automatic search (`tinycompress.auto`) cannot run as asked: a bad search
    space, recipe, storage or study."""


class BudgetError(AutoError, ValueError):
    """A device budget value is invalid, or it names a figure that cannot be measured
    (a latency or energy budget without a device or without the cost model)."""


class NoFeasibleModelError(AutoError):
    """No trial of an automatic search met the budget.

    Attributes:
        result: the `tinycompress.auto.SearchResult` of the search (every
            trial, the closest ones first in its ``closest`` list).
    """

    def __init__(self, message: str, result=None) -> None:
        super().__init__(message)
        self.result = result
