"""Benchmark: does knowledge distillation help a microcontroller-sized student?

For each data set it trains one teacher, then for every seed trains a student
at least 10x smaller (derived from the teacher with
`tinycompress.distillation.derive_student`) from the same initial weights,
epochs, batch order and learning rate: once from scratch on labels, and once
distilled from the teacher's logits (`distill`) for every configuration of a
sweep over the temperature (``--temperatures``, default 1 2 4 8) and logit
standardization (``--standardize``, default off and on), with the library's
default ``student_loss_weight`` unless ``--alpha`` is given. On the lines that
use the library's defaults (``default: true``) the student is also distilled
through one teacher assistant sized geometrically between teacher and student
(`distill_with_assistants`, the assistant trained for the same epochs first),
and every model is converted to int8 with `tinycompress.convert` and scored on
the TFLM interpreter (`tflite_export.evaluate_accuracy`); the other lines
leave those keys null to save CPU.

Data (relative to the repo): ``../shared/data/mnist-t10k`` (the first
``--mnist-train`` of the first 8,000 images train, default all 8,000; the last
2,000 evaluate) and ``../shared/data/basicmotions`` (40 train / 40 test series,
standardised with the training statistics); exits 2 if missing.

Prints one JSON line per data set and configuration with ``dataset``,
``temperature``, ``standardize``, ``student_loss_weight``, ``default``,
``teacher_params``, ``student_params``, ``teacher_acc``, ``scratch_acc``,
``kd_acc``, ``ta_acc``, ``kd_int8_acc``, ``seeds`` (accuracies are means over
seeds), ``scratch_std`` / ``kd_std`` (population standard deviation over
seeds), per-seed lists, ``kd_minus_scratch`` / ``ta_minus_scratch`` and
``kd_wins_per_seed``.

Usage: python bench/distillation.py [--seeds 0 1 2] [--datasets mnist basicmotions]
       [--temperatures 1 2 4 8] [--standardize 0 1] [--epochs N] [--mnist-train N]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _data import load_basicmotions, load_mnist  # noqa: E402
from tflite_export import evaluate_accuracy  # noqa: E402
from tinycompress import convert  # noqa: E402
from tinycompress.distillation import (  # noqa: E402
    build_distiller,
    derive_student,
    distill,
    distill_with_assistants,
)


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


def _library_defaults() -> dict:
    params = inspect.signature(build_distiller).parameters
    return {k: params[k].default for k in ("temperature", "standardize", "student_loss_weight")}


def _train_scratch(template, init, x, y, cfg, fit_kwargs, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = _fresh(template, init)
    model.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), loss=_ce())
    model.fit(x, y, verbose=0, **fit_kwargs)
    return model


def _std(values: list[float]) -> float:
    return round(float(np.std(values)), 4)


@dataclass
class Setup:
    """What every configuration of one data set shares: data, teacher, initial students."""

    name: str
    cfg: dict
    x: np.ndarray
    y: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    teacher: keras.Model
    fit_kwargs: dict
    students: dict = field(default_factory=dict)  # seed -> (template, initial weights)
    scratch_acc: list = field(default_factory=list)
    scratch_int8: list = field(default_factory=list)
    teacher_int8: float | None = None
    start: float = field(default_factory=time.time)

    @property
    def x_cal(self) -> np.ndarray:
        return self.x[:200]


def prepare(name: str, seeds: list[int], args) -> Setup:
    """Load the data, train the teacher and, per seed, the student from scratch."""
    cfg = SETTINGS[name]
    (x, y), (xt, yt) = load(name)
    if name == "mnist" and args.mnist_train:
        x, y = x[: args.mnist_train], y[: args.mnist_train]
    start = time.time()
    keras.utils.set_random_seed(1234)
    teacher = cfg["teacher"]()
    teacher.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), loss=_ce())
    teacher.fit(x, y, epochs=cfg["teacher_epochs"], batch_size=cfg["batch"], verbose=0)
    fit_kwargs = dict(epochs=args.epochs or cfg["epochs"], batch_size=cfg["batch"])
    setup = Setup(name, cfg, x, y, xt, yt, teacher, fit_kwargs, start=start)
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        template = derive_student(teacher, cfg["width"], name="student")
        setup.students[seed] = (template, template.get_weights())
        scratch = _train_scratch(template, setup.students[seed][1], x, y, cfg, fit_kwargs, seed)
        setup.scratch_acc.append(_acc(scratch, xt, yt))
        setup.scratch_int8.append(_int8_acc(scratch, setup.x_cal, xt, yt) if args.int8 else None)
    return setup


def _train_kd(s: Setup, seeds: list[int], distill_kwargs: dict, full: bool, int8: bool) -> tuple:
    """Distil every seed's student; on `full` lines also via an assistant, and score int8."""
    rows: dict[str, list] = {k: [] for k in ("kd_acc", "ta_acc", "kd_int8_acc", "ta_int8_acc")}
    assistant_params = None
    for seed in seeds:
        template, init = s.students[seed]
        keras.utils.set_random_seed(seed)
        kd = _fresh(template, init)
        distill(s.teacher, kd, s.x, s.y, **s.fit_kwargs, **distill_kwargs)
        rows["kd_acc"].append(_acc(kd, s.xt, s.yt))
        if not full:
            continue
        keras.utils.set_random_seed(seed)
        ta = _fresh(template, init)
        result = distill_with_assistants(s.teacher, ta, s.x, s.y, assistants=1, **s.fit_kwargs,
                                         **distill_kwargs)
        assistant_params = result.assistants[0].count_params()
        rows["ta_acc"].append(_acc(ta, s.xt, s.yt))
        if int8:
            rows["kd_int8_acc"].append(_int8_acc(kd, s.x_cal, s.xt, s.yt))
            rows["ta_int8_acc"].append(_int8_acc(ta, s.x_cal, s.xt, s.yt))
    return rows, assistant_params


def config_line(s: Setup, seeds: list[int], temperature: float, standardize: bool, args) -> dict:
    """Train and score one (temperature, standardize) configuration over every seed."""
    defaults = _library_defaults()
    alpha = defaults["student_loss_weight"] if args.alpha is None else args.alpha
    is_default = (temperature, standardize, alpha) == (
        defaults["temperature"], defaults["standardize"], defaults["student_loss_weight"])
    distill_kwargs = dict(temperature=temperature, standardize=standardize,
                          student_loss_weight=alpha, verbose=0,
                          optimizer=lambda: keras.optimizers.Adam(s.cfg["lr"]))
    rows, assistant_params = _train_kd(s, seeds, distill_kwargs, is_default, args.int8)
    if is_default and args.int8 and s.teacher_int8 is None:
        s.teacher_int8 = round(_int8_acc(s.teacher, s.x_cal, s.xt, s.yt), 4)
    per_seed = {"scratch_acc": s.scratch_acc, **rows}
    if is_default and args.int8:
        per_seed["scratch_int8_acc"] = s.scratch_int8
    per_seed = {k: [round(a, 4) for a in v] for k, v in per_seed.items() if v}
    means = {k: round(float(np.mean(v)), 4) for k, v in per_seed.items()}
    return {
        "dataset": s.name, "temperature": temperature, "standardize": standardize,
        "student_loss_weight": alpha, "default": is_default,
        "teacher_params": s.teacher.count_params(),
        "student_params": s.students[seeds[0]][0].count_params(),
        "assistant_params": assistant_params,
        "teacher_acc": round(_acc(s.teacher, s.xt, s.yt), 4),
        "teacher_int8_acc": s.teacher_int8 if is_default else None,
        "scratch_acc": means["scratch_acc"], "kd_acc": means["kd_acc"], "ta_acc": means.get("ta_acc"),
        "scratch_int8_acc": means.get("scratch_int8_acc"),
        "kd_int8_acc": means.get("kd_int8_acc"), "ta_int8_acc": means.get("ta_int8_acc"),
        "scratch_std": _std(s.scratch_acc), "kd_std": _std(rows["kd_acc"]),
        "kd_minus_scratch": round(means["kd_acc"] - means["scratch_acc"], 4),
        "ta_minus_scratch": (round(means["ta_acc"] - means["scratch_acc"], 4)
                             if "ta_acc" in means else None),
        "kd_wins_per_seed": int(sum(k > c for k, c in zip(rows["kd_acc"], s.scratch_acc))),
        "per_seed": per_seed, "seeds": seeds, "epochs": s.fit_kwargs["epochs"],
        "teacher_epochs": s.cfg["teacher_epochs"], "train_samples": int(len(s.y)),
        "test_samples": int(len(s.yt)), "wall_s": round(time.time() - s.start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="student epochs (per stage)")
    parser.add_argument("--temperatures", nargs="+", type=float, default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--standardize", nargs="+", type=int, default=[0, 1], choices=[0, 1])
    parser.add_argument("--alpha", type=float, default=None,
                        help="student_loss_weight (default: the library's)")
    parser.add_argument("--mnist-train", type=int, default=None,
                        help="train on the first N of the 8,000 MNIST training images")
    parser.add_argument("--no-int8", dest="int8", action="store_false",
                        help="skip the int8 conversions on the default lines")
    args = parser.parse_args()
    args.standardize = [bool(v) for v in args.standardize]
    for name in args.datasets:
        setup = prepare(name, args.seeds, args)
        for temperature in args.temperatures:
            for standardize in args.standardize:
                line = config_line(setup, args.seeds, temperature, standardize, args)
                print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
