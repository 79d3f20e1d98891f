"""`QATCallback`: freeze activation ranges after a number of training steps."""

from __future__ import annotations

import keras

from tinycompress.errors import QuantizationError
from tinycompress.quantization.quantizers import ActivationQuantizer

__all__ = ["QATCallback", "activation_quantizers"]


def activation_quantizers(model: keras.Model) -> list[ActivationQuantizer]:
    """Every `ActivationQuantizer` layer of a QAT model."""
    return [layer for layer in model.layers if isinstance(layer, ActivationQuantizer)]


class QATCallback(keras.callbacks.Callback):
    """Freeze the activation ranges of a QAT model after `freeze_after` steps.

    Late in fine-tuning the weights adapt to fixed int8 grids more easily than
    to moving ones. (BatchNormalization needs no freezing: `quantize_model`
    folds it before training.)

    Args:
        freeze_after: training steps (batches, counted across epochs) after
            which ranges stop updating; a positive integer.

    Raises:
        QuantizationError: `freeze_after` is not a positive integer.

    Example:
        >>> import keras, numpy as np
        >>> from tinycompress.quantization import quantize_model
        >>> q = quantize_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        >>> q.compile(optimizer="sgd", loss="mse")
        >>> cb = QATCallback(freeze_after=2)
        >>> _ = q.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=2, verbose=0, callbacks=[cb])
        >>> cb.frozen
        True
    """

    def __init__(self, freeze_after: int) -> None:
        super().__init__()
        if isinstance(freeze_after, bool) or not isinstance(freeze_after, int) or freeze_after < 1:
            raise QuantizationError(
                f"expected freeze_after to be a positive integer (training steps). "
                f"Received: freeze_after={freeze_after!r}."
            )
        self.freeze_after = freeze_after
        self.steps = 0
        self.frozen = False

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.steps += 1
        if not self.frozen and self.steps >= self.freeze_after:
            quantizers = activation_quantizers(self.model)
            if not quantizers:
                raise QuantizationError(
                    f"QATCallback found no ActivationQuantizer in model '{self.model.name}'; "
                    "train the model returned by quantize_model."
                )
            for q in quantizers:
                q.freeze()
            self.frozen = True
