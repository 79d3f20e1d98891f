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


# ---- hostile and damaged calibration files (issue 13) ------------------------------------

def _npy_bytes(shape, dtype="<f4", body=b"") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


def _zip(path, name: str, data: bytes) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, data)


def test_object_arrays_inside_npz_are_data_errors(tmp_path):
    np.savez(tmp_path / "pickle.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"array 'x' of calibration file .*Python objects"):
        load_calibration(tmp_path / "pickle.npz")


@pytest.mark.parametrize("case, match", [
    ("scalar_npy", "a 0-d array"),
    ("scalar_npz", "a 0-d array"),
    ("claims_10gb", r"declares shape \(2500000000,\) of float32 \(10000000000 bytes\) but holds only"),
    ("claims_40tb", "holds only 64 bytes"),
    ("truncated", r"declares shape \(100, 8\).*holds only 1000 bytes"),
    ("truncated_npz", r"array 'x' .*holds only"),
    ("garbage", "neither a .npy array nor a .npz"),
    ("bad_header", "not a readable .npy array"),
    ("bad_zip", "not a readable .npz archive"),
])
def test_damaged_calibration_files_are_refused_before_allocation(tmp_path, case, match):
    import tracemalloc

    path = tmp_path / ("c.npy" if "npz" not in case and case != "bad_zip" else "c.npz")
    if case == "scalar_npy":
        np.save(path, np.float32(3))
    elif case == "scalar_npz":
        np.savez(path, x=np.float32(3))
    elif case == "claims_10gb":
        path.write_bytes(_npy_bytes((2_500_000_000,), body=b"\0" * 64))
    elif case == "claims_40tb":
        path.write_bytes(_npy_bytes((10_000_000, 1_000_000), body=b"\0" * 64))
    elif case == "truncated":
        path.write_bytes(_npy_bytes((100, 8), body=b"\0" * 1000))
    elif case == "truncated_npz":
        _zip(path, "x.npy", _npy_bytes((100, 8), body=b"\0" * 1000))
    elif case == "garbage":
        path.write_bytes(b"hello world")
    elif case == "bad_header":
        path.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': oops}\n")
    else:
        path.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=match):
            load_calibration(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_data_of_the_wrong_rank_names_both_shapes():
    # (200, 128, 3) for a (None, 10) model was read as 25,600 samples of shape (3,).
    x = np.zeros((200, 128, 3), "float32")
    with pytest.raises(DataError, match=r"shape \(200, 128, 3\) \(rank 3\).*\(n, 10\) \(rank 2\)"):
        prepare_samples(x, [(None, 10)])
    with pytest.raises(DataError, match=r"input 1 has shape \(120, 4\)"):
        prepare_samples([np.zeros((120, 3, 2), "float32"), np.zeros((120, 4), "float32")],
                        [(None, 3, 2), (None, 4, 1)])


def test_arrays_above_the_size_limit_are_refused_before_allocation(tmp_path, monkeypatch):
    import tinycompress.data as data

    np.save(tmp_path / "x.npy", np.zeros((100, 8), "float32"))
    monkeypatch.setattr(data, "MAX_CALIBRATION_BYTES", 1000)
    with pytest.raises(DataError, match="3200 bytes, more than the 1000 accepted"):
        load_calibration(tmp_path / "x.npy")
