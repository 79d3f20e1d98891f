"""The int8 TFLM model converted from a QAT model behaves like the QAT model.

For each topology: train float, fine-tune with `quantize_model`, convert with
`tinycompress.convert`, run on the TFLM interpreter. Argmax must agree on at
least 99% of the test inputs, every int8 activation tensor's scale and zero
point must be a trained range (or, after SOFTMAX, LOGISTIC and TANH, the range
TFLite fixes) (relative tolerance `SCALE_RTOL`), and the model
must pass the foundation's int8-only / TFLM-op checks.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tflite_export import _flatbuffer as fb
from tflite_export.checks import find_problems
from tflite_export.io_details import dequantize, quantize
from tflite_export.runtime import run_tflm
from tinycompress import convert
from tinycompress.quantization import int8_scale, quantization_ranges, quantize_model

SCALE_RTOL = 1e-6
MIN_AGREEMENT = 0.99
#: Output (scale, zero point) TFLite fixes, which QAT must train with.
FIXED = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}


def _activation_quantization(model: bytes) -> list[tuple[int, str, float, int]]:
    """(tensor, producing op, scale, zero point) of every non-constant int8 tensor."""
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    producer = {t: fb.op_name(m.operatorCodes[op.opcodeIndex])
                for op in sg.operators for t in op.outputs}
    rows = []
    for i, t in enumerate(sg.tensors):
        data = m.buffers[t.buffer].data
        if fb.tensor_type_name(t.type) != "INT8" or (data is not None and len(data)):
            continue
        rows.append((i, producer.get(i, "INPUT"), float(t.quantization.scale[0]),
                     int(t.quantization.zeroPoint[0])))
    return rows


def _expected(lo: float, hi: float) -> tuple[float, int]:
    """TFLite's (scale, int8 zero point) for a fake-quant range (nudged like TF)."""
    scale = int8_scale(lo, hi)
    return scale, int(min(max(round(-lo / scale), 0), 255)) - 128


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cnn", "residual", "conv1d", "gates"])
def test_tflm_model_agrees_with_qat_model(name, trained_float):
    model, (x_test, _) = trained_float(name)
    shape = tuple(model.input_shape[1:])
    keras.utils.set_random_seed(1)
    qat = quantize_model(model)
    qat.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=name == "conv1d"),
    )
    from qat_topologies import blobs

    x_train, y_train = blobs(shape, 4, 600, seed=1)
    qat.fit(x_train, y_train, epochs=1, batch_size=32, verbose=0)
    tflite = convert(qat, x_train[:100])
    assert find_problems(tflite) == []

    y_keras = np.asarray(qat.predict(x_test, verbose=0))
    y_tflm = dequantize(run_tflm(tflite, quantize(x_test, tflite)), tflite)
    agreement = float(np.mean(y_keras.argmax(-1) == y_tflm.argmax(-1)))
    assert agreement >= MIN_AGREEMENT, f"{name}: argmax agreement {agreement:.3f}"

    expected = {k: _expected(*v) for k, v in quantization_ranges(qat).items()}
    used = set()
    for tensor, op, scale, zero in _activation_quantization(tflite):
        if op in FIXED:
            assert (scale, zero) == FIXED[op], f"{name}: {op} output off TFLite's fixed range"
            continue
        match = [k for k, (s, z) in expected.items()
                 if abs(s - scale) <= SCALE_RTOL * s and z == zero]
        assert match, f"{name}: tensor {tensor} ({op}) scale {scale} zp {zero} is no trained range"
        used.update(match)
    assert used == set(expected), f"{name}: ranges without a tensor: {set(expected) - used}"


@pytest.mark.slow
def test_distilled_student_quantizes_and_converts(trained_float):
    from qat_topologies import TOPOLOGIES, blobs

    from tinycompress.distillation import distill

    teacher, (x_test, y_test) = trained_float("conv1d")
    keras.utils.set_random_seed(2)
    student = TOPOLOGIES["conv1d"]()
    x, y = blobs((20, 3), 4, 600, seed=1)
    distill(teacher, student, x, y, epochs=3)
    qat = quantize_model(student)
    qat.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    qat.fit(x, y, epochs=1, batch_size=32, verbose=0)
    tflite = convert(qat, x[:100])
    assert find_problems(tflite) == []
    y_keras = np.asarray(qat.predict(x_test, verbose=0)).argmax(-1)
    y_tflm = run_tflm(tflite, quantize(x_test, tflite)).argmax(-1)
    assert float(np.mean(y_keras == y_tflm)) >= MIN_AGREEMENT
    assert float(np.mean(y_tflm == y_test)) >= 0.5          # 4 classes: chance is 0.25
