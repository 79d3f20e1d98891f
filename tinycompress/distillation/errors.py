"""Exception classes of `tinycompress.distillation`."""

from __future__ import annotations

from tflite_export.errors import TinyCompressError

__all__ = ["DistillationConfigError"]


class DistillationConfigError(TinyCompressError, ValueError):
    """A distillation setting (temperature, weight, layer, model pair) is invalid.

    The message names the setting, the value received and how to fix it.
    """
