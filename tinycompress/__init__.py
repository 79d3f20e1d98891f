"""tinycompress: compress Keras models and ship them to microcontrollers.

Data flows one way: compress at train time (`tinycompress.pruning`,
`tinycompress.quantization`, `tinycompress.clustering`,
`tinycompress.distillation`) -> strip/fold -> `convert` to a full-integer
TFLite model -> verify on TFLM, emit C and firmware, report (`tflite_export`).
`export` runs the whole second half in one call: `build` (in memory) then `write`.
"""

from tinycompress.convert import convert
from tinycompress.data import load_calibration
from tinycompress.datasets import DigitImages, load_digit_images
from tinycompress.errors import (
    ArgumentError,
    ConversionError,
    DataError,
    ExportError,
    LoadError,
    UnsafeModelError,
)
from tinycompress.build import build
from tinycompress.export import export
from tinycompress.result import BuildResult, ExportResult
from tinycompress.write import write
from tinycompress.layer_error import LayerError, layer_errors
from tinycompress.loading import LoadedModel, load_model
from tflite_export.errors import TinyCompressError

# Train-time compression, one subpackage per technique (imported after the
# pipeline modules above, which they build on).
from tinycompress import clustering, distillation, pruning, quantization  # noqa: E402
from tinycompress.clustering import cluster_weights, strip_clustering  # noqa: E402
from tinycompress.distillation import distill  # noqa: E402
from tinycompress.pruning import PruningCallback, shrink, strip_pruning  # noqa: E402
from tinycompress.quantization import fold_batchnorm, quantize_model, strip_qat  # noqa: E402

__all__ = [
    "pruning",
    "quantization",
    "clustering",
    "distillation",
    "PruningCallback",
    "strip_pruning",
    "shrink",
    "quantize_model",
    "strip_qat",
    "fold_batchnorm",
    "cluster_weights",
    "strip_clustering",
    "distill",
    "export",
    "ExportResult",
    "build",
    "BuildResult",
    "write",
    "convert",
    "LoadedModel",
    "layer_errors",
    "LayerError",
    "load_model",
    "load_calibration",
    "load_digit_images",
    "DigitImages",
    "TinyCompressError",
    "ArgumentError",
    "ConversionError",
    "DataError",
    "ExportError",
    "LoadError",
    "UnsafeModelError",
]
__version__ = "0.1.0"
