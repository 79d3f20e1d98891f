"""Representative (calibration) data for post-training quantization.

Accepts numpy arrays, `tf.data.Dataset`s and generators, checks every sample
against the model's input signature, and yields batches of one sample as the
TFLite converter expects.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tinycompress.errors import DataError

__all__ = ["RepresentativeDataWarning", "MIN_SAMPLES", "MAX_CALIBRATION_BYTES",
           "load_calibration", "load_labelled", "prepare_samples"]

#: Below this many samples the converter's ranges become unreliable.
MIN_SAMPLES = 100

#: Largest calibration array `load_calibration` reads.
MAX_CALIBRATION_BYTES = 4 * 2**30


class RepresentativeDataWarning(UserWarning):
    """Representative data is usable but likely to give poor int8 ranges."""


def _npy_header(f, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a `.npy` header; the stream is left at the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise DataError(f"{where} is not a readable .npy array ({e}); save plain numeric "
                        "arrays with numpy.save or numpy.savez.") from e
    return tuple(int(d) for d in shape), np.dtype(dtype)


def _check_header(shape: tuple[int, ...], dtype: np.dtype, available: int, where: str) -> None:
    """Refuse an array before it is allocated: pickles, scalars, sizes the data cannot back."""
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects (dtype {dtype}), which cannot be read "
                        "without unpickling; save plain numeric arrays with numpy.savez.")
    if not shape:
        raise DataError(f"{where} holds a single value (a 0-d array of {dtype}); expected "
                        "samples on the first axis, e.g. shape (n, features).")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > available:
        raise DataError(f"{where} declares shape {shape} of {dtype} ({nbytes} bytes) but holds "
                        f"only {available} bytes of data: the file is truncated or damaged.")
    if nbytes > MAX_CALIBRATION_BYTES:
        raise DataError(f"{where} declares shape {shape} of {dtype}: {nbytes} bytes, more than "
                        f"the {MAX_CALIBRATION_BYTES} accepted (a few hundred samples are "
                        "enough; tinycompress.data.MAX_CALIBRATION_BYTES sets the limit).")


def _load_npy(path: Path) -> np.ndarray:
    where = f"calibration file {str(path)!r}"
    with open(path, "rb") as f:
        shape, dtype = _npy_header(f, where)
        _check_header(shape, dtype, path.stat().st_size - f.tell(), where)
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)


def _load_npz(path: Path, keys: tuple[str, ...] | None = None) -> list[np.ndarray]:
    """The array of a calibration archive (``keys`` None: the one under 'x' or the only
    one), or the arrays under ``keys``, each header checked before its data is read."""
    what = "calibration file" if keys is None else "data file"
    try:
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
            if keys is None:
                if "x" in names:
                    keys = ("x",)
                elif len(names) == 1:
                    keys = (names[0],)
                else:
                    raise DataError(
                        f"calibration file {str(path)!r} holds arrays {names}; store the samples "
                        "as its only array or under the key 'x'."
                    )
            missing = [k for k in keys if k not in names]
            if missing:
                raise DataError(f"data file {str(path)!r} holds arrays {names}, not {missing}; save "
                                f"it with numpy.savez(path, {'=..., '.join(keys)}=...).")
            arrays = []
            for key in keys:
                where = f"array {key!r} of {what} {str(path)!r}"
                info = z.getinfo(f"{key}.npy")
                with z.open(info) as f:
                    shape, dtype = _npy_header(f, where)
                    _check_header(shape, dtype, info.file_size - f.tell(), where)
                with z.open(info) as f:
                    arrays.append(np.lib.format.read_array(f, allow_pickle=False))
            return arrays
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError,
            ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{what} {str(path)!r} is not a readable .npz archive "
                        f"({type(e).__name__}: {e}); save it with numpy.savez.") from e


def load_labelled(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read labelled samples ``(x, y)`` from a `.npz` file with arrays ``x`` and ``y``.

    The same checks as `load_calibration` apply to both arrays.

    Args:
        path: a `.npz` archive (``numpy.savez(path, x=samples, y=labels)``).

    Returns:
        ``(x, y)``.

    Raises:
        DataError: the file is missing or not such an archive, or ``x`` and
            ``y`` differ in length.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "d.npz"); np.savez(p, x=np.zeros((3, 4)), y=np.arange(3))
        >>> [a.shape for a in load_labelled(p)]
        [(3, 4), (3,)]
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; pass a .npz with arrays x and y.")
    x, y = _load_npz(path, ("x", "y"))
    if len(x) != len(y):
        raise DataError(f"data file {str(path)!r}: x holds {len(x)} samples but y {len(y)} labels.")
    return x, y


def load_calibration(path: str | Path) -> np.ndarray:
    """Read calibration samples from a `.npz` or `.npy` file (no pickles).

    The array header is checked before any data is allocated: Python objects,
    0-d arrays, sizes above `MAX_CALIBRATION_BYTES` and headers that declare
    more data than the file holds are refused.

    Args:
        path: a `.npy` array, or a `.npz` holding a single array or one under
            the key ``x``.

    Returns:
        The samples, first axis = samples.

    Raises:
        DataError: the file is missing, damaged or truncated, holds pickled
            objects or a 0-d array, is too large, or has no single/``x`` array.

    Example:
        >>> import numpy as np, tempfile, os
        >>> d = tempfile.mkdtemp(); np.save(os.path.join(d, "x.npy"), np.zeros((3, 4)))
        >>> load_calibration(os.path.join(d, "x.npy")).shape
        (3, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file {str(path)!r} does not exist; pass a .npz or .npy file.")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"PK"):
        return _load_npz(path)[0]
    if magic == b"\x93NUMPY":
        return _load_npy(path)
    raise DataError(f"calibration file {str(path)!r} is neither a .npy array nor a .npz "
                    "archive; save the samples with numpy.save or numpy.savez.")


def _to_arrays(item, n_inputs: int) -> list[np.ndarray]:
    if isinstance(item, dict):
        item = list(item.values())
    if isinstance(item, (list, tuple)):
        if n_inputs == 1 and len(item) == 2 and not isinstance(item[0], (list, tuple)):
            # (x, y) pairs from a labelled dataset: keep x.
            item = [item[0]]
        arrays = [np.asarray(a) for a in item]
    else:
        arrays = [np.asarray(item)]
    return arrays


def _iter_items(data) -> Iterator:
    if isinstance(data, np.ndarray):
        yield from (data[i] for i in range(len(data)))
        return
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], np.ndarray) and all(
        isinstance(a, np.ndarray) and len(a) == len(data[0]) for a in data
    ) and len(data) > 1 and data[0].ndim > 1:
        # One array per model input.
        for i in range(len(data[0])):
            yield [a[i] for a in data]
        return
    if callable(data) and not hasattr(data, "__iter__"):
        data = data()
    if hasattr(data, "as_numpy_iterator"):
        data = data.as_numpy_iterator()
    yield from data


def _check_array_ranks(data, input_shapes, batched: bool | None) -> None:
    """Arrays with samples first must have the model input's rank: otherwise the
    sample axis would silently move (data (200, 128, 3) for input (None, 10))."""
    if batched:
        return
    if isinstance(data, np.ndarray) and len(input_shapes) == 1:
        arrays = [data]
    elif isinstance(data, (list, tuple)) and len(data) == len(input_shapes) > 1 and all(
            isinstance(a, np.ndarray) for a in data):
        arrays = list(data)
    else:
        return
    for i, (a, shape) in enumerate(zip(arrays, input_shapes)):
        want = tuple(shape[1:])
        if a.ndim != len(shape):
            expected = ", ".join(["n"] + ["?" if w is None else str(w) for w in want])
            raise DataError(
                f"representative data for input {i} has shape {a.shape} (rank {a.ndim}), but "
                f"the model takes arrays of shape ({expected}) (rank {len(shape)}) with the "
                "samples on the first axis; reshape the data to the model's input shape."
            )


def prepare_samples(
    data: np.ndarray | Iterable | Callable[[], Iterable],
    input_shapes: Sequence[Sequence[int | None]],
    *,
    batched: bool | None = None,
) -> list[list[np.ndarray]]:
    """Validate representative data and split it into single samples.

    Args:
        data: a float array (samples first), a list of arrays (one per model
            input), a `tf.data.Dataset` (batched or not; ``(x, y)`` pairs are
            accepted and ``y`` ignored), or a generator / callable returning an
            iterable of samples.
        input_shapes: the model's input shapes including the batch axis.
        batched: whether items from a dataset/generator carry a batch axis.
            Default None: decided by comparing ranks with ``input_shapes``.

    Returns:
        Samples, each a list with one float32 array of shape ``(1, ...)`` per
        model input.

    Raises:
        DataError: the data is empty, non-numeric, contains NaN/Inf, or its
            shape does not match the model input (the message says which).

    Example:
        >>> import numpy as np
        >>> s = prepare_samples(np.zeros((120, 4), "float32"), [(None, 4)])
        >>> len(s), s[0][0].shape
        (120, (1, 4))
    """
    n_inputs = len(input_shapes)
    _check_array_ranks(data, input_shapes, batched)
    samples: list[list[np.ndarray]] = []
    for k, item in enumerate(_iter_items(data)):
        arrays = _to_arrays(item, n_inputs)
        if len(arrays) != n_inputs:
            raise DataError(
                f"representative item {k} has {len(arrays)} array(s) but the model has "
                f"{n_inputs} input(s); yield one array per input."
            )
        per_input: list[list[np.ndarray]] = []
        for i, (a, shape) in enumerate(zip(arrays, input_shapes)):
            if a.dtype.kind not in "fiub":
                raise DataError(
                    f"representative data for input {i} has dtype {a.dtype}; expected "
                    "numbers (float32 samples as the float model takes them)."
                )
            has_batch = batched if batched is not None else a.ndim == len(shape)
            rows = a if has_batch else a[None]
            per_input.append([r[None].astype(np.float32) for r in rows])
        for parts in zip(*per_input):
            samples.append(list(parts))
    if not samples:
        raise DataError(
            "representative data is empty; pass at least one sample "
            f"(about {MIN_SAMPLES} or more for good int8 ranges)."
        )
    for i, shape in enumerate(input_shapes):
        want = tuple(shape[1:])
        for k, s in enumerate(samples):
            got = s[i].shape[1:]
            if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
                raise DataError(
                    f"representative sample {k} for input {i} has shape {got}, but the model "
                    f"expects {want}; reshape the data to the model's input shape."
                )
            if not np.all(np.isfinite(s[i])):
                raise DataError(
                    f"representative sample {k} for input {i} contains NaN or Inf; clean "
                    "the data (the converter would derive meaningless ranges)."
                )
    if len(samples) < MIN_SAMPLES:
        warnings.warn(
            f"only {len(samples)} representative samples; int8 ranges from fewer than "
            f"{MIN_SAMPLES} samples often cost accuracy.",
            RepresentativeDataWarning,
            stacklevel=2,
        )
    return samples
