"""The arena we measure is the arena TFLM needs, and the emitted size is safe."""

from __future__ import annotations

import pytest

import tflite_export
from tflite_export.arena import ARENA_MARGIN_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "residual", "dwsep", "mlp", "conv1d"])
def test_tflm_runs_with_the_measured_size_and_fails_below_it(name, converted):
    model = converted(name)
    a = tflite_export.measure_arena(model)
    assert a.host_bytes >= a.head_bytes + a.tail_bytes - 16
    assert a.emitted_bytes % 16 == 0
    assert a.emitted_bytes >= a.host_bytes + a.scratch_bound_bytes + ARENA_MARGIN_BYTES
    assert tflite_export.arena_fits(
        model, [a.emitted_bytes, a.host_bytes, a.host_bytes - 1, int(a.host_bytes * 0.75)]
    ) == [True, True, False, False]


def test_scratch_bound_counts_the_largest_convolution(converted):
    # conv_b in the cnn fixture: 3x3 kernel over 8 input channels.
    assert tflite_export.kernel_scratch_bound(converted("cnn")) == 4 * 8 * 3 * 3
