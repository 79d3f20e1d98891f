"""Exception classes of the Keras side (`tinycompress`).

All derive from `tflite_export.errors.TinyCompressError`.
"""

from __future__ import annotations

from tflite_export.errors import TinyCompressError

__all__ = [
    "LoadError", "UnsafeModelError", "DataError", "ArgumentError", "ConversionError", "ExportError",
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
