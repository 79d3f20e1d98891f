"""Benchmark data from ``../shared/data`` (relative to the repo).

- MNIST (``mnist-t10k``): only the 10k test set is shipped there; benchmarks
  train on its first 8,000 images and evaluate on the last 2,000.
- BasicMotions (``basicmotions``): smartwatch activity recognition, 40 train and
  40 test series of 100 steps x 6 channels, 4 classes.
"""

from __future__ import annotations

import gzip
import os
import sys

import numpy as np

DATA_DIR = os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
)


def _idx(path: str, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def load_mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return ``(x_train, y_train), (x_test, y_test)``: 8,000 / 2,000 samples.

    Images are float32 in [0, 1] with shape (N, 28, 28, 1); labels are int64.
    Exits with status 2 and a message when the data folder is missing.
    """
    folder = os.path.join(DATA_DIR, "mnist-t10k")
    images = os.path.join(folder, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(folder, "t10k-labels-idx1-ubyte.gz")
    if not (os.path.exists(images) and os.path.exists(labels)):
        sys.stderr.write(
            f"MNIST data not found in {folder} (expected ../shared/data/mnist-t10k relative "
            "to the repository, with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz).\n"
        )
        raise SystemExit(2)
    x = _idx(images, 16).reshape(-1, 28, 28, 1).astype(np.float32) / 255.0
    y = _idx(labels, 8).astype(np.int64)
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])


def _read_ts(path: str) -> tuple[np.ndarray, list[str], list[str]]:
    """Parse an equal-length sktime/UEA ``.ts`` file: (series, labels, class names)."""
    classes: list[str] = []
    series, labels = [], []
    in_data = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                lower = line.lower()
                if lower.startswith("@classlabel"):
                    classes = line.split()[2:]
                elif lower.startswith("@data"):
                    in_data = True
                continue
            *dims, label = line.split(":")
            series.append([[float(v) for v in dim.split(",")] for dim in dims])
            labels.append(label)
    # (N, dims, steps) -> (N, steps, dims)
    return np.asarray(series, np.float32).transpose(0, 2, 1), labels, classes


def load_basicmotions() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Return BasicMotions ``(x_train, y_train), (x_test, y_test)``: 40 / 40 series.

    Series are float32 with shape (N, 100, 6) (3-axis accelerometer then 3-axis
    gyroscope, 10 Hz); labels are int64 indices into the file's class list
    (Standing, Running, Walking, Badminton). Exits with status 2 and a message
    when ``../shared/data/basicmotions`` is missing.
    """
    folder = os.path.join(DATA_DIR, "basicmotions")
    paths = [os.path.join(folder, f"BasicMotions_{part}.ts") for part in ("TRAIN", "TEST")]
    if not all(os.path.exists(p) for p in paths):
        sys.stderr.write(
            f"BasicMotions data not found in {folder} (expected ../shared/data/basicmotions "
            "relative to the repository, with BasicMotions_TRAIN.ts and BasicMotions_TEST.ts).\n"
        )
        raise SystemExit(2)
    out = []
    for path in paths:
        x, names, classes = _read_ts(path)
        y = np.asarray([classes.index(n) for n in names], np.int64)
        out.append((x, y))
    return out[0], out[1]
