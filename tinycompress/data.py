"""Representative (calibration) data for post-training quantization.

Accepts numpy arrays, `tf.data.Dataset`s and generators, checks every sample
against the model's input signature, and yields batches of one sample as the
TFLite converter expects.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tinycompress.errors import DataError

__all__ = ["RepresentativeDataWarning", "MIN_SAMPLES", "load_calibration", "prepare_samples"]

#: Below this many samples the converter's ranges become unreliable.
MIN_SAMPLES = 100


class RepresentativeDataWarning(UserWarning):
    """Representative data is usable but likely to give poor int8 ranges."""


def load_calibration(path: str | Path) -> np.ndarray:
    """Read calibration samples from a `.npz` or `.npy` file (no pickles).

    Args:
        path: a `.npy` array, or a `.npz` holding a single array or one under
            the key ``x``.

    Returns:
        The samples, first axis = samples.

    Raises:
        DataError: the file is missing, holds pickled objects, or has no
            single/``x`` array.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"calibration file {str(path)!r} does not exist; pass a .npz or .npy file.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(
            f"calibration file {str(path)!r} cannot be read without unpickling objects "
            f"({e}); save plain numeric arrays with numpy.savez."
        ) from e
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        if "x" in loaded.files:
            return loaded["x"]
        if len(loaded.files) == 1:
            return loaded[loaded.files[0]]
        raise DataError(
            f"calibration file {str(path)!r} holds arrays {loaded.files}; store the samples "
            "as its only array or under the key 'x'."
        )


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
