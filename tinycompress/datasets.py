"""Handwritten-digit images for the demo and the notebooks, online or offline.

`load_digit_images` returns Keras's MNIST (28x28, downloaded once) when the
network allows it and scikit-learn's bundled 8x8 digits (no download)
otherwise, and says which one it returned, so the same notebook runs on Colab
and in an offline CI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompress.errors import DataError

__all__ = ["SOURCES", "DigitImages", "load_digits", "load_mnist", "load_digit_images"]

#: Accepted values of ``source`` in `load_digit_images`.
SOURCES = ("auto", "mnist", "digits")


@dataclass(frozen=True)
class DigitImages:
    """A train/test split of digit images.

    Attributes:
        x_train: float32 images in [0, 1], shape (n, height, width, 1).
        y_train: int64 labels 0..9.
        x_test: float32 images in [0, 1], same height and width.
        y_test: int64 labels 0..9.
        source: ``"mnist"`` or ``"digits"``: the data set that was loaded.
        description: one sentence naming the data set, its image size and
            the number of train/test images returned.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    description: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one image, e.g. ``(28, 28, 1)``."""
        return tuple(self.x_train.shape[1:])


def load_digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits as float images in [0, 1], split 80/20.

    Args:
        seed: shuffling seed. Default 0.

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images have shape (8, 8, 1).

    Example:
        >>> x_train, y_train, x_test, y_test = load_digits()
        >>> x_train.shape, x_test.shape
        ((1438, 8, 8, 1), (359, 8, 8, 1))
    """
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n = int(round(0.8 * len(x)))
    return x[:n], y[:n], x[n:], y[n:]


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keras's MNIST as float images in [0, 1] (downloaded on first use).

    Returns:
        ``(x_train, y_train, x_test, y_test)``; images have shape (28, 28, 1).

    Raises:
        DataError: MNIST is neither cached nor downloadable.
    """
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:  # keras wraps URL, socket and HTTP failures in plain Exception
        raise DataError(
            f"keras.datasets.mnist could not be downloaded ({e}); connect to the internet "
            "or use source='digits' (scikit-learn's bundled 8x8 digits, no download)."
        ) from e

    def images(x):
        return (x.astype(np.float32) / 255.0)[..., None]

    return images(x_train), y_train.astype(np.int64), images(x_test), y_test.astype(np.int64)


def _take(x: np.ndarray, y: np.ndarray, limit: int | None, rng: np.random.Generator):
    if limit is None or limit >= len(x):
        return x, y
    keep = np.sort(rng.permutation(len(x))[:limit])
    return x[keep], y[keep]


def load_digit_images(
    source: str = "auto",
    *,
    max_train: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> DigitImages:
    """Digit images for training and testing: MNIST when reachable, else sklearn digits.

    Args:
        source: ``"mnist"`` (Keras download, 28x28), ``"digits"``
            (scikit-learn's bundled 1,797 8x8 images, offline) or ``"auto"``
            (MNIST, falling back to digits when the download fails). Default
            "auto".
        max_train: keep at most this many training images (a seeded random
            subset). Default None: all.
        max_test: keep at most this many test images. Default None: all.
        seed: seed for the digits split and the subsets. Default 0.

    Returns:
        A `DigitImages`; ``source`` tells which data set was loaded.

    Raises:
        DataError: ``source`` is unknown, limits are not positive, or
            ``source="mnist"`` and MNIST cannot be downloaded.

    Example:
        >>> data = load_digit_images("digits", max_train=500)
        >>> data.source, data.input_shape, len(data.x_train), len(data.x_test)
        ('digits', (8, 8, 1), 500, 359)
    """
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}.")
    for label, limit in (("max_train", max_train), ("max_test", max_test)):
        if limit is not None and limit < 1:
            raise DataError(f"{label} must be a positive number of images or None, not {limit}.")
    fallback = ""
    if source == "digits":
        arrays, name = load_digits(seed), "digits"
    else:
        try:
            arrays, name = load_mnist(), "mnist"
        except DataError as e:
            if source == "mnist":
                raise
            arrays, name = load_digits(seed), "digits"
            fallback = f" (MNIST was not reachable: {e.__cause__})"
    rng = np.random.default_rng(seed)
    x_train, y_train = _take(arrays[0], arrays[1], max_train, rng)
    x_test, y_test = _take(arrays[2], arrays[3], max_test, rng)
    title = {
        "mnist": "Keras MNIST (28x28 handwritten digits)",
        "digits": "scikit-learn's bundled digits (8x8 handwritten digits, offline)",
    }[name]
    description = f"{title}: {len(x_train)} train / {len(x_test)} test images{fallback}"
    return DigitImages(x_train, y_train, x_test, y_test, name, description)
