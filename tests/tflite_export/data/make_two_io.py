import numpy as np, keras, sys
sys.path.insert(0, "/work/wt/export")
from tinycompress import convert
import tflite_export
keras.utils.set_random_seed(0)
a = keras.Input((4,), name="a"); b = keras.Input((3,), name="b")
h = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()([a, b]))
o1 = keras.layers.Dense(2, name="o1")(h); o2 = keras.layers.Dense(3, activation="softmax", name="o2")(h)
m = keras.Model([a, b], [o1, o2])
rng = np.random.default_rng(0)
x = [rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 3)).astype("float32")]
t = tflite_export.slim(convert(m, x)).model
open("/work/wt/export/tests/tflite_export/data/two_io.tflite", "wb").write(t)
t2 = tflite_export.slim(convert(m, x, io_dtype="float32")).model
open("/work/wt/export/tests/tflite_export/data/two_io_float.tflite", "wb").write(t2)
print(len(t), len(t2), tflite_export.input_details(t), tflite_export.output_details(t))
