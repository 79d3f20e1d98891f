"""Quantization-aware training (int8, TFLite's scheme) for Keras 3 models.

`quantize_model` returns a model that simulates the int8 TFLM model during
``fit`` (CNNs, Dense models, sigmoid/tanh with TFLite's fixed ranges, and
LSTM/GRU/SimpleRNN in the form `tinycompress.recurrent` exports); convert it with `tinycompress.convert` and the flatbuffer's scales are
the trained ranges. `fold_batchnorm` is also usable on its own.

The technique contract (`tinycompress.core.technique`): `QATConfig`, `apply`,
`callbacks`, `TECHNIQUE`. `tinycompress.core.prepare_for_export` keeps the
trained ranges; `strip_qat` returns the float model and is not an export step.
"""

from tinycompress.quantization.callbacks import QATCallback
from tinycompress.quantization.config import QATConfig
from tinycompress.errors import QuantizationError, UnsupportedLayerError
from tinycompress.quantization.fold import fold_batchnorm
from tinycompress.quantization.quantize import (
    SUPPORTED_LAYERS,
    quantization_ranges,
    quantize_model,
    strip_qat,
)
from tinycompress.quantization.quantizers import (
    FIXED_RANGES,
    ActivationQuantizer,
    FixedRangeQuantizer,
    fake_quant_kernel,
    int8_scale,
)
from tinycompress.quantization.recurrent import QuantizeRecurrent
from tinycompress.quantization.technique import TECHNIQUE, apply, callbacks
from tinycompress.quantization.wrapper import QuantizeWrapper

__all__ = [
    "apply",
    "callbacks",
    "TECHNIQUE",
    "quantize_model",
    "strip_qat",
    "fold_batchnorm",
    "quantization_ranges",
    "QATConfig",
    "QATCallback",
    "QuantizeWrapper",
    "ActivationQuantizer",
    "FixedRangeQuantizer",
    "FIXED_RANGES",
    "QuantizeRecurrent",
    "fake_quant_kernel",
    "int8_scale",
    "SUPPORTED_LAYERS",
    "QuantizationError",
    "UnsupportedLayerError",
]
