"""The technique contract (`tinycompress.core.technique`), checked once for every technique.

For pruning, QAT, clustering, distillation and low-rank factorization (layer
pruning, which needs validation data to score blocks, runs the same checks in
``tests/tinycompress/layer_pruning``): the config value object
round-trips; the callbacks are registered, serializable and resume from the
optimizer's step; a `.keras` file saved mid-training continues exactly like
the model that kept training; `prepare_for_export` leaves no training-time
trace of the toolkit; and the prepared model converts and verifies on TFLM.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tflite_export
import tinycompress
from tinycompress import clustering, distillation, lowrank, pruning, quantization
from tinycompress.core import Technique, prepare_for_export, toolkit_layers, walk_layers
from tinycompress.quantization import ActivationQuantizer, QuantizeWrapper

L = keras.layers

CONFIGS = {
    "pruning": pruning.PruningConfig(pruning.ConstantSparsity(0.5, frequency=2), layers=["conv", "fc"]),
    "quantization": quantization.QATConfig(freeze_after=6),
    "clustering": clustering.ClusteringConfig(bits=3, reassign_every=1),
    "distillation": distillation.DistillationConfig(temperature=2.0, student_loss_weight=0.5),
    "lowrank": lowrank.LowRankConfig(ranks={"fc": 1}),
}
TECHNIQUES: dict[str, Technique] = {
    t.name: t for t in (pruning.TECHNIQUE, quantization.TECHNIQUE, clustering.TECHNIQUE,
                        distillation.TECHNIQUE, lowrank.TECHNIQUE)
}
#: Toolkit layers a prepared model may keep: QAT's carry the trained int8
#: scales the converter reads (they become quantization parameters, no ops).
EXPORT_LAYERS = {"quantization": (ActivationQuantizer, QuantizeWrapper)}


def _data(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 1)).astype("float32")
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int32")
    return x, y


def _net(width: int, name: str) -> keras.Model:
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(width, 3, activation="relu", name="conv"),
        L.MaxPooling2D(name="pool"), L.Flatten(name="flat"), L.Dense(2, name="fc")], name=name)


def _compile(model: keras.Model) -> keras.Model:
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _apply(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    context = {}
    if name == "distillation":
        teacher = _compile(_net(8, "teacher"))
        teacher.fit(*_data(), epochs=1, verbose=0)
        context["teacher"] = teacher
    return _compile(TECHNIQUES[name].apply(_net(4, "student"), CONFIGS[name], **context))


def _fit(model, callbacks):
    x, y = _data()
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)


@pytest.mark.parametrize("name", list(TECHNIQUES))
def test_config_and_callbacks_round_trip(name):
    technique, config = TECHNIQUES[name], CONFIGS[name]
    assert isinstance(config, technique.config)
    again = technique.config.from_config(config.get_config())
    assert again == config and again.get_config() == config.get_config()
    for cb in technique.callbacks(config):
        cls = type(cb)
        assert keras.saving.get_registered_object(keras.saving.get_registered_name(cls)) is cls
        assert cls.from_config(cb.get_config()).get_config() == cb.get_config()


@pytest.fixture(scope="module", params=list(TECHNIQUES))
def resumed(request, tmp_path_factory):
    """(name, model trained 2 epochs, copy saved after 1 epoch and trained 1 more)."""
    name = request.param
    model = _apply(name)
    callbacks = TECHNIQUES[name].callbacks(CONFIGS[name])
    _fit(model, callbacks)
    path = tmp_path_factory.mktemp(name) / "mid.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    if name == "distillation":  # a Distiller's custom compile is not restored
        _compile_distiller(reloaded)
    _fit(model, callbacks)
    _fit(reloaded, [type(c).from_config(c.get_config()) for c in callbacks])
    return name, model, reloaded


def _compile_distiller(distiller):
    distiller.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


@pytest.mark.slow
def test_keras_file_saved_mid_training_resumes_on_the_same_schedule(resumed):
    name, model, reloaded = resumed
    if name != "distillation":
        assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations) == 8
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if name == "quantization":  # frozen at step 6 in both, from the optimizer's step
        flags = [float(q.frozen) for q in walk_layers(reloaded) if isinstance(q, ActivationQuantizer)]
        assert flags and all(f == 1.0 for f in flags)
    if name == "pruning":
        kernel = reloaded.get_layer("conv").kernel.numpy()
        assert float(np.mean(kernel == 0)) == pytest.approx(0.5, abs=0.03)


@pytest.mark.slow
def test_prepared_model_has_no_trace_and_verifies_on_tflm(resumed):
    name, model, _ = resumed
    before = [w.copy() for w in model.get_weights()]
    prepared = prepare_for_export(model)
    for a, b in zip(model.get_weights(), before):  # the trained model is untouched
        np.testing.assert_array_equal(a, b)
    allowed = EXPORT_LAYERS.get(name, ())
    assert [l for l in toolkit_layers(prepared) if not isinstance(l, allowed)] == []
    assert all(v.constraint is None and getattr(v, "regularizer", None) is None
               for v in prepared.variables)
    assert not prepared.compiled
    x, _ = _data(128)
    student = model.student if name == "distillation" else model
    y = prepared.predict(x, verbose=0)
    tol = 0.05 * float(np.ptp(y)) if name == "clustering" else 1e-5  # int8-grid snapping
    np.testing.assert_allclose(y, student.predict(x, verbose=0), atol=tol)
    tflite = tinycompress.convert(prepared, x)
    assert tflite_export.inspect(tflite).tflm_supported
    if name == "quantization":  # the trained ranges are kept: same bytes as converting the QAT model
        assert tinycompress.convert(model, x) == tflite
    report = tflite_export.verify(tflite, x, float_outputs=y)
    assert report.samples == len(x) and report.argmax_agreement >= 0.9
