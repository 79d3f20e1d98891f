"""TFLM vs LiteRT: rounding differences are tolerated as far as they can reach, no further."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.errors import VerificationError

DATA = Path(__file__).with_name("data")


@pytest.fixture(scope="module")
def softmax_model():
    """A pruned digits CNN ending in softmax on which TFLM and LiteRT round differently.

    TFLM's reference FULLY_CONNECTED requantizes with two roundings, LiteRT's with
    one; a 1-LSB logit difference becomes 3 LSB after the softmax on sample 11.
    """
    return (DATA / "softmax_rounding.tflite").read_bytes(), np.load(DATA / "softmax_rounding_x.npy")


def test_softmax_output_tolerance_follows_its_slope(softmax_model):
    model, _ = softmax_model
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    softmax = next(op for op in sg.operators if fb.op_name(m.operatorCodes[op.opcodeIndex]) == "SOFTMAX")
    s_in = sg.tensors[softmax.inputs[0]].quantization.scale[0]
    s_out = sg.tensors[softmax.outputs[0]].quantization.scale[0]
    gain = 0.5 * softmax.builtinOptions.beta * s_in / s_out  # largest total softmax slope
    assert tflite_export.output_tolerances(model) == [1 + math.ceil(gain)]
    assert tflite_export.output_tolerances(model, max_lsb=2) == [2 + math.ceil(2 * gain)]
    assert gain > 1


def test_rounding_differences_pass_and_are_reported(softmax_model):
    model, x = softmax_model
    tflm = tflite_export.run_tflm(model, tflite_export.quantize(x, model)).astype(int)
    litert = tflite_export.run_litert(model, tflite_export.quantize(x, model)).astype(int)
    assert np.abs(tflm - litert).max() > 1  # the runtimes really differ here
    report = tflite_export.verify(model, x)
    assert report.max_lsb_diff == np.abs(tflm - litert).max()
    assert report.lsb_diff_at[0] == int(np.argmax(np.abs(tflm - litert).max(axis=1)))


def test_a_difference_beyond_the_tolerance_fails_with_the_fix(softmax_model):
    model, x = softmax_model
    with pytest.raises(VerificationError, match=r"more than the 0 tolerated.*verify_max_lsb"):
        tflite_export.verify(model, x, max_lsb=0)
