"""Quantization-aware training's side of the technique contract (`tinycompress.core.technique`)."""

from __future__ import annotations

import keras

from tinycompress.core import Technique
from tinycompress.quantization.callbacks import QATCallback
from tinycompress.quantization.config import QATConfig
from tinycompress.quantization.quantize import quantize_model

__all__ = ["apply", "callbacks", "TECHNIQUE"]


def apply(model: keras.Model, config: QATConfig) -> keras.Model:
    """The QAT copy of `model` to fine-tune (see `quantize_model`).

    Example:
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        >>> [type(l).__name__ for l in apply(m, QATConfig()).layers][1:]
        ['ActivationQuantizer', 'QuantizeWrapper', 'ActivationQuantizer']
    """
    return quantize_model(model, config)


def callbacks(config: QATConfig) -> list[keras.callbacks.Callback]:
    """`QATCallback` when ``config.freeze_after`` is set, else none.

    Example:
        >>> [c.freeze_after for c in callbacks(QATConfig(freeze_after=100))], callbacks(QATConfig())
        ([100], [])
    """
    return [QATCallback(config.freeze_after)] if config.freeze_after else []


#: QAT's contract entry points.
TECHNIQUE = Technique("quantization", QATConfig, apply, callbacks)
