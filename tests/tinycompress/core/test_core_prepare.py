"""`prepare_for_export`: one verb for every technique and their combinations."""

import keras
import numpy as np

from tinycompress.clustering import ClusterWeights, cluster_weights
from tinycompress.core import prepare_for_export, toolkit_layers
from tinycompress.distillation import build_distiller
from tinycompress.quantization import ActivationQuantizer, QuantizeWrapper, quantization_ranges, quantize_model

L = keras.layers
X = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")


def _mlp(units=8):
    return keras.Sequential([keras.Input((6,)), L.Dense(units, activation="relu", name="h"),
                             L.Dense(3, name="out")], name="mlp")


def test_clustered_qat_model_keeps_ranges_and_loses_the_cluster_wrappers():
    keras.utils.set_random_seed(0)
    qat = quantize_model(_mlp())
    qat(X, training=True)  # give the ranges values of their own
    clustered = cluster_weights(qat, bits=2)
    before = [w.copy() for w in clustered.get_weights()]
    prepared = prepare_for_export(clustered)
    assert not any(isinstance(l, ClusterWeights) for l in toolkit_layers(prepared))
    assert {type(l) for l in toolkit_layers(prepared)} == {QuantizeWrapper, ActivationQuantizer}
    assert quantization_ranges(prepared) == quantization_ranges(qat)
    kernel = prepared.get_layer("quant_h").get_compressible_weights()[0].numpy()
    assert len(np.unique(kernel)) <= 4
    for a, b in zip(clustered.get_weights(), before):  # the trained model is untouched
        np.testing.assert_array_equal(a, b)


def test_a_distiller_becomes_its_prepared_student():
    student = _mlp(4)
    prepared = prepare_for_export(build_distiller(_mlp(16), student))
    assert prepared is not student and prepared.name == "mlp"
    np.testing.assert_allclose(prepared(X), student(X), rtol=1e-6)
