"""Models shared by the benchmarks."""

from __future__ import annotations

import keras

#: The benchmarks' classification loss: integer labels, logits out.
XENT = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled(model: keras.Model, lr, loss=XENT, metrics=("accuracy",)) -> keras.Model:
    """``model`` compiled with Adam at ``lr`` (a rate or a schedule), ``loss`` and ``metrics``
    (passed by keyword: positionally Keras 3 would take metrics as loss weights)."""
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, metrics=list(metrics))
    return model


def copy_of(model: keras.Model) -> keras.Model:
    """A new model with ``model``'s architecture and weights."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def caffe_lenet5() -> keras.Model:
    """Caffe's LeNet-5: conv 20@5x5, pool, conv 50@5x5, pool, ip 500 + ReLU, ip 10 (logits)."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(20, 5, name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(50, 5, name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(500, activation="relu", name="fc1"),
        keras.layers.Dense(10, name="fc2"),
    ], name="lenet5")
