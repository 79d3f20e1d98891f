"""Exception classes shared by `tflite_export` and `tinycompress`.

Every error the toolkit raises on purpose derives from `TinyCompressError`, so a
caller can catch one class; the subclasses say which stage refused the input.
"""

from __future__ import annotations

__all__ = [
    "TinyCompressError",
    "ModelFormatError",
    "UnsupportedModelError",
    "RuntimeCheckError",
    "VerificationError",
    "EmitError",
    "InputError",
    "DeviceError",
]


class TinyCompressError(Exception):
    """Base class of every error raised by tinycompress and tflite_export."""


class ModelFormatError(TinyCompressError, ValueError):
    """A `.tflite` flatbuffer is corrupt, truncated or semantically invalid."""


class UnsupportedModelError(TinyCompressError, ValueError):
    """A model is valid but cannot be deployed as a full-integer TFLM model.

    Raised for float tensors left in an int8 model, hybrid ops, Flex ops and ops
    without a TFLM kernel.
    """


class RuntimeCheckError(TinyCompressError, RuntimeError):
    """A native interpreter (TFLM or LiteRT) failed, crashed or timed out."""


class VerificationError(TinyCompressError, AssertionError):
    """Two runs that must agree (TFLM vs LiteRT, slim vs unslimmed) did not."""


class EmitError(TinyCompressError, ValueError):
    """C sources or a firmware project cannot be written as asked."""


class InputError(TinyCompressError, ValueError):
    """Arrays handed to a model run do not fit the model's inputs."""


class DeviceError(TinyCompressError, ValueError):
    """A device for cost estimates is unknown or badly defined (core, clock, kernels, power)."""
