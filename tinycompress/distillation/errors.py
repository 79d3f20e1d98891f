"""Exception class of `tinycompress.distillation` (defined in `tinycompress.errors`)."""

from __future__ import annotations

from tinycompress.errors import DistillationConfigError

__all__ = ["DistillationConfigError"]
