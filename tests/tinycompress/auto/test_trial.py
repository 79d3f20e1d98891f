"""`tflm_scores` and the value the study ranks trials by (`study_value`, `_rank`).

The scores are checked against Keras on the same model: the int8 model's
cross-entropy on TFLM is the float model's, up to quantization error.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinycompress.auto._objective import LOSS_CAP, study_value
from tinycompress.auto.search import _rank
from tinycompress.auto.trial import tflm_scores


def _keras_scores(model, x, y, *, probabilities: bool) -> tuple[float, float]:
    import keras

    out = model.predict(x, verbose=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)(y, out)
    return float(np.mean(np.argmax(out, -1) == y)), float(loss)


@pytest.mark.slow
@pytest.mark.parametrize("probabilities", [False, True], ids=["logits", "softmax"])
def test_tflm_scores_are_the_keras_accuracy_and_cross_entropy_up_to_quantization(tiny_task, probabilities):
    import keras

    import tflite_export
    from tinycompress.build import build

    model, train, (x, y) = tiny_task
    if probabilities:
        model = keras.Sequential([keras.Input((8,)), *model.layers, keras.layers.Softmax()])
    tflite = build(model, train[0][:256], verify_samples=4).model
    accuracy, loss = tflm_scores(tflite, x, y, probabilities=probabilities)
    keras_accuracy, keras_loss = _keras_scores(model, x, y, probabilities=probabilities)
    assert accuracy == tflite_export.evaluate_accuracy(tflite, x, y)
    assert abs(accuracy - keras_accuracy) <= 3 / len(y)  # a few samples near a class boundary
    # int8 softmax outputs stop at 255/256: about 0.004 nats more per sample than float
    assert 0.05 < keras_loss < 1.0 and loss == pytest.approx(keras_loss, rel=0.1, abs=0.01)
    # a wrong label for every sample: the loss rises, and with it no sample is right
    wrong_accuracy, wrong_loss = tflm_scores(tflite, x, (y + 1) % 3, probabilities=probabilities)
    assert wrong_loss > loss + 1.0 and wrong_accuracy <= 1 - accuracy


def test_study_value_keeps_the_accuracy_order_and_breaks_ties_by_cross_entropy():
    rng = np.random.default_rng(0)
    samples = 54
    metrics = [{"accuracy": int(rng.integers(40, 55)) / samples, "loss": float(rng.uniform(0, 2 * LOSS_CAP))}
               for _ in range(200)]
    by_value = sorted(metrics, key=lambda m: study_value(m, samples))
    lexicographic = sorted(metrics, key=lambda m: (m["accuracy"], -min(m["loss"], LOSS_CAP)))
    assert by_value == lexicographic
    for m in metrics:
        assert 0 <= m["accuracy"] - study_value(m, samples) <= 0.5 / samples + 1e-12


def test_rank_breaks_accuracy_ties_by_cross_entropy_then_flash():
    a = {"accuracy": 0.9, "loss": 0.30, "flash_bytes": 5000}
    b = {"accuracy": 0.9, "loss": 0.25, "flash_bytes": 6000}
    c = {"accuracy": 0.9, "loss": 0.25, "flash_bytes": 4000}
    more = {"accuracy": 0.91, "loss": 0.9, "flash_bytes": 9000}
    old = {"accuracy": 0.9, "flash_bytes": 100}  # measured before losses were recorded
    ranked = sorted([a, b, c, more, old], key=lambda m: _rank(m, "accuracy"), reverse=True)
    assert ranked == [more, c, b, a, old]
    # cost objectives: the cost, then accuracy, then cross-entropy
    cheap = sorted([a, b, {**b, "accuracy": 0.95}], key=lambda m: _rank(m, "flash"), reverse=True)
    assert [m["flash_bytes"] for m in cheap] == [5000, 6000, 6000] and cheap[1]["accuracy"] == 0.95
