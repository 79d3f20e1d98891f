"""Exception classes of `tinycompress.quantization`."""

from __future__ import annotations

from tflite_export.errors import TinyCompressError, UnsupportedModelError

__all__ = ["QuantizationError", "UnsupportedLayerError"]


class QuantizationError(TinyCompressError, ValueError):
    """A model or setting cannot be used for quantization-aware training.

    Raised for subclassed or unbuilt models and invalid configuration values;
    the message says what was expected and how to fix it.
    """


class UnsupportedLayerError(QuantizationError, UnsupportedModelError):
    """The model holds layers that quantization-aware training cannot simulate.

    The message lists every offending layer with the reason, so all of them can
    be fixed before any training starts.
    """
