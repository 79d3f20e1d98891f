"""Exception classes of `tinycompress.pruning`."""

from __future__ import annotations

from tflite_export.errors import TinyCompressError

__all__ = ["PruningError", "UnsupportedLayerError"]


class PruningError(TinyCompressError, ValueError):
    """A pruning setting (schedule, granularity, layer selection) is invalid.

    The message names the setting, the value received and how to fix it.
    """


class UnsupportedLayerError(PruningError):
    """A layer or topology cannot be pruned structurally or shrunk.

    The message names the layer and its class, and lists what is supported.
    """
