"""Digit images: MNIST when reachable, scikit-learn digits offline, and which one ran."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tinycompress import DataError, load_digit_images


def _fake_mnist():
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    return (x_train, rng.integers(0, 10, 50, dtype=np.uint8)), (x_test, np.arange(20) % 10)


def _offline(*_args, **_kwargs):
    raise Exception("URL fetch failure on https://example.invalid/mnist.npz: Name or service not known")


def test_digits_are_offline_float_images_with_a_held_out_split():
    data = load_digit_images("digits")
    assert data.source == "digits" and data.input_shape == (8, 8, 1)
    assert (len(data.x_train), len(data.x_test)) == (1438, 359)
    assert data.x_train.dtype == np.float32 and 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert set(np.unique(data.y_train)) == set(range(10))
    assert "scikit-learn" in data.description and "1438 train / 359 test" in data.description


def test_limits_take_a_seeded_subset_of_the_same_split():
    full = load_digit_images("digits")
    small = load_digit_images("digits", max_train=100, max_test=30)
    again = load_digit_images("digits", max_train=100, max_test=30)
    assert (len(small.x_train), len(small.x_test)) == (100, 30)
    np.testing.assert_array_equal(small.x_train, again.x_train)
    # Every kept training image comes from the full training split, none from the test split.
    full_rows = {row.tobytes() for row in full.x_train}
    assert all(row.tobytes() in full_rows for row in small.x_train)


def test_auto_uses_mnist_when_it_downloads(monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _fake_mnist)
    data = load_digit_images("auto")
    assert data.source == "mnist" and data.input_shape == (28, 28, 1)
    assert data.x_train.max() <= 1.0 and data.y_test.dtype == np.int64
    assert data.description.startswith("Keras MNIST")


def test_auto_falls_back_to_digits_offline_and_says_so(monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _offline)
    data = load_digit_images("auto", max_train=10)
    assert data.source == "digits" and len(data.x_train) == 10
    assert "MNIST was not reachable" in data.description


def test_mnist_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _offline)
    with pytest.raises(DataError, match="source='digits'"):
        load_digit_images("mnist")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"source": "cifar"}, "auto, mnist, digits"), ({"max_train": 0}, "max_train must be a positive")],
)
def test_bad_arguments_name_the_fix(kwargs, match):
    with pytest.raises(DataError, match=match):
        load_digit_images(**kwargs)
