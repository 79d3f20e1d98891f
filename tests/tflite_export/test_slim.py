"""slim() removes bytes TFLM never reads and changes no output bit."""

from __future__ import annotations

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.errors import VerificationError


def _data_offsets(model: bytes) -> list[int]:
    m = fb.schema.Model.GetRootAs(model, 0)
    offsets = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            offsets.append(b._tab.Vector(b._tab.Offset(4)))
    return offsets


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "residual", "dwsep", "mlp", "conv1d"])
def test_slim_is_smaller_valid_aligned_and_bit_exact(name, keras_models, converted):
    model = converted(name)
    _, x = keras_models(name)
    r = tflite_export.slim(model)
    assert r.bytes_after == len(r.model) < r.bytes_before == len(model)
    tflite_export.validate(r.model)
    m = fb.unpack(r.model)
    assert all(not t.name for t in m.subgraphs[0].tensors)
    assert not m.signatureDefs and not m.metadata
    assert all(off % 16 == 0 for off in _data_offsets(r.model))
    xq = tflite_export.quantize(x[:16], model)
    assert np.array_equal(tflite_export.run_tflm(model, xq), tflite_export.run_tflm(r.model, xq))
    assert np.array_equal(tflite_export.run_litert(model, xq), tflite_export.run_litert(r.model, xq))
    assert tflite_export.verify_identical(model, r.model, x[:16]) == 16
    # weights are untouched: only structure was removed
    assert tflite_export.inspect(r.model, measure=False).weight_bytes == tflite_export.inspect(
        model, measure=False).weight_bytes


def test_shared_vectors_are_written_once(converted):
    model = converted("dwsep")
    slimmed = tflite_export.slim(model).model
    # per-channel zero points (int64, all zero) repeat across tensors of equal width
    sg = fb.unpack(model).subgraphs[0]
    widths = [len(t.quantization.zeroPoint) for t in sg.tensors
              if t.quantization is not None and t.quantization.zeroPoint is not None
              and len(t.quantization.zeroPoint) > 1]
    assert len(widths) > len(set(widths))
    saved_zero_points = sum(8 * w for w in widths) - sum(8 * w for w in set(widths))
    assert len(model) - len(slimmed) >= saved_zero_points


def test_verify_identical_names_the_first_difference(converted, keras_models):
    model = converted("mlp")
    _, x = keras_models("mlp")
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    fc = [op for op in sg.operators
          if fb.op_name(m.operatorCodes[op.opcodeIndex]) == "FULLY_CONNECTED"]
    weights = m.buffers[sg.tensors[fc[-1].inputs[1]].buffer].data
    weights[:] = 255 - weights  # negate every int8 weight of the last layer
    import flatbuffers

    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(VerificationError, match="differs from the original at sample 0"):
        tflite_export.verify_identical(model, bytes(b.Output()), x[:4], what="edited")


def test_tensors_of_a_slimmed_model_are_labelled_by_the_operator_reading_them(converted):
    """Slimming drops tensor names; the encode and LUT tables then name each constant by
    the first operator reading it and the input's role, one label per tensor."""
    from tflite_export.encode import encode_candidates
    from tflite_export.lut import lut_candidates

    model = converted("cnn")
    slimmed = tflite_export.slim(model).model
    m = fb.unpack(slimmed)
    sg = m.subgraphs[0]
    expected = {}
    for k, op in reversed(list(enumerate(sg.operators))):  # the first reader's label wins
        name = fb.op_name(m.operatorCodes[op.opcodeIndex])
        if name in ("CONV_2D", "FULLY_CONNECTED"):
            expected.update({int(op.inputs[1]): f"{name} {k} weights", int(op.inputs[2]): f"{name} {k} bias"})
    assert len(expected) >= 4
    for found in (encode_candidates(slimmed), lut_candidates(slimmed)):
        labels = {c.index: c.name for c in found}
        weights = [i for i in expected if expected[i].endswith("weights")]
        assert set(weights) <= labels.keys()  # every weight tensor is a candidate
        assert all(labels[i] == expected[i] for i in labels.keys() & expected.keys())
        assert "<tensor>" not in labels.values() and len(set(labels.values())) == len(labels)
    named = {c.index: c.name for c in encode_candidates(model)}  # the converter's names stay
    assert named == {i: fb.unpack(model).subgraphs[0].tensors[i].name.decode() for i in named}
