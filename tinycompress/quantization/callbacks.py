"""`QATCallback`: freeze activation ranges after a number of training steps."""

from __future__ import annotations

import keras

from tinycompress.core import optimizer_step, walk_layers
from tinycompress.errors import QuantizationError
from tinycompress.quantization.quantizers import ActivationQuantizer

__all__ = ["QATCallback", "activation_quantizers"]


def activation_quantizers(model: keras.Model) -> list[ActivationQuantizer]:
    """Every `ActivationQuantizer` of a QAT model (nested models included).

    Layers of the model, and those a layer owns and lists with a
    ``quantizers()`` method (the state range of `QuantizeRecurrent`).
    """
    found = []
    for layer in dict.fromkeys(walk_layers(model)):
        owned = getattr(layer, "quantizers", None)
        if isinstance(layer, ActivationQuantizer):
            found.append(layer)
        elif callable(owned):
            found += owned()
    return found


@keras.saving.register_keras_serializable(package="tinycompress")
class QATCallback(keras.callbacks.Callback):
    """Freeze the activation ranges of a QAT model after `freeze_after` training steps.

    Late in fine-tuning the weights adapt to fixed int8 grids more easily than
    to moving ones. (BatchNormalization needs no freezing: `quantize_model`
    folds it before training.) The step is the optimizer's ``iterations``
    and the frozen flags are weights of the model, so a model saved as
    ``.keras`` and reloaded resumes exactly where it stopped.

    Args:
        freeze_after: training steps (the optimizer's iterations; batches
            seen when the model has no optimizer, as a student in a
            `Distiller`) after which ranges stop updating; a positive integer.

    Raises:
        QuantizationError: `freeze_after` is not a positive integer (at
            construction), or the model has no quantizer (at `fit`).

    Example:
        >>> import keras, numpy as np
        >>> from tinycompress.quantization import quantize_model
        >>> q = quantize_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        >>> q.compile(optimizer="sgd", loss="mse")
        >>> cb = QATCallback(freeze_after=2)
        >>> _ = q.fit(np.ones((8, 3)), np.ones((8, 2)), batch_size=2, verbose=0, callbacks=[cb])
        >>> cb.frozen, QATCallback.from_config(cb.get_config()).freeze_after
        (True, 2)
    """

    def __init__(self, freeze_after: int) -> None:
        super().__init__()
        if isinstance(freeze_after, bool) or not isinstance(freeze_after, int) or freeze_after < 1:
            raise QuantizationError(
                f"expected freeze_after to be a positive integer (training steps). "
                f"Received: freeze_after={freeze_after!r}."
            )
        self.freeze_after = freeze_after
        self.frozen = False
        self._batches = 0

    def _maybe_freeze(self) -> None:
        step = optimizer_step(self.model)
        if self.frozen or (self._batches if step is None else step) < self.freeze_after:
            return
        quantizers = activation_quantizers(self.model)
        if not quantizers:
            raise QuantizationError(
                f"QATCallback found no ActivationQuantizer in model '{self.model.name}'; "
                "train the model returned by quantize_model."
            )
        for q in quantizers:
            q.freeze()
        self.frozen = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.frozen = False
        self._maybe_freeze()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        self._maybe_freeze()

    def get_config(self) -> dict:
        return {"freeze_after": self.freeze_after}

    @classmethod
    def from_config(cls, config: dict) -> "QATCallback":
        return cls(**config)
