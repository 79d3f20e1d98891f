"""Export benchmark: LeNet-5 on MNIST, float vs TFLM int8 (plain and slimmed).

Trains a LeNet-5-size CNN on the first 8,000 images of ../shared/data/mnist-t10k,
evaluates on the last 2,000, exports with `tinycompress.export`, and prints one
JSON line. ``float_bytes`` is the float32 TFLite model at batch 1 (what a float
deployment stores); ``int8_bytes`` is the converter's int8 output and
``slim_bytes`` what `export` writes; accuracies are measured on TFLM. The
per-channel Dense variant is measured in the same run (keys ``pcd_*``), as the
figure behind the per-tensor Dense default.

A second line (``"config": "demo_build"``) gives the cost of one
`tinycompress.build` call on the demo model (`tinycompress.demo`'s digits CNN,
300 calibration samples, default options, no target): ``build_s`` is the
median wall time of ``--build-runs`` calls, ``build_min_s``/``build_max_s``
their spread, ``build_stages_s`` the median seconds per stage (keyed by the
first word of the progress message), ``build_target_s`` one call that also
renders the cortex-m project. The automatic budget search calls `build` in a loop.

Run: python bench/export.py [--epochs N] [--build-only] [--build-runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from _data import load_mnist  # noqa: E402


def lenet5():
    import keras

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(6, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(120, activation="relu"),
        keras.layers.Dense(84, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], name="lenet5")


def float_tflite_bytes(model) -> int:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    cf = fn.get_concrete_function(tf.TensorSpec([1, 28, 28, 1], tf.float32))
    return len(tf.lite.TFLiteConverter.from_concrete_functions(
        [convert_variables_to_constants_v2(cf)]).convert())


def demo_build_line(runs: int) -> dict:
    """Time `tinycompress.build` on the trained demo CNN (median of ``runs`` calls)."""
    import keras

    from tinycompress import build
    from tinycompress.datasets import load_digits
    from tinycompress.demo import build_demo_model

    keras.utils.set_random_seed(0)
    x_train, y_train, _, _ = load_digits(0)
    model = build_demo_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=8, batch_size=32, verbose=0)
    build(model, x_train[:300], name="digits")  # warm-up: first-call imports and tracing
    times, stages = [], []
    for _ in range(runs):
        marks = []
        t0 = time.perf_counter()
        result = build(model, x_train[:300], name="digits",
                       progress=lambda msg, done, total: total == 0 and marks.append(
                           (msg.split()[0], time.perf_counter())))
        end = time.perf_counter()
        times.append(end - t0)
        stages.append({m: b - a for (m, a), (_, b) in zip(marks, marks[1:] + [("end", end)])})
    t0 = time.perf_counter()
    build(model, x_train[:300], name="digits", target="cortex-m")
    target_s = time.perf_counter() - t0
    return {
        "config": "demo_build",
        "build_s": round(float(np.median(times)), 2),
        "build_min_s": round(min(times), 2),
        "build_max_s": round(max(times), 2),
        "build_runs": runs,
        "build_target_s": round(target_s, 2),
        "build_stages_s": {k: round(float(np.median([st[k] for st in stages])), 2) for k in stages[0]},
        "flash_bytes": result.report.flash_bytes,
        "arena_bytes": result.arena.emitted_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--build-only", action="store_true", help="only the demo_build line")
    parser.add_argument("--build-runs", type=int, default=3)
    args = parser.parse_args()
    if args.build_only:
        print(json.dumps(demo_build_line(args.build_runs)))
        return
    import keras

    import tflite_export
    from tinycompress import export

    (x_train, y_train), (x_test, y_test) = load_mnist()
    keras.utils.set_random_seed(0)
    model = lenet5()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=64, verbose=0)
    float_acc = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        result = export(model, x_train[:500], os.path.join(d, "out"))
        export_s = time.perf_counter() - t0
        pcd = export(model, x_train[:500], os.path.join(d, "pcd"), per_channel_dense=True)
    int8_acc = tflite_export.evaluate_accuracy(result.model, x_test, y_test)
    pcd_acc = tflite_export.evaluate_accuracy(pcd.model, x_test, y_test)
    float_bytes = float_tflite_bytes(model)
    line = {
        "float_bytes": float_bytes,
        "int8_bytes": result.unslimmed_bytes,
        "slim_bytes": len(result.model),
        "overhead_bytes": result.report.overhead_bytes,
        "ratio": round(len(result.model) / float_bytes, 4),
        "arena_bytes": result.arena.emitted_bytes,
        "arena_host_bytes": result.arena.host_bytes,
        "macs": result.report.macs,
        "params": result.report.params,
        "float_acc": round(float_acc, 4),
        "int8_acc": round(int8_acc, 4),
        "export_s": round(export_s, 2),
        "pcd_slim_bytes": len(pcd.model),
        "pcd_arena_host_bytes": pcd.arena.host_bytes,
        "pcd_int8_acc": round(pcd_acc, 4),
    }
    print(json.dumps(line))
    print(json.dumps(demo_build_line(args.build_runs)))


if __name__ == "__main__":
    main()
