import numpy as np

from tinycompress.clustering._kmeans import assign, kmeans_1d


def test_kmeans_finds_separated_clusters_exactly():
    rng = np.random.default_rng(0)
    centres = np.array([-3.0, -1.0, 0.5, 2.0])
    values = np.concatenate([c + rng.normal(scale=0.01, size=50) for c in centres])
    for init in ("kmeans++", "linear"):
        found = kmeans_1d(values, 4, init=init, seed=1)
        np.testing.assert_allclose(found, centres, atol=0.01)
        assert np.all(np.diff(found) >= 0)


def test_fewer_distinct_values_than_k_are_kept_and_padded():
    found = kmeans_1d(np.array([1.0, 1.0, 2.0]), 4, init="kmeans++", seed=0)
    np.testing.assert_array_equal(found, [1.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(kmeans_1d(np.array([]), 3, init="linear", seed=0), [0, 0, 0])


def test_assign_picks_nearest_and_kmeans_is_seeded():
    np.testing.assert_array_equal(assign(np.array([-0.9, 0.2, 0.8]), np.array([-1.0, 0.0, 1.0])), [0, 1, 2])
    v = np.random.default_rng(3).normal(size=500)
    np.testing.assert_array_equal(
        kmeans_1d(v, 8, init="kmeans++", seed=5), kmeans_1d(v, 8, init="kmeans++", seed=5)
    )
