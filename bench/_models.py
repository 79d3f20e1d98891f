"""Models shared by the benchmarks."""

from __future__ import annotations

import keras


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
