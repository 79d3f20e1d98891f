"""`tflite_export.inspect` on real int8 models: MACs against hand computations,
weight bytes against the Keras weights, sparsity against the kernel, I/O
quantization against LiteRT's view, arena against TFLM."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from tflite_export import _flatbuffer as fb
from tflite_export import _ops_cost, inspect, measure_arena
from tflite_export.errors import ModelFormatError


def repack(m) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def by_op(report) -> dict:
    return {layer.op: layer for layer in report.layers}


def test_conv_model_macs_by_hand(conv_model):
    report = inspect(conv_model[1], measure=False)
    layers = by_op(report)
    # conv 3x3, 3 -> 4 channels, 8x8 valid -> 6x6: 6*6*4 outputs * 3*3*3 taps
    assert layers["CONV_2D"].macs == 6 * 6 * 4 * 3 * 3 * 3
    # depthwise 3x3 same on 6x6x4: 6*6*4 outputs * 9 taps
    assert layers["DEPTHWISE_CONV_2D"].macs == 6 * 6 * 4 * 9
    # max pool 2x2 -> 3x3x4 outputs * 4 window
    assert layers["MAX_POOL_2D"].macs == 3 * 3 * 4 * 4
    assert layers["RESHAPE"].macs == 0
    # dense 36 -> 5
    assert layers["FULLY_CONNECTED"].macs == 36 * 5
    assert report.macs == 3888 + 1296 + 144 + 180 == 5508


def test_mixed_model_macs_by_hand(mixed_model):
    report = inspect(mixed_model[1], measure=False)
    layers = by_op(report)
    # transpose conv: every one of the 4*4*2 input values meets 3*3 taps of 3 filters
    assert layers["TRANSPOSE_CONV"].macs == 4 * 4 * 2 * 3 * 3 * 3
    assert layers["AVERAGE_POOL_2D"].macs == 4 * 4 * 3 * 2 * 2
    assert layers["CONV_2D"].macs == 4 * 4 * 3 * 2
    assert layers["ADD"].macs == 4 * 4 * 3
    assert layers["MEAN"].macs == 4 * 4 * 3
    assert report.macs == sum(layer.macs for layer in report.layers)


def test_weight_bytes_match_keras_weights(conv_model):
    model, data = conv_model
    report = inspect(data, measure=False)
    expected = {}
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            expected[layer.name] = kernel.size * 1 + bias.size * 4  # int8 kernel, int32 bias
    assert report.weight_bytes == sum(expected.values()) == 376
    assert report.params == model.count_params() == 337
    assert report.overhead_bytes == report.flash_bytes - report.weight_bytes
    assert report.flash_bytes == len(data)
    layers = by_op(report)
    assert layers["CONV_2D"].param_bytes == expected["conv"]
    assert layers["DEPTHWISE_CONV_2D"].param_bytes == expected["dw"]
    assert layers["FULLY_CONNECTED"].param_bytes == expected["dense"]
    # The RESHAPE's constant shape is overhead, not a weight.
    assert layers["RESHAPE"].param_bytes == 0 and layers["RESHAPE"].params == 0


def test_ops_shapes_and_channels(conv_model):
    report = inspect(conv_model[1], measure=False)
    assert report.ops == ("CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED")
    assert report.op_counts == {op: 1 for op in report.ops}
    conv = report.layers[0]
    assert conv.input_shapes == ((1, 8, 8, 3), (4, 3, 3, 3), (4,))
    assert conv.input_dtypes == ("int8", "int8", "int32")
    assert conv.output_shapes == ((1, 6, 6, 4),) and conv.output_dtypes == ("int8",)
    layers = by_op(report)
    assert layers["CONV_2D"].weight_shape == (4, 3, 3, 3) and layers["CONV_2D"].out_channels == 4
    assert layers["DEPTHWISE_CONV_2D"].weight_shape == (1, 3, 3, 4)
    assert layers["DEPTHWISE_CONV_2D"].out_channels == 4
    assert layers["FULLY_CONNECTED"].weight_shape == (5, 36)
    assert layers["FULLY_CONNECTED"].out_channels == 5
    assert all(layers[op].per_channel for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    assert layers["MAX_POOL_2D"].weight_shape is None and layers["MAX_POOL_2D"].sparsity is None
    assert report.tflm_supported and report.unsupported_ops == ()


def test_io_quantization_matches_litert(conv_model):
    from ai_edge_litert.interpreter import Interpreter

    data = conv_model[1]
    report = inspect(data, measure=False)
    interp = Interpreter(model_content=data)
    for ours, theirs in ((report.inputs[0], interp.get_input_details()[0]),
                         (report.outputs[0], interp.get_output_details()[0])):
        assert ours.dtype == np.dtype(theirs["dtype"]).name == "int8"
        assert ours.shape == tuple(theirs["shape"])
        assert (ours.scale, ours.zero_point) == theirs["quantization"]


def test_sparsity_and_zero_channels(pruned_dense_model):
    _, data, kernel = pruned_dense_model
    report = inspect(data, measure=False)
    (fc,) = report.layers
    assert fc.sparsity == pytest.approx(np.mean(kernel == 0.0), abs=1e-12) == pytest.approx(2 / 3)
    assert fc.zero_channels == 2 and fc.out_channels == 6
    assert report.weight_sparsity == pytest.approx(2 / 3)
    assert report.sparsity_summary() == [{
        "index": 0, "op": "FULLY_CONNECTED", "weight_shape": (6, 10), "out_channels": 6,
        "zero_channels": 2, "sparsity": fc.sparsity, "per_channel": True,
    }]


def test_dense_model_has_no_zeros(conv_model):
    report = inspect(conv_model[1], measure=False)
    for layer in report.layers:
        if layer.weight_shape is not None:
            assert layer.zero_channels == 0
    assert report.weight_sparsity < 0.05


def test_unsupported_ops_are_listed(conv_model):
    m = fb.unpack(conv_model[1])
    pool = next(c for c in m.operatorCodes if fb.op_name(c) == "MAX_POOL_2D")
    pool.builtinCode = pool.deprecatedBuiltinCode = fb.schema.BuiltinOperator.LSH_PROJECTION
    custom = next(c for c in m.operatorCodes if fb.op_name(c) == "RESHAPE")
    custom.builtinCode = custom.deprecatedBuiltinCode = fb.schema.BuiltinOperator.CUSTOM
    custom.customCode = b"FlexErf"
    report = inspect(repack(m), measure=False)
    assert not report.tflm_supported
    assert report.unsupported_ops == ("LSH_PROJECTION", "CUSTOM:FlexErf")
    assert [layer.tflm_supported for layer in report.layers] == [True, True, False, False, True]


def test_corrupt_model_is_refused(conv_model):
    with pytest.raises(ModelFormatError, match="TFL3"):
        inspect(b"\x00" * 4 + b"XXXX" + conv_model[1][8:], measure=False)


def test_arena_is_measured_on_tflm(conv_model):
    data = conv_model[1]
    assert inspect(data, measure=False).arena_bytes is None
    report = inspect(data)
    arena = measure_arena(data)
    assert report.arena_bytes == arena.host_bytes
    assert report.arena_emitted_bytes == arena.emitted_bytes
    # The input (8*8*3) and the largest activation (6*6*4) are live together.
    assert report.arena_bytes >= 8 * 8 * 3 + 6 * 6 * 4


@pytest.mark.parametrize("op, ins, outs, options, expected", [
    ("CONV_2D", [(1, 5, 5, 8), (16, 3, 3, 4), (16,)], [(1, 3, 3, 16)], None, 3 * 3 * 16 * 3 * 3 * 4),
    ("FULLY_CONNECTED", [(2, 7), (3, 7), None], [(2, 3)], None, 2 * 3 * 7),
    ("BATCH_MATMUL", [(1, 4, 6), (1, 6, 5)], [(1, 4, 5)], None, 4 * 5 * 6),
    ("MUL", [(1, 10), (1, 10)], [(1, 10)], None, 10),
    ("SOFTMAX", [(1, 10)], [(1, 10)], None, 0),
    ("CONV_2D", [(1, 5, 5, 8)], [(1, 3, 3, 16)], None, 0),
])
def test_mac_formulas(op, ins, outs, options, expected):
    assert _ops_cost.macs(op, ins, outs, options) == expected


def test_mac_formulas_read_options():
    pool = fb.schema.Pool2DOptionsT()
    pool.filterHeight, pool.filterWidth = 3, 2
    assert _ops_cost.macs("MAX_POOL_2D", [(1, 9, 9, 2)], [(1, 3, 4, 2)], pool) == 24 * 6
    mm = fb.schema.BatchMatMulOptionsT()
    mm.adjX = True
    assert _ops_cost.macs("BATCH_MATMUL", [(6, 4), (6, 5)], [(4, 5)], mm) == 4 * 5 * 6
