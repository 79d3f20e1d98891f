"""Point a compression callback at the student inside a `Distiller`.

`Distiller.fit` hands every callback the distiller itself as `self.model`.
Pruning, clustering or QAT callbacks that walk `self.model.layers` would then
see the teacher too (and try to compress it) or miss the student's layers.
`StudentCallback` forwards every hook to the wrapped callback with the student
as its model, so the same callback object works with and without distillation.
"""

from __future__ import annotations

from typing import Any

import keras

from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["StudentCallback"]


class StudentCallback(keras.callbacks.Callback):
    """Run `callback` against the distiller's student instead of the distiller.

    When `fit` is called on a model without a ``student`` attribute (plain
    training), the callback sees that model unchanged. If the wrapped callback
    sets ``stop_training`` on the student, the distiller stops too.

    Args:
        callback: the Keras callback to forward to.

    Raises:
        DistillationConfigError: `callback` is not a `keras.callbacks.Callback`.

    Example:
        >>> import keras, numpy as np
        >>> class CountLayers(keras.callbacks.Callback):
        ...     def on_train_begin(self, logs=None):
        ...         self.names = [l.name for l in self.model.layers]
        >>> def mlp(units, name):
        ...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, name=name),
        ...                              keras.layers.Dense(2, name=name + "_out")], name=name)
        >>> from tinycompress.distillation.distiller import distill
        >>> probe = CountLayers()
        >>> _ = distill(mlp(16, "t"), mlp(4, "s"), np.zeros((8, 4)), np.zeros(8, "int32"),
        ...             callbacks=[StudentCallback(probe)])
        >>> probe.names
        ['s', 's_out']
    """

    def __init__(self, callback: keras.callbacks.Callback) -> None:
        super().__init__()
        if not isinstance(callback, keras.callbacks.Callback):
            raise DistillationConfigError(
                "expected `callback` to be a keras.callbacks.Callback. Received: "
                f"{type(callback).__name__}. Wrap the pruning/QAT callback object itself."
            )
        self.callback = callback
        self.async_safe = bool(getattr(callback, "async_safe", False))

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.callback.set_params(params)

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.callback.set_model(getattr(model, "student", model))

    def _propagate_stop(self) -> None:
        target = self.callback.model
        if target is not self.model and getattr(target, "stop_training", False):
            self.model.stop_training = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.callback.on_train_begin(logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.callback.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.callback.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.callback.on_epoch_end(epoch, logs)
        self._propagate_stop()

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_train_batch_begin(batch, logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_train_batch_end(batch, logs)
        self._propagate_stop()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.callback.on_test_begin(logs)

    def on_test_end(self, logs: dict | None = None) -> None:
        self.callback.on_test_end(logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_test_batch_begin(batch, logs)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_test_batch_end(batch, logs)

    def on_predict_begin(self, logs: dict | None = None) -> None:
        self.callback.on_predict_begin(logs)

    def on_predict_end(self, logs: dict | None = None) -> None:
        self.callback.on_predict_end(logs)

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_predict_batch_begin(batch, logs)

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.callback.on_predict_batch_end(batch, logs)
