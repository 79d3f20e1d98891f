"""Benchmark: our QAT vs post-training int8 vs TFMOT's QAT on MNIST, run on TFLM.

For each model (a MobileNet-style depthwise-separable CNN, LeNet-5) it trains
the float model, converts it post-training (PTQ), fine-tunes it with
`tinycompress.quantization.quantize_model` and with TFMOT's QAT (tf_keras, in
a child process, from the same float weights with the same epochs and learning
rate), converts both, and measures argmax accuracy of every int8 model on the
TFLM interpreter. Data: ``../shared/data/mnist-t10k`` relative to the repo
(first 8,000 images train, last 2,000 evaluate); exits 2 when it is missing.

Prints one JSON line per model with keys ``model``, ``float_acc``, ``ptq_acc``,
``qat_acc``, ``tfmot_qat_acc`` (plus settings and targets).

Measured widths 2, 3, 4, 6 and 8 (10 float epochs): post-training int8 lost
under 1 point at every width (per-channel kernels and ReLU6-bounded ranges
leave PTQ little to lose on MNIST), so the default is 8, the most accurate.

Usage: python bench/qat.py [--float-epochs 10] [--qat-epochs 2] [--width 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _data import load_mnist  # noqa: E402
from _qat_models import MODELS, build  # noqa: E402
from tflite_export import evaluate_accuracy  # noqa: E402
from tinycompress import convert  # noqa: E402
from tinycompress.quantization import quantize_model  # noqa: E402


def _compile(model, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _tfmot_acc(name: str, width: int, model, args, x_test, y_test) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "w.npz")
        np.savez(weights, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        out = os.path.join(tmp, "tfmot.tflite")
        subprocess.run(
            [sys.executable, os.path.join(HERE, "_qat_tfmot.py"), name, str(width), weights,
             str(args.qat_epochs), str(args.qat_lr), out],
            check=True,
        )
        with open(out, "rb") as f:
            return evaluate_accuracy(f.read(), x_test, y_test)


def run(name: str, args, data) -> dict:
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(0)
    model = build(name, keras, args.width)
    _compile(model, 1e-3)
    model.fit(x_train, y_train, epochs=args.float_epochs, batch_size=64, verbose=0)
    float_acc = float(model.evaluate(x_test, y_test, verbose=0)[1])
    calib = x_train[:500]
    ptq_acc = evaluate_accuracy(convert(model, calib), x_test, y_test)

    keras.utils.set_random_seed(0)
    qat = quantize_model(model)
    _compile(qat, args.qat_lr)
    qat.fit(x_train, y_train, epochs=args.qat_epochs, batch_size=64, verbose=0)
    qat_acc = evaluate_accuracy(convert(qat, calib), x_test, y_test)
    tfmot_acc = _tfmot_acc(name, args.width, model, args, x_test, y_test)
    loss = float_acc - ptq_acc
    return {
        "model": name,
        "float_acc": round(float_acc, 4),
        "ptq_acc": round(ptq_acc, 4),
        "qat_acc": round(qat_acc, 4),
        "tfmot_qat_acc": round(tfmot_acc, 4),
        "width": args.width if name == "mobilenet_tiny" else None,
        "float_epochs": args.float_epochs,
        "qat_epochs": args.qat_epochs,
        "ptq_loss_ge_1pt": loss >= 0.01,
        "recovers_half_of_ptq_loss": bool(loss > 0 and qat_acc - ptq_acc >= loss / 2),
        "within_0.3pt_of_tfmot": abs(qat_acc - tfmot_acc) <= 0.003 or qat_acc > tfmot_acc,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-epochs", type=int, default=10)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--width", type=int, default=8, help="MobileNet base width")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args()
    data = load_mnist()
    for name in args.models:
        print(json.dumps(run(name, args, data)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
