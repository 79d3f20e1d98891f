"""Mask computation: exact counts, block and N:M structure, layer vs global scope."""

import numpy as np
import pytest

from tinycompress.pruning import PruningError, magnitude_masks, n_of_m_mask


def test_weight_masks_prune_exactly_the_smallest_magnitudes():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(16, 8))
    mask = magnitude_masks([w], 0.75)[0]
    assert mask.shape == w.shape and mask.dtype == np.float32
    assert int((mask == 0).sum()) == 96
    assert np.abs(w[mask == 0]).max() <= np.abs(w[mask == 1]).min()


def test_block_masks_are_constant_over_1x4_blocks_along_input_axis():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3, 10, 6))  # 10 inputs: blocks of 4, 4 and a partial 2
    mask = magnitude_masks([w], 0.5, granularity="block", block_size=4)[0]
    for start, stop in [(0, 4), (4, 8), (8, 10)]:
        block = mask[:, :, start:stop, :]
        assert np.all(block.min(axis=2) == block.max(axis=2))
    assert int((mask[:, :, ::4, :] == 0).sum()) == int(round(0.5 * 3 * 3 * 3 * 6))


def test_n_of_m_keeps_two_largest_of_every_four():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 5))
    mask = n_of_m_mask(w, 2, 4)
    groups = mask.reshape(2, 4, 5)
    assert np.all(groups.sum(axis=1) == 2)
    absw = np.abs(w).reshape(2, 4, 5)
    kept_min = np.where(groups == 1, absw, np.inf).min(axis=1)
    pruned_max = np.where(groups == 0, absw, -np.inf).max(axis=1)
    assert np.all(kept_min >= pruned_max)


def test_global_scope_uses_one_threshold_across_kernels():
    small = np.full((10, 10), 0.01) + np.arange(100).reshape(10, 10) * 1e-5
    large = np.full((10, 10), 1.0) + np.arange(100).reshape(10, 10) * 1e-5
    per_layer = magnitude_masks([small, large], 0.5, scope="layer")
    global_ = magnitude_masks([small, large], 0.5, scope="global")
    assert [int((m == 0).sum()) for m in per_layer] == [50, 50]
    assert [int((m == 0).sum()) for m in global_] == [100, 0]


def test_bad_settings_raise():
    with pytest.raises(PruningError, match="scope"):
        magnitude_masks([np.ones((4, 4))], 0.5, scope="model")
    with pytest.raises(PruningError, match="0 < n < m"):
        n_of_m_mask(np.ones((4, 4)), 4, 4)
    with pytest.raises(PruningError, match="rank"):
        magnitude_masks([np.ones(8)], 0.5, granularity="block")
