"""Binary masks from weight magnitudes: single weights, 1xK blocks and N:M groups.

Pure numpy, no Keras: each function takes kernels and returns float32 masks of
the same shapes (1 keeps a weight, 0 prunes it). Blocks and N:M groups run
along the input axis of a kernel (axis -2: the rows of a Dense kernel, the input
channels of a convolution), the axis TFLite stores contiguously.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tinycompress.errors import PruningError

__all__ = ["GRANULARITIES", "CRITERIA", "magnitude_masks", "n_of_m_mask", "prune_count"]

#: Mask granularities of unstructured/semi-structured pruning ("channel" is structured).
GRANULARITIES = ("weight", "block", "n_of_m", "channel")
#: Scoring criteria: L1 or L2 norm of a group, or |gamma| of the BatchNorm after a channel.
CRITERIA = ("l1", "l2", "bn_gamma")


def prune_count(n_groups: int, sparsity: float) -> int:
    """Number of groups to prune for `sparsity` (rounded to nearest, never all).

    Example:
        >>> prune_count(10, 0.9), prune_count(7, 0.5), prune_count(1, 0.9)
        (9, 4, 0)
    """
    return min(int(round(n_groups * sparsity)), max(n_groups - 1, 0))


def _smallest(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean selection of the `k` smallest of 1-D `scores` (ties: lowest index first).

    A sort-based threshold: unlike introselect it stays fast when most scores tie
    at zero, as they do once a layer is pruned.
    """
    chosen = np.zeros(scores.size, dtype=bool)
    if k <= 0:
        return chosen
    threshold = np.sort(scores)[k - 1]
    chosen[scores < threshold] = True
    ties = np.flatnonzero(scores == threshold)[: k - int(chosen.sum())]
    chosen[ties] = True
    return chosen


def _to_groups(w: np.ndarray, size: int) -> np.ndarray:
    """Move axis -2 last and split it into groups of `size`: shape (..., n_groups, size).

    Missing entries of a last partial group are NaN.
    """
    if w.ndim < 2:
        raise PruningError(
            f"Block and N:M pruning need a kernel with an input axis (rank >= 2). "
            f"Received a weight of shape {w.shape}."
        )
    moved = np.moveaxis(np.abs(w.astype(np.float64)), -2, -1)
    n = moved.shape[-1]
    pad = (-n) % size
    if pad:
        moved = np.concatenate(
            [moved, np.full(moved.shape[:-1] + (pad,), np.nan)], axis=-1
        )
    return moved.reshape(moved.shape[:-1] + ((n + pad) // size, size))


def _from_groups(groups: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of `_to_groups` for a per-element array of shape (..., n_groups, size)."""
    flat = groups.reshape(groups.shape[:-2] + (-1,))[..., : shape[-2]]
    return np.moveaxis(flat, -1, -2).reshape(shape)


def _scores(w: np.ndarray, granularity: str, block_size: int, criterion: str) -> np.ndarray:
    if granularity == "weight":
        return np.abs(w)
    groups = _to_groups(w, block_size)
    if criterion == "l2":
        return np.sqrt(np.nanmean(groups**2, axis=-1))
    return np.nanmean(groups, axis=-1)


def _expand(group_mask: np.ndarray, shape: tuple[int, ...], granularity: str,
            block_size: int) -> np.ndarray:
    if granularity == "weight":
        return group_mask
    per_element = np.repeat(group_mask[..., None], block_size, axis=-1)
    return _from_groups(per_element, shape)


def magnitude_masks(
    weights: Sequence[np.ndarray],
    sparsity: float,
    *,
    granularity: str = "weight",
    block_size: int = 4,
    criterion: str = "l1",
    scope: str = "layer",
) -> list[np.ndarray]:
    """Masks that zero the `sparsity` fraction of smallest weights or blocks.

    Args:
        weights: kernels to mask.
        sparsity: fraction of weights (or blocks) to prune, in [0, 1).
        granularity: ``"weight"`` (default) or ``"block"`` (1 x `block_size`
            along the input axis, scored by the mean |w| of the block).
        block_size: block length along the input axis. Default 4.
        criterion: ``"l1"`` (default) or ``"l2"`` block norm.
        scope: ``"layer"`` (default: each kernel reaches `sparsity`) or
            ``"global"`` (one threshold over all kernels).

    Returns:
        One float32 mask per kernel, same shape, 1 = keep.

    Raises:
        PruningError: an unknown granularity or scope.

    Example:
        >>> w = np.array([[0.1, -2.0], [3.0, -0.2], [0.5, 4.0], [-1.0, 0.3]])
        >>> magnitude_masks([w], 0.5)[0].astype(int).tolist()
        [[0, 1], [1, 0], [0, 1], [1, 0]]
        >>> magnitude_masks([w], 0.5, granularity="block", block_size=2)[0].astype(int).tolist()
        [[1, 0], [1, 0], [0, 1], [0, 1]]
    """
    if granularity not in ("weight", "block"):
        raise PruningError(
            f"magnitude_masks handles granularity 'weight' or 'block'. Received: "
            f"granularity={granularity!r}; use n_of_m_mask for N:M."
        )
    if scope not in ("layer", "global"):
        raise PruningError(f"`scope` must be 'layer' or 'global'. Received: scope={scope!r}.")
    scores = [_scores(np.asarray(w), granularity, block_size, criterion) for w in weights]
    if scope == "global":
        flat = np.concatenate([s.ravel() for s in scores])
        k = prune_count(flat.size, sparsity)
        keep_flat = np.ones(flat.size, dtype=bool)
        keep_flat[_smallest(flat, k)] = False
        splits = np.cumsum([s.size for s in scores])[:-1]
        keeps = [part.reshape(s.shape) for part, s in zip(np.split(keep_flat, splits), scores)]
    else:
        keeps = []
        for s in scores:
            keep = np.ones(s.size, dtype=bool)
            keep[_smallest(s.ravel(), prune_count(s.size, sparsity))] = False
            keeps.append(keep.reshape(s.shape))
    return [
        _expand(keep, np.shape(w), granularity, block_size).astype(np.float32)
        for keep, w in zip(keeps, weights)
    ]


def n_of_m_mask(w: np.ndarray, n: int = 2, m: int = 4) -> np.ndarray:
    """Keep the `n` largest |w| in every group of `m` consecutive inputs (N:M sparsity).

    Args:
        w: a kernel of rank >= 2; groups run along axis -2.
        n: weights kept per group. Default 2.
        m: group length. Default 4.

    Returns:
        A float32 mask of `w`'s shape. A last partial group keeps up to `n`.

    Raises:
        PruningError: not ``0 < n < m``, or `w` has rank < 2.

    Example:
        >>> w = np.array([[0.1], [-3.0], [2.0], [0.5]])
        >>> n_of_m_mask(w, 2, 4).ravel().tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    if not (isinstance(n, int) and isinstance(m, int) and 0 < n < m):
        raise PruningError(f"N:M sparsity needs integers 0 < n < m. Received: n={n!r}, m={m!r}.")
    groups = _to_groups(np.asarray(w), m)
    ranked = np.argsort(-np.nan_to_num(groups, nan=-1.0), axis=-1, kind="stable")
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, ranked[..., :n], True, axis=-1)
    return _from_groups(keep, np.shape(w)).astype(np.float32)
