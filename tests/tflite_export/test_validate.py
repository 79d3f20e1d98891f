"""`tflite_export.validate`: real models pass; every kind of corruption is a
`ModelFormatError` that names what is wrong and where, never another exception."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest

from tflite_export import _flatbuffer as fb
from tflite_export import inspect
from tflite_export.errors import ModelFormatError
from tflite_export.validate import validate


def repack(m) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_index(m, name: str) -> int:
    ops = m.subgraphs[0].operators
    return next(k for k, op in enumerate(ops) if fb.op_name(m.operatorCodes[op.opcodeIndex]) == name)


def weight_tensor(m, name: str = "CONV_2D") -> int:
    return int(m.subgraphs[0].operators[op_index(m, name)].inputs[1])


def tensor_name(m, t: int) -> str:
    return m.subgraphs[0].tensors[t].name.decode()


def raises(model: bytes, *fragments: str) -> str:
    with pytest.raises(ModelFormatError) as info:
        validate(model)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "re-export the model" in message
    return message


def test_real_models_pass(conv_model, pruned_dense_model):
    validate(conv_model[1])
    validate(pruned_dense_model[1])
    validate(bytearray(conv_model[1]))
    validate(memoryview(conv_model[1]))


def test_repacked_model_passes(conv_model):
    validate(repack(fb.unpack(conv_model[1])))


@pytest.mark.parametrize("data", [b"", b"\x00", b"1234567"])
def test_too_short(data):
    raises(data, "at least 8 bytes", f"received {len(data)} bytes")


def test_not_bytes():
    with pytest.raises(ModelFormatError, match="expected the model as bytes, received str"):
        validate("model.tflite")


def test_bad_identifier(conv_model):
    data = bytearray(conv_model[1])
    data[4:8] = b"TFL2"
    raises(bytes(data), "b'TFL3'", "b'TFL2'")


def test_schema_version(conv_model):
    m = fb.unpack(conv_model[1])
    m.version = 2
    raises(repack(m), "schema version 3", "received version 2")


def test_no_subgraphs(conv_model):
    m = fb.unpack(conv_model[1])
    m.subgraphs = []
    raises(repack(m), "no subgraphs")


def test_opcode_index_out_of_range(conv_model):
    m = fb.unpack(conv_model[1])
    k = op_index(m, "MAX_POOL_2D")
    m.subgraphs[0].operators[k].opcodeIndex = 99
    n = len(m.operatorCodes)
    raises(repack(m), f"subgraph 0 operator {k}", "operator code 99", f"there are {n} operator codes")


def test_op_input_tensor_out_of_range(conv_model):
    m = fb.unpack(conv_model[1])
    k = op_index(m, "DEPTHWISE_CONV_2D")
    m.subgraphs[0].operators[k].inputs[1] = 500
    n = len(m.subgraphs[0].tensors)
    raises(repack(m), f"operator {k} (DEPTHWISE_CONV_2D) input 1", "tensor 500", f"{n} tensors")


def test_optional_input_minus_one_allowed_but_not_for_outputs(conv_model):
    m = fb.unpack(conv_model[1])
    k = op_index(m, "CONV_2D")
    m.subgraphs[0].operators[k].inputs[2] = -1
    validate(repack(m))
    m.subgraphs[0].operators[k].outputs[0] = -1
    raises(repack(m), f"operator {k} (CONV_2D) output 0", "tensor -1")


def test_subgraph_output_out_of_range(conv_model):
    m = fb.unpack(conv_model[1])
    m.subgraphs[0].outputs[0] = 77
    raises(repack(m), "subgraph 0 output 0", "tensor 77")


def test_buffer_index_out_of_range(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    m.subgraphs[0].tensors[t].buffer = 1000
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r})", "buffer 1000", f"{len(m.buffers)} buffers")


def test_negative_dimension(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].outputs[0])
    m.subgraphs[0].tensors[t].shape = np.array([1, -5], np.int32)
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r})", "negative dimension -5 at axis 1")


def test_minus_one_only_in_shape_signature(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].inputs[0])
    m.subgraphs[0].tensors[t].shapeSignature = np.array([-1, 8, 8, 3], np.int32)
    validate(repack(m))
    m.subgraphs[0].tensors[t].shapeSignature = np.array([-2, 8, 8, 3], np.int32)
    raises(repack(m), "shape signature", "dimension -2")


def test_absurd_shape(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].outputs[0])
    m.subgraphs[0].tensors[t].shape = np.array([65536, 65536, 4], np.int32)
    raises(repack(m), f"tensor {t}", "17179869184 elements")


def test_constant_buffer_size_mismatch(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    buffer = m.subgraphs[0].tensors[t].buffer
    m.buffers[buffer].data = m.buffers[buffer].data[:-1]
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r})", "107 bytes", "needs 108 bytes")


@pytest.mark.parametrize("bad", [0.0, float("nan"), -0.5, float("inf")])
def test_bad_scale(conv_model, bad):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].inputs[0])
    m.subgraphs[0].tensors[t].quantization.scale = np.array([bad], np.float32)
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r})", f"scale {bad!r}", "finite scale > 0")


def test_per_axis_bad_scale_names_position(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    m.subgraphs[0].tensors[t].quantization.scale[2] = -0.5
    raises(repack(m), f"tensor {t}", "at position 2")


def test_zero_scale_only_on_a_filter_channel(conv_model):
    """The converter gives an all-zero filter channel the scale 0; TFLM only multiplies by a
    filter's scale, so that passes, while a zero activation scale (a divisor) does not."""
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    m.subgraphs[0].tensors[t].quantization.scale[2] = 0.0
    validate(repack(m))
    out = int(m.subgraphs[0].operators[op_index(m, "CONV_2D")].outputs[0])
    m.subgraphs[0].tensors[out].quantization.scale = np.array([0.0], np.float32)
    raises(repack(m), f"tensor {out}", "scale 0.0")


def test_zero_point_out_of_int8_range(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].inputs[0])
    m.subgraphs[0].tensors[t].quantization.zeroPoint = np.array([300], np.int64)
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r}) (INT8)", "zero point 300", "-128..127")


def test_per_axis_length_mismatch(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    q = m.subgraphs[0].tensors[t].quantization
    q.scale, q.zeroPoint = q.scale[:3], q.zeroPoint[:3]
    raises(repack(m), f"tensor {t} ({tensor_name(m, t)!r})", "3 per-axis scales",
           "4 entries along quantized_dimension 0")


def test_zero_point_count_differs_from_scale_count(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    q = m.subgraphs[0].tensors[t].quantization
    q.zeroPoint = q.zeroPoint[:1]
    raises(repack(m), f"tensor {t}", "4 quantization scales but 1 zero points")


def test_quantized_dimension_out_of_range(conv_model):
    m = fb.unpack(conv_model[1])
    t = weight_tensor(m)
    m.subgraphs[0].tensors[t].quantization.quantizedDimension = 7
    raises(repack(m), f"tensor {t}", "quantized_dimension 7", "rank 4")


def test_unknown_tensor_type(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].inputs[0])
    m.subgraphs[0].tensors[t].type = 99
    raises(repack(m), f"tensor {t}", "tensor type 99")


def test_structure_that_does_not_parse(conv_model):
    data = bytearray(conv_model[1])
    data[0:4] = (len(data) + 100).to_bytes(4, "little")  # root table offset past the end
    raises(bytes(data), "does not parse")


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
def test_truncated(conv_model, fraction):
    data = conv_model[1]
    raises(data[: int(len(data) * fraction)])


def test_every_truncation_is_refused(pruned_dense_model):
    data = pruned_dense_model[1]
    for n in range(0, len(data) - 1, 7):
        with pytest.raises(ModelFormatError):
            validate(data[:n])


@pytest.mark.parametrize("model_fixture", ["conv_model", "pruned_dense_model"])
def test_bit_flips_never_escape(request, model_fixture):
    """Flip one bit at 400 seeded positions: validate either accepts the model
    or raises ModelFormatError, and inspect of an accepted model does not fail."""
    data = request.getfixturevalue(model_fixture)[1]
    rng = np.random.default_rng(1234)
    outcomes = {"refused": 0, "accepted": 0}
    for pos, bit in zip(rng.integers(0, len(data), 400), rng.integers(0, 8, 400)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << bit
        try:
            validate(bytes(flipped))
        except ModelFormatError:
            outcomes["refused"] += 1
            continue
        outcomes["accepted"] += 1
        report = inspect(bytes(flipped), measure=False)
        assert report.flash_bytes == len(data)
    # Flips in weights and names are harmless; flips in the header and tables are not.
    assert outcomes["refused"] > 20 and outcomes["accepted"] > 20, outcomes


def test_tensor_name_not_utf8(conv_model):
    m = fb.unpack(conv_model[1])
    t = int(m.subgraphs[0].inputs[0])
    m.subgraphs[0].tensors[t].name = b"in\xf9put"
    raises(repack(m), f"the name of subgraph 0 tensor {t}", "not valid UTF-8")


# ---- models that passed validate but crashed TFLM (issue 13) ----------------------------

def _refused_everywhere(bad: bytes, *fragments: str) -> None:
    import tempfile

    import tflite_export

    raises(bad, *fragments)
    for fn in (tflite_export.slim, tflite_export.measure_arena, tflite_export.kernel_scratch_bound,
               lambda m: tflite_export.run_tflm(m, np.zeros((1, 4), np.int8))):
        with pytest.raises(ModelFormatError):
            fn(bad)
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(ModelFormatError):
            tflite_export.emit_c_sources(bad, d, arena_size=4096)
        assert not list(__import__("pathlib").Path(d).iterdir())


def test_offline_memory_plan_on_an_empty_buffer_is_refused():
    # TFLM read the plan from the missing data and died with SIGSEGV.
    from hostile_models import offline_plan_on_empty_buffer

    from tflite_export.testing import tiny_model

    _refused_everywhere(offline_plan_on_empty_buffer(tiny_model()),
                        "OfflineMemoryAllocation", "0 inline bytes")


def test_a_fully_connected_op_relabelled_conv_2d_is_refused():
    # TFLM's CONV_2D kernel divided by the missing stride: SIGFPE.
    from hostile_models import relabelled

    from tflite_export.testing import tiny_model

    _refused_everywhere(relabelled(tiny_model(), "FULLY_CONNECTED", "CONV_2D"),
                        "operator 0 (CONV_2D) carries FullyConnectedOptions")


@pytest.mark.parametrize("edit, fragments", [
    ("stride0", ("strideW = 0", "expected an integer >= 1")),
    ("filter3d", ("filter (input 1) has shape", "rank 4")),
    ("bias8", ("INT8 bias", "INT32")),
    ("channels", ("output has", "channels")),
    ("inputs", ("has 1 input(s)", "takes 2 to 3 input(s)")),
    ("rank7", ("rank 7", "at most 6")),
])
def test_operands_that_do_not_fit_the_kernel_are_refused(conv_model, edit, fragments):
    m = fb.unpack(conv_model[1])
    op = m.subgraphs[0].operators[op_index(m, "CONV_2D")]
    tensors = m.subgraphs[0].tensors
    if edit == "stride0":
        op.builtinOptions.strideW = 0
    elif edit == "filter3d":
        w = tensors[op.inputs[1]]
        w.shape = [int(w.shape[0]), int(w.shape[1]) * int(w.shape[2]), int(w.shape[3])]
    elif edit == "bias8":
        b = tensors[op.inputs[2]]
        b.type = fb.schema.TensorType.INT8
        m.buffers[b.buffer].data = np.asarray(m.buffers[b.buffer].data)[: int(b.shape[0])]
    elif edit == "channels":
        y = tensors[op.outputs[0]]
        y.shape = [int(d) for d in y.shape[:3]] + [int(y.shape[3]) + 1]
    elif edit == "inputs":
        op.inputs = op.inputs[:1]
    elif edit == "rank7":
        x = tensors[op.inputs[0]]
        x.shape = [1, 1, 1] + [int(d) for d in x.shape]
    raises(repack(m), *fragments)


@pytest.mark.parametrize("field", ["tensors", "inputs", "outputs", "op.inputs", "op.outputs"])
def test_missing_vectors_that_tflm_dereferences_are_refused(field):
    # Found by bench/fuzz.py (10,000 mutants): each made the TFLM worker die with SIGSEGV.
    from hostile_models import without_vector

    from tflite_export.testing import tiny_model

    name = field.rpartition(".")[2]
    raises(without_vector(tiny_model(), field), f"no {name} vector", "missing one is not")


@pytest.mark.parametrize("edit, fragment", [
    ("add_input_scale", "requantization multiplier"),
    ("softmax_beta", "beta * input scale * 2**26 > 1"),
])
def test_scales_that_make_tflm_kernels_abort_are_refused(edit, fragment):
    # Found by bench/fuzz.py: TFLM's ADD and SOFTMAX prepare functions abort (SIGABRT).
    from pathlib import Path

    seed = (Path(__file__).parent / "data" / "fuzz_cnn.tflite").read_bytes()
    validate(seed)
    m = fb.unpack(seed)
    if edit == "add_input_scale":
        op = m.subgraphs[0].operators[op_index(m, "ADD")]
        m.subgraphs[0].tensors[op.inputs[0]].quantization.scale = np.array([1e30], np.float32)
    else:
        m.subgraphs[0].operators[op_index(m, "SOFTMAX")].builtinOptions.beta = 1e-30
    raises(repack(m), fragment)


def test_a_fully_connected_output_larger_than_its_input_rows_is_refused():
    # Found by bench/fuzz.py: output [2097153, 3] for one input row crashed measure_arena.
    from tflite_export.testing import tiny_model

    m = fb.unpack(tiny_model())
    sg = m.subgraphs[0]
    sg.tensors[sg.outputs[0]].shape = [2097153, 3]
    raises(repack(m), "output has shape [2097153, 3]", "make 3 elements")
