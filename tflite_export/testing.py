"""Small models that ship with the package, for examples and quick checks.

Example:
    >>> import tflite_export
    >>> len(tflite_export.testing.tiny_model()) > 0
    True
"""

from __future__ import annotations

from importlib import resources

__all__ = ["tiny_model"]


def tiny_model() -> bytes:
    """A full-integer int8 MLP (4 inputs, 8 ReLU units, 3 outputs), batch 1.

    Returns:
        The `.tflite` flatbuffer bytes.
    """
    return resources.files("tflite_export").joinpath("data/tiny_dense.tflite").read_bytes()
