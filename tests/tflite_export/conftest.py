"""Tiny full-integer models for the validate/inspect/report tests.

Built with TensorFlow's converter directly (independent of `tinycompress.convert`),
batch fixed to 1, int8 weights, activations and I/O. Session scoped: each model
is trained on nothing (seeded weights) and converted once.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


def tflite_int8(model, shape: tuple[int, ...], seed: int = 0) -> bytes:
    """Full-integer int8 conversion of a Keras 3 model at batch 1."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    calib = np.random.default_rng(seed).random((32, *shape)).astype(np.float32)
    fn = tf.function(lambda x: model(x, training=False))
    cf = fn.get_concrete_function(tf.TensorSpec([1, *shape], tf.float32))
    conv = tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(cf)])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def sparse_and_clustered_model(samples: int):
    """(Keras model, float samples): Conv2D(8) -> Dense(32) with a 95%-sparse kernel
    (9,216 B int8) -> Dense(32) with 4 distinct kernel values (1,024 B) -> Dense(4); the
    model the DECODE encoders are tested on (prune, LUT and Huffman all pay on it)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", name="sparse"),
        keras.layers.Dense(32, activation="relu", name="clustered"),
        keras.layers.Dense(4, name="out"),
    ])
    rng = np.random.default_rng(0)
    k = rng.uniform(0.5, 1.0, (288, 32)) * rng.choice([-1.0, 1.0], (288, 32))
    k[rng.random(k.shape) < 0.95] = 0.0
    model.get_layer("sparse").set_weights([k.astype("float32"), np.zeros(32, "float32")])
    c = rng.choice(np.array([-0.8, -0.3, 0.3, 0.8], "float32"), (32, 32))
    model.get_layer("clustered").set_weights([c, np.zeros(32, "float32")])
    return model, rng.normal(size=(samples, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="session")
def sparse_and_clustered_keras():
    """`sparse_and_clustered_model` as a fixture: call it with the number of samples."""
    return sparse_and_clustered_model


@pytest.fixture(scope="session")
def conv_model():
    """(keras model, tflite bytes): Conv2D -> DepthwiseConv2D -> MaxPool -> Flatten -> Dense.

    Biases are distinct non-zero values, so the converter keeps one buffer each."""
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="dw"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(5, name="dense"),
    ])
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.uniform(0.1, 0.5, bias.shape).astype(np.float32)])
    return model, tflite_int8(model, (8, 8, 3))


@pytest.fixture(scope="session")
def pruned_dense_model():
    """(keras model, tflite bytes, kernel): a Dense(6) whose kernel is two thirds zeros
    with output channels 0 and 3 entirely zero; magnitudes of the other weights
    are in [0.5, 1], so int8 quantization keeps exactly the same zeros."""
    import keras

    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(6, name="fc")])
    rng = np.random.default_rng(3)
    kernel = rng.uniform(0.5, 1.0, (10, 6)) * rng.choice([-1.0, 1.0], (10, 6))
    kernel[:, [0, 3]] = 0.0
    kernel[:5, [1, 2, 4, 5]] = 0.0
    model.get_layer("fc").set_weights([kernel.astype(np.float32), np.zeros(6, np.float32)])
    return model, tflite_int8(model, (10,)), kernel


@pytest.fixture(scope="session")
def mixed_model():
    """(keras model, tflite bytes): TRANSPOSE_CONV, AVERAGE_POOL_2D, a 1x1 CONV_2D,
    ADD and MEAN on a (4, 4, 2) input."""
    import keras

    keras.utils.set_random_seed(4)
    x_in = keras.Input((4, 4, 2))
    up = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same", name="up")(x_in)
    pooled = keras.layers.AveragePooling2D(2, name="avg")(up)
    side = keras.layers.Conv2D(3, 1, name="pw")(x_in)
    added = keras.layers.Add(name="add")([pooled, side])
    out = keras.layers.GlobalAveragePooling2D(name="gap")(added)
    model = keras.Model(x_in, out)
    return model, tflite_int8(model, (4, 4, 2))
