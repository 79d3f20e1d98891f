"""Benchmark: 4-bit weight clustering + TFLM LUT compression on LeNet-5 (Caffe size).

Data: ``../shared/data/mnist-t10k`` relative to the repository (first 8,000
images train, last 2,000 evaluate); exits with status 2 when it is missing.
Accuracy of every deployable model is measured on the TFLM interpreter.

Prints one JSON line per configuration with keys ``config`` (``int8``,
``cluster4_lut``, ``pruned_cluster4_lut``), ``flash_bytes`` (the .tflite
flatbuffer), ``arena_bytes`` (TFLM arena measured on the host, DECODE outputs
included), ``acc`` (TFLM), ``float_bytes`` (4 bytes per float32 parameter of
the float LeNet-5) and ``float_acc`` (Keras), plus the LUT figures.

Targets (issue 5): cluster4_lut flash <= 0.6 x int8 flash with <= 0.5 points
accuracy loss; pruned_cluster4_lut flash <= float_bytes / 40 within 0.5 points
of float accuracy.

Usage: ``python bench/clustering.py [--epochs 8]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import tflite_export  # noqa: E402
import tinycompress  # noqa: E402
from _data import load_mnist  # noqa: E402
from _models import caffe_lenet5 as lenet5, compiled, copy_of  # noqa: E402
from tflite_export.lut import compress_luts  # noqa: E402
from tinycompress.clustering import cluster_weights, strip_clustering  # noqa: E402
from tinycompress.pruning import PolynomialDecay, PruningCallback, shrink, strip_pruning  # noqa: E402


def deploy(config: str, model: keras.Model, data, base: dict, lut: bool) -> dict:
    (x_train, _), (x_test, y_test) = data
    model_bytes = tinycompress.convert(model, x_train[:500])
    row = {"config": config}
    if lut:
        result = compress_luts(model_bytes, verify_data=x_test[:16])
        model_bytes = result.model_bytes
        arena = result.host_arena_after
        extra = {
            "lut_tensors": len(result.tensors),
            "lut_flash_saved": result.flash_saved,
            "lut_arena_added": result.host_arena_added,
            "lut_verified_samples": result.verified_samples,
        }
    else:
        arena = tflite_export.measure_arena(model_bytes).host_bytes
        extra = {}
    row.update({
        "flash_bytes": len(model_bytes),
        "arena_bytes": arena,
        "acc": round(tflite_export.evaluate_accuracy(model_bytes, x_test, y_test), 4),
        **base,
        "params": int(model.count_params()),
        **extra,
    })
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="float training epochs")
    parser.add_argument("--finetune", type=int, default=3, help="clustering fine-tune epochs")
    parser.add_argument("--sparsity", type=float, default=0.7, help="channel sparsity")
    args = parser.parse_args()

    data = load_mnist()
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(0)
    fit = dict(batch_size=64, verbose=0)

    float_model = compiled(lenet5(), 1e-3)
    float_model.fit(x_train, y_train, epochs=args.epochs, **fit)
    base = {
        "float_bytes": 4 * int(float_model.count_params()),
        "float_acc": round(float(float_model.evaluate(x_test, y_test, verbose=0)[1]), 4),
    }
    print(json.dumps(deploy("int8", float_model, data, base, lut=False)), flush=True)

    clustered = compiled(cluster_weights(copy_of(float_model), bits=4), 3e-4)
    clustered.fit(x_train, y_train, epochs=args.finetune, **fit)
    print(json.dumps(deploy("cluster4_lut", strip_clustering(clustered), data, base, lut=True)),
          flush=True)

    pruned = compiled(copy_of(float_model), 5e-4)
    steps = len(x_train) // fit["batch_size"]
    schedule = PolynomialDecay(0.0, args.sparsity, begin_step=0, end_step=3 * steps,
                               frequency=steps // 4)
    callback = PruningCallback(schedule, layers=["conv1", "conv2", "fc1"], granularity="channel",
                               log_summary=False)
    pruned.fit(x_train, y_train, epochs=5, callbacks=[callback], **fit)
    small = compiled(shrink(strip_pruning(pruned)), 3e-4)
    small.fit(x_train, y_train, epochs=2, **fit)
    clustered = compiled(cluster_weights(small, bits=4), 3e-4)
    clustered.fit(x_train, y_train, epochs=args.finetune, **fit)
    row = deploy("pruned_cluster4_lut", strip_clustering(clustered), data, base, lut=True)
    print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
