"""Benchmark: recurrent models (LSTM, GRU, SimpleRNN) vs Conv1D, int8 on TFLM.

Datasets from ``../shared/data`` relative to the repo, or the folder in the
environment variable ``TINYCOMPRESS_DATA`` (exits 2 when missing):

- JapaneseVowels: 12 LPC cepstrum channels, 7-29 frames, 9 speakers, 270 train
  / 370 test. Sequences are padded to 29 frames with zeros *before* the first
  frame, so the last step a recurrent layer sees is real data.
- BasicMotions: 6 channels (accelerometer, gyroscope), 100 steps, 4 classes,
  40 train / 40 test.

Channels are standardized with the training set's mean and deviation. Each
model is trained in float, converted post-training with `tinycompress.convert`
(LSTM: one fused UNIDIRECTIONAL_SEQUENCE_LSTM op; GRU and SimpleRNN: unrolled
over the sequence, see `tinycompress.recurrent`), slimmed as `export` ships it,
and run on the TFLM interpreter for ``ptq_acc``. ``flash_bytes`` is the slimmed
flatbuffer, ``arena_bytes`` the arena TFLM allocates on this host (64-bit
pointers: a 32-bit MCU needs somewhat less), ``macs`` from
`tflite_export.inspect`. ``qat_acc``: the float model fine-tuned with
`tinycompress.quantization.quantize_model` (``--qat-epochs`` at learning rate
1e-3), converted and run on TFLM the same way. ``lstm_pruned_qat``: the float
LSTM fine-tuned under QAT while `tinycompress.pruning` prunes its input and
recurrent kernels to ``--sparsity`` (through `QuantizeRecurrent`'s kernel
protocol); its ``float_acc`` is the float LSTM's, ``ptq_acc`` null, and
``encoded_flash_bytes`` is what ``tinycompress.build(..., encode="prune")``
ships (null when encoding saves nothing or fails), with ``lstm_zeros``, the
fraction of zeros in the exported LSTM weight tensors.

Prints one JSON line per (dataset, model) with keys ``dataset``, ``model``,
``float_acc``, ``ptq_acc``, ``qat_acc``, ``flash_bytes``, ``arena_bytes``,
``macs`` (plus ``ops``, the operator count, and ``convert_s``).

Measured here (units 16, 60 epochs, seed 0; BasicMotions has 40 test series,
so one series is 2.5 points): JapaneseVowels float / TFLM int8 accuracy LSTM
96.2 / 96.5 %, GRU 95.7 / 95.4 %, SimpleRNN 95.1 / 94.6 %, Conv1D 97.0 / 97.0 %;
BasicMotions LSTM 80.0 / 77.5 %, GRU 90.0 / 87.5 %, SimpleRNN 60.0 / 57.5 %,
Conv1D 100 / 100 %. The fused LSTM costs 4.1-4.6 KB of flash and 4.0-4.9 KB of
arena whatever the length; the unrolled GRU grows with it: 43.8 KB flash and
96 KB arena at 29 steps, 143 KB and 328 KB at 100 steps (13 ops per step, each
with TFLM's per-operator bookkeeping).

With QAT (15 epochs at 1e-3; float / PTQ / QAT accuracy on TFLM): JapaneseVowels
LSTM 96.2 / 96.5 / 96.2 %, GRU 95.7 / 95.4 / 95.9 %, SimpleRNN 95.1 / 94.6 / 95.1 %,
Conv1D 97.0 / 97.0 / 97.3 %, LSTM pruned to 50 % under QAT 96.5 %; BasicMotions
(40 test series) LSTM 80.0 / 77.5 / 95.0 %, GRU 90.0 / 87.5 / 95.0 %, SimpleRNN
60.0 / 57.5 / 65.0 %, Conv1D 100 / 100 / 100 %, pruned QAT LSTM 92.5 %. On
BasicMotions the 15 QAT epochs also train the under-trained float models
further, so QAT above float there is not a quantization effect. The pruned LSTM's 16-unit weight tensors (96 and 256 bytes) are too
small for DECODE to pay off, so ``encoded_flash_bytes`` equals ``flash_bytes``;
tests/tinycompress/pruning/test_pruning_recurrent.py shows the saving at 32 units.

Usage: nice -n 10 python bench/recurrent.py [--units 16] [--epochs 60] [--qat-epochs 20]
    [--sparsity 0.5] [--datasets japanesevowels basicmotions]
    [--models lstm gru simplernn conv1d lstm_pruned_qat]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402

import numpy as np  # noqa: E402

import _data  # noqa: E402
import tflite_export  # noqa: E402
from tinycompress import convert, pruning  # noqa: E402
from tinycompress.core import prepare_for_export  # noqa: E402
from tinycompress.quantization import quantize_model  # noqa: E402


def _standardize(train, test):
    (x, y), (xt, yt) = train, test
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1)) + 1e-6
    return ((x - mean) / std, y), ((xt - mean) / std, yt)


def build(kind: str, shape, classes: int, units: int) -> keras.Model:
    layers = keras.layers
    body = {
        "lstm": [layers.LSTM(units, name="lstm")],
        "gru": [layers.GRU(units, name="gru")],
        "simplernn": [layers.SimpleRNN(units, name="simplernn")],
        "conv1d": [
            layers.Conv1D(units, 5, activation="relu", padding="same"),
            layers.MaxPooling1D(2),
            layers.Conv1D(units, 3, activation="relu", padding="same"),
            layers.GlobalAveragePooling1D(),
        ],
    }[kind]
    return keras.Sequential([keras.Input(shape), *body, layers.Dense(classes)], name=kind)


def _compile(model, lr: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _tflm(model, x, xt, yt) -> tuple[bytes, float]:
    tflite = tflite_export.slim(convert(model, x)).model
    return tflite, round(tflite_export.evaluate_accuracy(tflite, xt, yt), 4)


def _qat(model, x, y, args, extra_callbacks=()):
    keras.utils.set_random_seed(1)
    qat = quantize_model(model)
    _compile(qat, 1e-3)
    qat.fit(x, y, epochs=args.qat_epochs, batch_size=16, verbose=0, callbacks=list(extra_callbacks))
    return prepare_for_export(qat)


def _lstm_zeros(tflite: bytes) -> float:
    """Fraction of zeros in the UNIDIRECTIONAL_SEQUENCE_LSTM weight tensors."""
    from tflite_export import _flatbuffer as fb

    m = fb.unpack(tflite)
    sg, values = m.subgraphs[0], []
    for op in sg.operators:
        if fb.op_name(m.operatorCodes[op.opcodeIndex]) == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            for t in op.inputs[1:9]:  # input-to-gate and recurrent-to-gate weights
                values.append(np.frombuffer(bytes(m.buffers[sg.tensors[t].buffer].data), np.int8))
    return round(float(np.mean(np.concatenate(values) == 0)), 4)


def _pruned_qat(model, data, args) -> dict:
    (x, y), (xt, yt) = data
    config = pruning.PruningConfig(pruning.ConstantSparsity(args.sparsity, frequency=10),
                                   layers="quant_lstm")
    exported = _qat(model, x, y, args, pruning.callbacks(config, log_summary=False))
    tflite, acc = _tflm(exported, x, xt, yt)
    encoded = None
    try:
        from tinycompress import build as build_for_tflm

        result = build_for_tflm(exported, x, encode="prune")
        encoded = tflite_export.inspect(result.model).flash_bytes
    except Exception as e:  # noqa: BLE001 - the bench reports, it does not stop
        print(f"# encode=prune failed: {type(e).__name__}: {e}", file=sys.stderr)
    return {"ptq_acc": None, "qat_acc": acc, "tflite": tflite,
            "encoded_flash_bytes": encoded, "lstm_zeros": _lstm_zeros(tflite)}


def run(dataset: str, kind: str, data, args) -> dict:
    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(0)
    base = "lstm" if kind == "lstm_pruned_qat" else kind
    model = build(base, x.shape[1:], int(y.max()) + 1, args.units)
    _compile(model, 3e-3)
    model.fit(x, y, epochs=args.epochs, batch_size=16, verbose=0)
    float_acc = float(model.evaluate(xt, yt, verbose=0)[1])
    start = time.monotonic()
    if kind == "lstm_pruned_qat":
        extra = _pruned_qat(model, data, args)
        tflite = extra.pop("tflite")
    else:
        tflite, ptq_acc = _tflm(model, x, xt, yt)
        _, qat_acc = _tflm(_qat(model, x, y, args), x, xt, yt)
        extra = {"ptq_acc": ptq_acc, "qat_acc": qat_acc}
    convert_s = time.monotonic() - start
    report = tflite_export.inspect(tflite)
    return {
        "dataset": dataset,
        "model": kind,
        "float_acc": round(float_acc, 4),
        "ptq_acc": extra.pop("ptq_acc"),
        "qat_acc": extra.pop("qat_acc"),
        "flash_bytes": report.flash_bytes,
        "arena_bytes": report.arena_bytes,
        "macs": report.macs,
        **extra,
        "ops": len(report.layers),
        "convert_and_qat_s": round(convert_s, 1),
        "units": args.units,
        "epochs": args.epochs,
        "qat_epochs": args.qat_epochs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--qat-epochs", type=int, default=20)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--datasets", nargs="+", default=["japanesevowels", "basicmotions"])
    parser.add_argument("--models", nargs="+", default=["lstm", "gru", "simplernn", "conv1d", "lstm_pruned_qat"])
    args = parser.parse_args()
    loaders = {"japanesevowels": _data.load_japanese_vowels, "basicmotions": _data.load_basicmotions}
    for dataset in args.datasets:
        data = _standardize(*loaders[dataset]())
        for kind in args.models:
            print(json.dumps(run(dataset, kind, data, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
