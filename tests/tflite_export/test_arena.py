"""The arena we measure is the arena TFLM needs, and the emitted size is safe."""

from __future__ import annotations

import pytest

import tflite_export
from hostile_models import relabelled, single_op_model, with_input_shape
from tflite_export.arena import ARENA_MARGIN_BYTES
from tflite_export.errors import ModelFormatError, UnsupportedModelError


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


def test_scratch_bound_covers_the_mve_depthwise_channel_block(converted):
    # dwsep: a 3x3 depthwise convolution; CMSIS-NN's MVE kernel gathers four columns of a
    # 124-channel block per tap whatever the channel count (the AN547 firmware needs it).
    assert tflite_export.kernel_scratch_bound(converted("dwsep")) >= 4 * 124 * 3 * 3


def test_inputs_larger_than_the_host_arena_are_refused_before_allocation():
    import tracemalloc

    big = single_op_model("RELU", [1, 2**28])  # passes validate; 256 MiB per sample
    tflite_export.validate(big)
    tracemalloc.start()
    try:
        with pytest.raises(UnsupportedModelError, match="arena_size="):
            tflite_export.measure_arena(big)
        with pytest.raises(UnsupportedModelError, match="host arena"):
            tflite_export.arena_fits(big, [1024])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


def test_scratch_bound_and_measurement_refuse_models_that_break_kernels():
    tiny = tflite_export.testing.tiny_model()
    for bad in (relabelled(tiny, "FULLY_CONNECTED", "CONV_2D"), with_input_shape(tiny, [1] * 69 + [4])):
        for fn in (tflite_export.kernel_scratch_bound, tflite_export.measure_arena):
            with pytest.raises(ModelFormatError):
                fn(bad)
        with pytest.raises(ModelFormatError):
            tflite_export.inspect(bad, measure=False)
