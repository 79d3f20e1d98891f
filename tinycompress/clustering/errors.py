"""Exception classes of `tinycompress.clustering`."""

from __future__ import annotations

from tflite_export.errors import TinyCompressError

__all__ = ["ClusteringError"]


class ClusteringError(TinyCompressError, ValueError):
    """A clustering setting (bits, granularity, init) or a layer choice is invalid.

    The message names the setting or layer, the value received and the fix.
    """
