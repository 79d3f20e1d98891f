"""Benchmark data: MNIST from ``../shared/data/mnist-t10k`` (relative to the repo).

Only the 10k MNIST test set is shipped there; benchmarks train on its first
8,000 images and evaluate on the last 2,000.
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
