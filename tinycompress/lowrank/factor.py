"""Factor one Dense/Conv1D/Conv2D layer: truncated SVD, or Tucker-2 for a convolution.

Dense ``W (m x n)`` becomes ``Dense(r, no bias) -> Dense(n)`` with kernels
``U_r sqrt(S_r)`` and ``sqrt(S_r) V_r^T``; a ``k x k`` convolution is the
matrix ``(k k c_in) x c_out`` and becomes a ``k x k`` convolution with `r`
filters (same strides, padding, dilation; no bias) followed by a 1x1
convolution; Tucker-2 (HOSVD) makes it ``1x1 (c_in -> r_in) -> k x k
(r_in -> r_out) -> 1x1 (r_out -> c_out)``. The last layer keeps the original
bias and activation, so every new layer is a plain Keras layer that exports
to FULLY_CONNECTED / CONV_2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tinycompress.core import Replacement
from tinycompress.errors import UnsupportedLayerError
from tinycompress.lowrank.config import LowRankError

__all__ = ["FACTORABLE_TYPES", "Spectrum", "spectrum", "factor_layer", "rank_for_energy"]

L = keras.layers

#: Layer classes low-rank factorization handles (exact classes, no subclasses).
FACTORABLE_TYPES = (L.Dense, L.Conv1D, L.Conv2D)


@dataclass(frozen=True)
class Spectrum:
    """Singular values of one layer's kernel, computed once for every rank rule.

    Attributes:
        name: the layer's name.
        m: rows of the kernel matrix (``k k c_in`` or Dense inputs).
        n: columns (outputs).
        taps: kernel positions ``k k`` (1 for Dense).
        svd: singular values of the ``m x n`` matrix, descending.
        mode_in: singular values of the input-channel unfolding (Tucker-2), or
            None for Dense and 1x1 convolutions.
        mode_out: singular values of the output-channel unfolding, or None.
    """

    name: str
    m: int
    n: int
    taps: int
    svd: np.ndarray
    mode_in: np.ndarray | None
    mode_out: np.ndarray | None

    @property
    def params(self) -> int:
        """Kernel parameters of the unfactored layer."""
        return self.m * self.n

    def svd_params(self, rank: int) -> int:
        """Kernel parameters after SVD at `rank`."""
        return rank * (self.m + self.n)

    def tucker_params(self, r_in: int, r_out: int) -> int:
        """Kernel parameters after Tucker-2 at ranks ``(r_in, r_out)``."""
        c_in = self.m // self.taps
        return c_in * r_in + self.taps * r_in * r_out + r_out * self.n


def _unsupported(layer: keras.layers.Layer, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(
        f"layer {layer.name!r} ({type(layer).__name__}) cannot be factored: {why}. Leave it out "
        "of `layers=`."
    )


def _kernel(layer: keras.layers.Layer) -> np.ndarray:
    if type(layer) not in FACTORABLE_TYPES:
        raise _unsupported(layer, f"expected one of {[t.__name__ for t in FACTORABLE_TYPES]}")
    if not layer.built:
        raise _unsupported(layer, "it is not built; call the model on an input first")
    config = layer.get_config()
    if config.get("groups", 1) != 1:
        raise _unsupported(layer, f"grouped convolution (groups={config['groups']})")
    if config.get("data_format", "channels_last") != "channels_last":
        raise _unsupported(layer, "channels_first data format")
    return np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float64)


def _singular_values(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(matrix, compute_uv=False)


def spectrum(layer: keras.layers.Layer) -> Spectrum:
    """The singular values of a Dense/Conv1D/Conv2D kernel (see `Spectrum`).

    Raises:
        UnsupportedLayerError: another layer class, a grouped or
            channels_first convolution, or an unbuilt layer.

    Example:
        >>> d = keras.layers.Dense(3); d.build((None, 5))
        >>> s = spectrum(d); (s.m, s.n, len(s.svd), s.mode_in)
        (5, 3, 3, None)
    """
    w = _kernel(layer)
    taps = int(np.prod(w.shape[:-2])) if w.ndim > 2 else 1
    matrix = w.reshape(-1, w.shape[-1])
    mode_in = mode_out = None
    if taps > 1:
        mode_in = _singular_values(np.moveaxis(w, -2, 0).reshape(w.shape[-2], -1))
        mode_out = _singular_values(np.moveaxis(w, -1, 0).reshape(w.shape[-1], -1))
    return Spectrum(layer.name, matrix.shape[0], matrix.shape[1], taps,
                    _singular_values(matrix), mode_in, mode_out)


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest rank whose squared singular values keep `energy` of the total.

    Example:
        >>> rank_for_energy(np.array([3.0, 1.0, 0.1]), 0.85), rank_for_energy(np.array([3.0, 1.0]), 1.0)
        (1, 2)
    """
    power = np.asarray(singular_values, np.float64) ** 2
    total = power.sum()
    if total == 0.0:
        return 1
    kept = np.cumsum(power) / total
    return int(min(np.searchsorted(kept, energy - 1e-12) + 1, len(power)))


def _names(layer, count: int) -> list[str]:
    return [f"{layer.name}_lr{i + 1}" for i in range(count)]


def _first_conv(layer, filters: int, name: str, pointwise: bool) -> keras.layers.Layer:
    config = {**layer.get_config(), "name": name, "filters": filters, "use_bias": False,
              "activation": None, "kernel_regularizer": None, "kernel_constraint": None,
              "activity_regularizer": None, "bias_regularizer": None}
    if pointwise:
        ones = (1,) * len(config["kernel_size"])
        config.update(kernel_size=ones, strides=ones, dilation_rate=ones, padding="valid")
    return type(layer).from_config(config)


def _last(layer, name: str) -> keras.layers.Layer:
    config = {**layer.get_config(), "name": name, "kernel_constraint": None}
    if type(layer) is not L.Dense:
        ones = (1,) * len(config["kernel_size"])
        config.update(kernel_size=ones, strides=ones, dilation_rate=ones, padding="valid")
    return type(layer).from_config(config)


def _bias(layer) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(layer.bias)] if layer.use_bias else []


def _svd_replacement(layer, w: np.ndarray, rank: int) -> Replacement:
    u, s, vt = np.linalg.svd(w.reshape(-1, w.shape[-1]), full_matrices=False)
    root = np.sqrt(s[:rank])
    a = (u[:, :rank] * root).reshape(*w.shape[:-1], rank)
    b = (root[:, None] * vt[:rank]).reshape(*(1,) * (w.ndim - 2), rank, w.shape[-1])
    first_name, last_name = _names(layer, 2)
    if type(layer) is L.Dense:
        first = L.Dense(rank, use_bias=False, name=first_name, dtype=layer.dtype_policy)
    else:
        first = _first_conv(layer, rank, first_name, pointwise=False)
    dtype = keras.backend.standardize_dtype(layer.kernel.dtype)
    return Replacement((first, _last(layer, last_name)),
                       ([a.astype(dtype)], [b.astype(dtype), *_bias(layer)]))


def _tucker_replacement(layer, w: np.ndarray, r_in: int, r_out: int) -> Replacement:
    c_in, c_out = w.shape[-2], w.shape[-1]
    u_in = np.linalg.svd(np.moveaxis(w, -2, 0).reshape(c_in, -1), full_matrices=False)[0][:, :r_in]
    u_out = np.linalg.svd(np.moveaxis(w, -1, 0).reshape(c_out, -1), full_matrices=False)[0][:, :r_out]
    core = np.einsum("...io,ia,ob->...ab", w, u_in, u_out)
    ones = (1,) * (w.ndim - 2)
    names = _names(layer, 3)
    first = _first_conv(layer, r_in, names[0], pointwise=True)
    middle = _first_conv(layer, r_out, names[1], pointwise=False)
    dtype = keras.backend.standardize_dtype(layer.kernel.dtype)
    weights = ([u_in.reshape(*ones, c_in, r_in).astype(dtype)], [core.astype(dtype)],
               [u_out.T.reshape(*ones, r_out, c_out).astype(dtype), *_bias(layer)])
    return Replacement((first, middle, _last(layer, names[2])), weights)


def factor_layer(layer: keras.layers.Layer, rank: int | tuple[int, int]) -> Replacement:
    """The layers (and weights) that replace `layer` factored at `rank`.

    Args:
        layer: a built Dense, Conv1D or Conv2D (channels_last, groups=1).
        rank: an int for truncated SVD (at most ``min(m, n)``), or
            ``(r_in, r_out)`` for Tucker-2 of a convolution (at most
            ``(c_in, c_out)``). Full rank reproduces the layer up to float
            rounding; this function does not check that the rank saves bytes.

    Returns:
        A `tinycompress.core.Replacement`: new layers named
        ``<name>_lr1``, ``<name>_lr2`` (and ``_lr3``), the last with the
        original bias and activation.

    Raises:
        UnsupportedLayerError: a layer `spectrum` refuses.
        LowRankError: a rank out of range.

    Example:
        >>> d = keras.layers.Dense(4, activation="relu", name="fc"); d.build((None, 6))
        >>> r = factor_layer(d, 2)
        >>> [(l.name, l.units) for l in r.layers], [w.shape for w in r.weights[1]]
        ([('fc_lr1', 2), ('fc_lr2', 4)], [(2, 4), (4,)])
    """
    w = _kernel(layer)
    if isinstance(rank, (tuple, list)):
        if w.ndim < 3 or len(rank) != 2:
            raise LowRankError(
                f"Tucker-2 ranks (r_in, r_out) apply to convolutions only; layer {layer.name!r} "
                f"({type(layer).__name__}) received rank={rank!r}. Give an int for SVD."
            )
        r_in, r_out = int(rank[0]), int(rank[1])
        if not (1 <= r_in <= w.shape[-2] and 1 <= r_out <= w.shape[-1]):
            raise LowRankError(
                f"Tucker-2 ranks of layer {layer.name!r} must be in 1..{w.shape[-2]} and "
                f"1..{w.shape[-1]}. Received: rank={rank!r}."
            )
        return _tucker_replacement(layer, w, r_in, r_out)
    full = min(int(np.prod(w.shape[:-1])), w.shape[-1])
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= full:
        raise LowRankError(f"the SVD rank of layer {layer.name!r} must be in 1..{full}. Received: "
                           f"rank={rank!r}.")
    return _svd_replacement(layer, w, rank)
