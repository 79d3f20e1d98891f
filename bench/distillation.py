"""Benchmark: does knowledge distillation help a microcontroller-sized student?

For each data set it trains one teacher, then for every seed trains a student
at least 10x smaller (derived from the teacher with
`tinycompress.distillation.derive_student`) three ways from the same initial
weights, epochs, batch order and learning rate: from scratch on labels,
distilled from the teacher's logits (`distill`), and distilled through one
teacher assistant sized geometrically between them (`distill_with_assistants`,
the assistant trained for the same epochs first). Every model is also
converted to int8 with `tinycompress.convert` and scored on the TFLM
interpreter (`tflite_export.evaluate_accuracy`).

Data (relative to the repo): ``../shared/data/mnist-t10k`` (first 8,000 images
train, last 2,000 evaluate) and ``../shared/data/basicmotions`` (40 train / 40
test series, standardised with the training statistics); exits 2 if missing.

Prints one JSON line per data set with ``dataset``, ``teacher_params``,
``student_params``, ``teacher_acc``, ``scratch_acc``, ``kd_acc``, ``ta_acc``,
``kd_int8_acc``, ``seeds`` (means over seeds), plus the int8 accuracies of the
other models, per-seed lists, and ``kd_minus_scratch`` / ``ta_minus_scratch``.

Usage: python bench/distillation.py [--seeds 0 1 2] [--datasets mnist basicmotions]
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

from _data import load_basicmotions, load_mnist  # noqa: E402
from tflite_export import evaluate_accuracy  # noqa: E402
from tinycompress import convert  # noqa: E402
from tinycompress.distillation import derive_student, distill, distill_with_assistants  # noqa: E402


def mnist_teacher() -> keras.Model:
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        keras.layers.Conv2D(64, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(name="pool2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(128, activation="relu", name="fc"),
        keras.layers.Dense(10, name="logits"),
    ], name="mnist_teacher")


def har_teacher() -> keras.Model:
    return keras.Sequential([
        keras.Input((100, 6)),
        keras.layers.Conv1D(32, 5, activation="relu", name="conv1"),
        keras.layers.MaxPooling1D(2, name="pool1"),
        keras.layers.Conv1D(64, 5, activation="relu", name="conv2"),
        keras.layers.GlobalAveragePooling1D(name="gap"),
        keras.layers.Dense(64, activation="relu", name="fc"),
        keras.layers.Dense(4, name="logits"),
    ], name="har_teacher")


SETTINGS = {
    # teacher_epochs, epochs (per student stage), batch, lr, student width
    "mnist": dict(teacher=mnist_teacher, teacher_epochs=4, epochs=4, batch=64, lr=3e-3, width=0.125),
    "basicmotions": dict(teacher=har_teacher, teacher_epochs=100, epochs=80, batch=8, lr=3e-3,
                         width=0.0625),
}


def load(name: str):
    if name == "mnist":
        return load_mnist()
    (x, y), (xt, yt) = load_basicmotions()
    mean, std = x.mean((0, 1)), x.std((0, 1))
    return ((x - mean) / std, y), ((xt - mean) / std, yt)


def _ce() -> keras.losses.Loss:
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _acc(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.predict(x, verbose=0, batch_size=256).argmax(1) == y).mean())


def _int8_acc(model: keras.Model, x_cal: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(evaluate_accuracy(convert(model, x_cal), x, y))


def _fresh(template: keras.Model, init: list) -> keras.Model:
    model = keras.models.clone_model(template)
    model.set_weights(init)
    return model


def run(name: str, seeds: list[int], args) -> dict:
    cfg = SETTINGS[name]
    (x, y), (xt, yt) = load(name)
    x_cal = x[:200]
    epochs = args.epochs or cfg["epochs"]
    start = time.time()

    keras.utils.set_random_seed(1234)
    teacher = cfg["teacher"]()
    teacher.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), loss=_ce())
    teacher.fit(x, y, epochs=cfg["teacher_epochs"], batch_size=cfg["batch"], verbose=0)

    rows: dict[str, list[float]] = {k: [] for k in (
        "scratch_acc", "kd_acc", "ta_acc", "scratch_int8_acc", "kd_int8_acc", "ta_int8_acc")}
    assistant_params = None
    fit_kwargs = dict(epochs=epochs, batch_size=cfg["batch"])
    distill_kwargs = dict(temperature=args.temperature, student_loss_weight=args.alpha, verbose=0,
                          optimizer=lambda: keras.optimizers.Adam(cfg["lr"]))
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        template = derive_student(teacher, cfg["width"], name="student")
        init = template.get_weights()

        keras.utils.set_random_seed(seed)
        scratch = _fresh(template, init)
        scratch.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), loss=_ce())
        scratch.fit(x, y, verbose=0, **fit_kwargs)

        keras.utils.set_random_seed(seed)
        kd = _fresh(template, init)
        distill(teacher, kd, x, y, **fit_kwargs, **distill_kwargs)

        keras.utils.set_random_seed(seed)
        ta = _fresh(template, init)
        result = distill_with_assistants(teacher, ta, x, y, assistants=1, **fit_kwargs, **distill_kwargs)
        assistant_params = result.assistants[0].count_params()

        for key, model in (("scratch", scratch), ("kd", kd), ("ta", ta)):
            rows[f"{key}_acc"].append(_acc(model, xt, yt))
            rows[f"{key}_int8_acc"].append(_int8_acc(model, x_cal, xt, yt))

    means = {k: round(float(np.mean(v)), 4) for k, v in rows.items()}
    return {
        "dataset": name,
        "teacher_params": teacher.count_params(),
        "student_params": template.count_params(),
        "assistant_params": assistant_params,
        "teacher_acc": round(_acc(teacher, xt, yt), 4),
        "teacher_int8_acc": round(_int8_acc(teacher, x_cal, xt, yt), 4),
        **means,
        "kd_minus_scratch": round(means["kd_acc"] - means["scratch_acc"], 4),
        "ta_minus_scratch": round(means["ta_acc"] - means["scratch_acc"], 4),
        "kd_wins_per_seed": int(sum(k > s for k, s in zip(rows["kd_acc"], rows["scratch_acc"]))),
        "per_seed": {k: [round(a, 4) for a in v] for k, v in rows.items()},
        "seeds": seeds,
        "epochs": epochs,
        "teacher_epochs": cfg["teacher_epochs"],
        "temperature": args.temperature,
        "student_loss_weight": args.alpha,
        "test_samples": int(len(yt)),
        "wall_s": round(time.time() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (per stage)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.1, help="student_loss_weight")
    args = parser.parse_args()
    for name in args.datasets:
        print(json.dumps(run(name, args.seeds, args)), flush=True)


if __name__ == "__main__":
    main()
