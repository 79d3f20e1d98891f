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

#: ``../shared/data`` beside the checkout, or the folder in ``$TINYCOMPRESS_DATA``.
DATA_DIR = os.environ.get("TINYCOMPRESS_DATA") or os.path.normpath(
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


def _read_ts(path: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Parse a sktime/UEA ``.ts`` file: (series of shape (steps, dims), labels, class names).

    Series may differ in length (JapaneseVowels); equal-length sets stack them.
    """
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
            # (dims, steps) -> (steps, dims)
            series.append(np.asarray([[float(v) for v in dim.split(",")] for dim in dims], np.float32).T)
            labels.append(label)
    return series, labels, classes


def _missing(name: str, folder: str, files: str) -> None:
    sys.stderr.write(f"{name} data not found in {folder} (expected ../shared/data/"
                     f"{os.path.basename(folder)} relative to the repository, with {files}).\n")
    raise SystemExit(2)


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
        _missing("BasicMotions", folder, "BasicMotions_TRAIN.ts and BasicMotions_TEST.ts")
    out = []
    for path in paths:
        series, names, classes = _read_ts(path)
        y = np.asarray([classes.index(n) for n in names], np.int64)
        out.append((np.stack(series), y))
    return out[0], out[1]


def load_japanese_vowels(frames: int = 29):
    """Return JapaneseVowels ``(x_train, y_train), (x_test, y_test)``: 270 / 370 utterances.

    Series (7 to 29 frames of 12 LPC cepstra) are pre-padded with zeros to
    ``frames`` (longer ones keep their last ``frames``): float32 of shape
    (N, frames, 12); labels are int64 speaker indices. Exits with status 2 and a
    message when ``../shared/data/japanesevowels`` is missing.
    """
    folder = os.path.join(DATA_DIR, "japanesevowels")
    paths = [os.path.join(folder, f"JapaneseVowels_{part}.ts") for part in ("TRAIN", "TEST")]
    if not all(os.path.exists(p) for p in paths):
        _missing("JapaneseVowels", folder, "JapaneseVowels_TRAIN.ts and JapaneseVowels_TEST.ts")
    out = []
    for path in paths:
        series, names, classes = _read_ts(path)
        x = np.zeros((len(series), frames, series[0].shape[1]), np.float32)
        for i, one in enumerate(series):
            x[i, frames - len(one[-frames:]):] = one[-frames:]
        out.append((x, np.asarray([classes.index(n) for n in names], np.int64)))
    return out[0], out[1]
