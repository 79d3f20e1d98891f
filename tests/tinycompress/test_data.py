"""Representative data: accepted forms and the errors that name what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from tinycompress.data import RepresentativeDataWarning, load_calibration, prepare_samples
from tinycompress.errors import DataError

SHAPES = [(None, 3, 2)]


def test_array_dataset_and_generator_give_the_same_samples():
    import tensorflow as tf

    x = np.random.default_rng(0).random((120, 3, 2)).astype("float32")
    from_array = prepare_samples(x, SHAPES)
    from_ds = prepare_samples(tf.data.Dataset.from_tensor_slices((x, np.zeros(120))).batch(7), SHAPES)
    from_gen = prepare_samples(lambda: (x[i] for i in range(120)), SHAPES)
    for other in (from_ds, from_gen):
        assert len(other) == 120
        assert all(np.array_equal(a[0], b[0]) for a, b in zip(from_array, other))
    assert from_array[5][0].shape == (1, 3, 2)


@pytest.mark.parametrize(
    "data, match",
    [
        (np.zeros((0, 3, 2), "float32"), "empty"),
        (np.zeros((120, 3, 3), "float32"), r"shape \(3, 3\).*expects \(3, 2\)"),
        (np.array([["a", "b"]] * 120).reshape(120, 1, 2), "dtype"),
    ],
)
def test_bad_data_is_named(data, match):
    with pytest.raises(DataError, match=match):
        prepare_samples(data, SHAPES)


def test_nan_and_inf_name_the_sample():
    x = np.zeros((120, 3, 2), "float32")
    x[17, 1, 1] = np.inf
    with pytest.raises(DataError, match="sample 17 .*NaN or Inf"):
        prepare_samples(x, SHAPES)


def test_few_samples_warn():
    with pytest.warns(RepresentativeDataWarning, match="only 10"):
        prepare_samples(np.zeros((10, 3, 2), "float32"), SHAPES)


def test_calibration_files_never_unpickle(tmp_path):
    x = np.random.default_rng(0).random((5, 3)).astype("float32")
    np.savez(tmp_path / "one.npz", samples=x)
    np.savez(tmp_path / "keyed.npz", x=x, y=np.arange(5))
    np.save(tmp_path / "plain.npy", x)
    for name in ("one.npz", "keyed.npz", "plain.npy"):
        assert np.array_equal(load_calibration(tmp_path / name), x)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="unpickling"):
        load_calibration(tmp_path / "objects.npy")
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match="under the key 'x'"):
        load_calibration(tmp_path / "two.npz")
    with pytest.raises(DataError, match="does not exist"):
        load_calibration(tmp_path / "missing.npz")
