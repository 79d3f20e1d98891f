"""Regenerate two_io.tflite and two_io_float.tflite (run from the repository root).

A two-input (4 and 3 features), two-output (Dense(2) and a 3-way softmax) model,
converted with `tinycompress.convert` and slimmed; used by the emitter's golden
tests, which must not need TensorFlow.
"""

from pathlib import Path

import keras
import numpy as np

import tflite_export
from tinycompress import convert

here = Path(__file__).parent
keras.utils.set_random_seed(0)
a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
h = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()([a, b]))
o1 = keras.layers.Dense(2, name="o1")(h)
o2 = keras.layers.Dense(3, activation="softmax", name="o2")(h)
m = keras.Model([a, b], [o1, o2])
rng = np.random.default_rng(0)
x = [rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 3)).astype("float32")]
(here / "two_io.tflite").write_bytes(tflite_export.slim(convert(m, x)).model)
(here / "two_io_float.tflite").write_bytes(
    tflite_export.slim(convert(m, x, io_dtype="float32")).model)
