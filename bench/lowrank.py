"""Benchmark: low-rank factorization and layer pruning (issue 15), int8 on TFLM.

Data from ``../shared/data``, or the folder in ``$TINYCOMPRESS_DATA`` (exits
with status 2 when missing):

- ``lenet5``: Caffe LeNet-5 on MNIST (first 8,000 test-set images train,
  last 2,000 evaluate). Configs ``int8`` (baseline), ``lowrank`` (SVD of fc1
  and conv2 at explicit ranks, fine-tuned), ``structured`` (channel pruning
  of conv1/conv2/fc1 + `shrink`, as in ``bench/pruning.py``) and
  ``lowrank_structured`` (the shrunk model, then SVD of fc1, fine-tuned).
  Target: lowrank_structured >= 30x smaller than float at <= 0.3 pt.
- ``resnet8``: MLPerf Tiny's ResNet-8 shape (stem 16, stacks of 16/32/64
  with one residual block each, the first with an identity shortcut;
  BatchNorm momentum 0.9, Adam with cosine decay) on MNIST 28x28. Configs ``int8`` and ``layer_pruned`` (candidates scored by
  validation loss on the last 1,000 training images, removed until the
  Keras-side MACs are <= 69% of the original, fine-tuned with ``fit``) and
  ``layer_pruned_distilled`` (the same pruned model fine-tuned with
  `distill` from the unpruned model instead). Target >= 30% of the MACs
  removed at <= 0.5 pt.
- ``autoencoder``: Dense 640-128x4-8-128x4-640 (MLPerf Tiny anomaly
  detection shape, whose input is 5 frames x 128 log-mel bins) on
  BasicMotions: each standardized channel of the concatenated train (test)
  series -> log-magnitude spectra of 254-sample Hann frames (128 bins, hop
  16) -> 5 consecutive frames = 640 features, standardized per feature.
  Configs ``int8``, ``lowrank_r{r}`` (every layer factored at rank r where
  it saves, fine-tuned) and ``channel_r{r}`` (channel pruning of the eight
  128-wide layers to the widest width whose estimated int8 flash is at most
  lowrank_r{r}'s measured flash, fine-tuned the same epochs, shrunk).
  ``mse`` is the TFLM int8 reconstruction MSE on the test windows
  (standardized units).

Every line: ``model``, ``config``, ``flash_bytes``, ``arena_bytes``, ``macs``
(measured on the int8 flatbuffer), ``acc`` (TFLM int8, a fraction) or
``mse``, ``float_bytes`` (4 bytes per parameter of the float model),
``float_acc`` / ``float_mse`` (Keras float), ``float_macs`` (MACs of the
int8 conversion of the float model) and details (ranks, removed blocks).

Usage: ``python bench/lowrank.py [--epochs 4] [--finetune 3] [--only lenet5]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import tflite_export  # noqa: E402
import tinycompress  # noqa: E402
from _data import load_basicmotions, load_mnist  # noqa: E402
from _models import caffe_lenet5, XENT, compiled, copy_of  # noqa: E402
from tinycompress.distillation import distill  # noqa: E402
from tinycompress.layer_pruning import LayerPruningConfig, macs, prune_layers  # noqa: E402
from tinycompress.lowrank import LowRankConfig, factorize  # noqa: E402
from tinycompress.pruning import ConstantSparsity, PolynomialDecay, PruningCallback, shrink  # noqa: E402

L = keras.layers
BATCH = 64


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def measured(model_bytes: bytes) -> dict:
    r = tflite_export.inspect(model_bytes)
    return {"flash_bytes": r.flash_bytes, "arena_bytes": r.arena_bytes, "macs": r.macs}


def classify_row(name, config, model, calib, x_test, y_test, base, **extra) -> dict:
    tfl = tinycompress.convert(model, calib)
    row = {"model": name, "config": config, **measured(tfl),
           "acc": round(tflite_export.evaluate_accuracy(tfl, x_test, y_test), 4), **base, **extra}
    row["flash_ratio_vs_float"] = round(base["float_bytes"] / row["flash_bytes"], 2)
    row["acc_drop_vs_float_pt"] = round(100 * (base["float_acc"] - row["acc"]), 2)
    return row


def float_base(model, calib, x_test, y_test) -> dict:
    acc = float(model.evaluate(x_test, y_test, verbose=0)[1])
    macs = tflite_export.inspect(tinycompress.convert(model, calib), measure=False).macs
    return {"float_bytes": 4 * model.count_params(), "float_acc": round(acc, 4), "float_macs": macs}


def lenet5(args, mnist) -> None:
    (x_train, y_train), (x_test, y_test) = mnist
    calib, fit = x_train[:500], dict(batch_size=BATCH, verbose=0)
    keras.utils.set_random_seed(0)
    teacher = compiled(caffe_lenet5(), 1e-3)
    teacher.fit(x_train, y_train, epochs=args.epochs, **fit)
    base = float_base(teacher, calib, x_test, y_test)
    emit(classify_row("lenet5", "int8", teacher, calib, x_test, y_test, base))

    ranks = {"fc1": args.fc1_rank, "conv2": args.conv2_rank}
    small, report = factorize(teacher, LowRankConfig(ranks=ranks))
    compiled(small, 3e-4).fit(x_train, y_train, epochs=args.finetune, **fit)
    emit(classify_row("lenet5", "lowrank", small, calib, x_test, y_test, base, ranks=ranks,
                      params=report.params_after))

    steps = math.ceil(len(x_train) / BATCH)
    channel = PolynomialDecay(0.0, 0.5, begin_step=0, end_step=(args.finetune * steps) // 2,
                              frequency=max(steps // 4, 1))
    pruned = compiled(copy_of(teacher), 3e-4)
    pruned.fit(x_train, y_train, epochs=args.finetune, **fit, callbacks=[PruningCallback(
        channel, layers=["conv1", "conv2", "fc1"], granularity="channel", log_summary=False)])
    shrunk = shrink(pruned)
    widths = {l.name: int(l.kernel.shape[-1]) for l in shrunk.layers if hasattr(l, "kernel")}
    emit(classify_row("lenet5", "structured", shrunk, calib, x_test, y_test, base, channels=widths,
                      params=shrunk.count_params()))

    both_ranks = {"fc1": args.fc1_rank}
    both, report = factorize(shrunk, LowRankConfig(ranks=both_ranks))
    compiled(both, 3e-4).fit(x_train, y_train, epochs=args.finetune, **fit)
    emit(classify_row("lenet5", "lowrank_structured", both, calib, x_test, y_test, base,
                      channels=widths, ranks=both_ranks, params=report.params_after))


def resnet8(input_shape=(28, 28, 1), classes=10) -> keras.Model:
    """MLPerf Tiny ResNet-8 shape (no L2), for MNIST-sized inputs."""
    def conv_bn(x, filters, name, strides=1, relu=True):
        x = L.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=name)(x)
        x = L.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return L.ReLU(name=f"{name}_relu")(x) if relu else x

    inp = keras.Input(input_shape)
    x = conv_bn(inp, 16, "stem")
    for i, (filters, strides) in enumerate(((16, 1), (32, 2), (64, 2)), 1):
        y = conv_bn(conv_bn(x, filters, f"s{i}a", strides), filters, f"s{i}b", relu=False)
        if strides != 1:
            x = L.Conv2D(filters, 1, strides=strides, name=f"s{i}_proj")(x)
        x = L.ReLU(name=f"s{i}_out")(L.Add(name=f"s{i}_add")([x, y]))
    out = L.Dense(classes, name="logits")(L.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out, name="resnet8")


def cosine(lr: float, epochs: int, n: int) -> keras.optimizers.schedules.CosineDecay:
    """Learning rate decaying to 0 over the run: BatchNorm statistics settle with the weights."""
    return keras.optimizers.schedules.CosineDecay(lr, epochs * math.ceil(n / BATCH))


def resnet(args, mnist) -> None:
    (x_train, y_train), (x_test, y_test) = mnist
    x_fit, y_fit, x_val, y_val = x_train[:7000], y_train[:7000], x_train[7000:], y_train[7000:]
    calib, fit = x_train[:500], dict(batch_size=BATCH, verbose=0)
    keras.utils.set_random_seed(0)
    model = compiled(resnet8(), cosine(1e-3, args.epochs, len(x_fit)))
    model.fit(x_fit, y_fit, epochs=args.epochs, **fit)
    base = float_base(model, calib, x_test, y_test)
    emit(classify_row("resnet8", "int8", model, calib, x_test, y_test, base))

    budget = int(args.macs_keep * macs(model))
    pruned, report = prune_layers(model, LayerPruningConfig(max_macs=budget),
                                  validation_data=(x_val, y_val), loss=XENT)
    epochs, extra = args.resnet_finetune, dict(
        removed=[c.name + ":" + c.kind for c in report.removed],
        scores={s.candidate.name + ":" + s.candidate.kind: round(s.loss_increase, 4) for s in report.scores},
        keras_macs_before=report.macs_before, keras_macs_after=report.macs_after)
    student = keras.models.clone_model(pruned)
    student.set_weights(pruned.get_weights())
    compiled(pruned, cosine(1e-3, epochs, len(x_fit))).fit(x_fit, y_fit, epochs=epochs, **fit)
    distill(model, student, x_fit, y_fit, epochs=epochs, batch_size=BATCH,
            optimizer=lambda: keras.optimizers.Adam(cosine(1e-3, epochs, len(x_fit))))
    for config, tuned in (("layer_pruned", pruned), ("layer_pruned_distilled", student)):
        row = classify_row("resnet8", config, tuned, calib, x_test, y_test, base, **extra)
        row["macs_removed_frac"] = round(1 - row["macs"] / base["float_macs"], 4)
        emit(row)


def _frames(x: np.ndarray, mean, std, frame=254, hop=16, context=5) -> np.ndarray:
    """Log-magnitude spectra (128 bins) of each standardized channel, 5 consecutive frames."""
    stream = ((np.concatenate(list(x), axis=0) - mean) / std).T  # (channels, time)
    starts = np.arange(0, stream.shape[1] - frame + 1, hop)
    window = np.hanning(frame)
    out = []
    for ch in stream:
        spec = np.log1p(np.abs(np.fft.rfft(np.stack([ch[s:s + frame] * window for s in starts]))))
        out += [spec[i:i + context, :128].ravel() for i in range(len(spec) - context + 1)]
    return np.asarray(out, np.float32)


def autoencoder() -> keras.Model:
    widths = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    layers = [keras.Input((640,))]
    layers += [L.Dense(w, activation="relu", name=f"dense{i}") for i, w in enumerate(widths)]
    return keras.Sequential([*layers, L.Dense(640, name="out")], name="autoencoder")


def mse_row(config, model, calib, x_test, base, **extra) -> dict:
    tfl = tinycompress.convert(model, calib)
    y = tflite_export.dequantize(tflite_export.run_tflm(tfl, tflite_export.quantize(x_test, tfl)), tfl)
    return {"model": "autoencoder", "config": config, **measured(tfl),
            "mse": round(float(np.mean((y - x_test) ** 2)), 5), **base,
            "params": model.count_params(), **extra}


def _weight_bytes(width: int) -> int:
    """int8 kernels + int32 biases of the autoencoder with its eight 128-wide layers at `width`."""
    kernels = 2 * 640 * width + 6 * width * width + 2 * 8 * width
    return kernels + 4 * (8 * width + 8 + 640)


def _width_for(flash_bytes: int, overhead_bytes: int) -> int:
    """The widest channel-pruned autoencoder whose estimated flash is <= `flash_bytes`."""
    fits = [w for w in range(1, 129) if _weight_bytes(w) + overhead_bytes <= flash_bytes]
    return max(fits, default=1)


def autoencoder_bench(args, motions) -> None:
    (x_train, _), (x_test, _) = motions
    stream = np.concatenate(list(x_train), axis=0)
    mean, std = stream.mean(0), stream.std(0) + 1e-6
    w_train, w_test = _frames(x_train, mean, std), _frames(x_test, mean, std)
    mu, sigma = w_train.mean(0), w_train.std(0) + 1e-6
    w_train, w_test = (w_train - mu) / sigma, (w_test - mu) / sigma
    calib, fit = w_train[:300], dict(batch_size=32, verbose=0)
    keras.utils.set_random_seed(0)
    model = compiled(autoencoder(), 1e-3, loss="mse", metrics=())
    model.fit(w_train, w_train, epochs=args.ae_epochs, **fit)
    float_mse = float(model.evaluate(w_test, w_test, verbose=0))
    tfl = tinycompress.convert(model, calib)
    base = {"float_bytes": 4 * model.count_params(), "float_mse": round(float_mse, 5),
            "float_macs": tflite_export.inspect(tfl, measure=False).macs}
    overhead = tflite_export.inspect(tfl, measure=False).overhead_bytes
    emit(mse_row("int8", model, calib, w_test, base, windows=[len(w_train), len(w_test)]))
    hidden = [f"dense{i}" for i in range(9) if i != 4]
    for rank in args.ae_ranks:
        ranks = {l.name: rank for l in model.layers if min(l.kernel.shape) > rank}
        small, report = factorize(model, LowRankConfig(ranks=ranks))
        compiled(small, 3e-4, loss="mse", metrics=()).fit(w_train, w_train, epochs=args.ae_finetune, **fit)
        row = mse_row(f"lowrank_r{rank}", small, calib, w_test, base, kept=[l.name for l in report.kept])
        emit(row)
        width = _width_for(row["flash_bytes"], overhead)
        pruned = compiled(copy_of(model), 3e-4, loss="mse", metrics=())
        pruned.fit(w_train, w_train, epochs=args.ae_finetune, **fit, callbacks=[PruningCallback(
            ConstantSparsity(1 - width / 128, frequency=10), layers=hidden, granularity="channel",
            log_summary=False)])
        emit(mse_row(f"channel_r{rank}", shrink(pruned), calib, w_test, base, width=width))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="float training epochs (MNIST)")
    parser.add_argument("--finetune", type=int, default=3, help="fine-tune epochs (MNIST)")
    parser.add_argument("--fc1-rank", type=int, default=32)
    parser.add_argument("--conv2-rank", type=int, default=16)
    parser.add_argument("--resnet-finetune", type=int, default=12, help="layer-pruned fine-tune epochs")
    parser.add_argument("--macs-keep", type=float, default=0.69)
    parser.add_argument("--ae-epochs", type=int, default=40)
    parser.add_argument("--ae-finetune", type=int, default=20)
    parser.add_argument("--ae-ranks", type=int, nargs="+", default=[32, 16, 8])
    parser.add_argument("--only", choices=["lenet5", "resnet8", "autoencoder"], default=None)
    args = parser.parse_args()
    if args.only in (None, "lenet5", "resnet8"):
        mnist = load_mnist()
        if args.only in (None, "lenet5"):
            lenet5(args, mnist)
        if args.only in (None, "resnet8"):
            resnet(args, mnist)
    if args.only in (None, "autoencoder"):
        autoencoder_bench(args, load_basicmotions())
    return 0


if __name__ == "__main__":
    sys.exit(main())
