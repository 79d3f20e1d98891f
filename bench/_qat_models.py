"""Architectures of the QAT benchmark, buildable with Keras 3 or tf_keras.

`build(name, k, width)` takes the Keras namespace (``keras`` or ``tf_keras``) so
that our QAT and TFMOT's QAT train the same model from the same weights.
"""

from __future__ import annotations


def _mobilenet(k, width: int):
    L = k.layers

    def bn_relu6(x):
        return L.ReLU(6.0)(L.BatchNormalization()(x))

    x_in = k.Input((28, 28, 1))
    x = bn_relu6(L.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x_in))
    for filters, stride in ((2 * width, 1), (4 * width, 2), (4 * width, 1)):
        x = bn_relu6(L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x))
        x = bn_relu6(L.Conv2D(filters, 1, use_bias=False)(x))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(10)(x)
    return k.Model(x_in, L.Softmax()(x), name="mobilenet_tiny")


def _lenet5(k, width: int):
    L = k.layers
    x_in = k.Input((28, 28, 1))
    x = L.Conv2D(6, 5, padding="same", activation="relu")(x_in)
    x = L.AveragePooling2D(2)(x)
    x = L.Conv2D(16, 5, activation="relu")(x)
    x = L.AveragePooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(120, activation="relu")(x)
    x = L.Dense(84, activation="relu")(x)
    x = L.Dense(10)(x)
    return k.Model(x_in, L.Softmax()(x), name="lenet5")


MODELS = {"mobilenet_tiny": _mobilenet, "lenet5": _lenet5}


def build(name: str, k, width: int):
    """Build benchmark model `name` with Keras namespace `k`."""
    return MODELS[name](k, width)
