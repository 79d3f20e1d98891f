"""One-dimensional k-means for weight sharing (private helpers, numpy only)."""

from __future__ import annotations

import numpy as np

#: Centroid initializations `kmeans_1d` accepts.
INITS = ("kmeans++", "linear")


def _init(values: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    if init == "linear":
        return np.linspace(values.min(), values.max(), k)
    centroids = [values[rng.integers(values.size)]]
    for _ in range(1, k):
        d2 = np.min((values[:, None] - np.asarray(centroids)[None, :]) ** 2, axis=1)
        total = d2.sum()
        if total <= 0:
            break
        centroids.append(values[rng.choice(values.size, p=d2 / total)])
    return np.asarray(centroids, dtype=np.float64)


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid for each value (ties go to the lower index)."""
    return np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1).astype(np.int32)


def kmeans_1d(
    values: np.ndarray, k: int, *, init: str, seed: int, iterations: int = 30
) -> np.ndarray:
    """Cluster scalars into at most ``k`` sorted centroids (Lloyd's algorithm).

    Returns exactly ``k`` centroids; when there are fewer distinct values than
    ``k`` the spare entries repeat the largest centroid (they get no members).
    An empty ``values`` gives ``k`` zeros.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return np.zeros(k)
    distinct = np.unique(values)
    if distinct.size <= k:
        return np.concatenate([distinct, np.full(k - distinct.size, distinct[-1])])
    rng = np.random.default_rng(seed)
    centroids = np.sort(_init(values, k, init, rng))
    for _ in range(iterations):
        idx = assign(values, centroids)
        sums = np.bincount(idx, weights=values, minlength=centroids.size)
        counts = np.bincount(idx, minlength=centroids.size)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = np.sort(updated)
    if centroids.size < k:
        centroids = np.concatenate([centroids, np.full(k - centroids.size, centroids[-1])])
    return centroids
