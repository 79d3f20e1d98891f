import keras
import numpy as np
import pytest

from tinycompress.clustering import ClusteringError, ClusterWeights, cluster_weights, clusterable_weights

from _cluster_models import compile_, trained_cnn


@pytest.fixture(scope="module")
def cnn():
    return trained_cnn()


def _tables(values: np.ndarray, channels: int, per_channel: bool) -> list[np.ndarray]:
    w2d = values.reshape(-1, channels)
    return [w2d[:, c] for c in range(channels)] if per_channel else [w2d.reshape(-1)]


@pytest.mark.parametrize("bits", [0, 1, 8, True, 4.0, "4"])
def test_bits_out_of_range_is_a_clear_error(bits):
    with pytest.raises(ClusteringError, match=r"expected bits between 2 and 7.*Received bits="):
        ClusterWeights(keras.layers.Dense(2), bits=bits)


def test_unclusterable_layer_is_named():
    with pytest.raises(ClusteringError, match=r"layer 'bn' \(BatchNormalization\) cannot be clustered"):
        ClusterWeights(keras.layers.BatchNormalization(name="bn"))
    with pytest.raises(ClusteringError, match="granularity"):
        ClusterWeights(keras.layers.Dense(2), granularity="per_row")
    with pytest.raises(ClusteringError, match="init"):
        ClusterWeights(keras.layers.Dense(2), init="random")


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_each_table_holds_at_most_k_values(cnn, bits):
    model, x, _ = cnn
    clustered = cluster_weights(model, bits=bits)
    clustered(x[:2])
    wrappers = [l for l in clustered.layers if isinstance(l, ClusterWeights)]
    assert [w.layer.name for w in wrappers] == ["conv", "dw", "sep", "fc", "logits"]
    for w in wrappers:
        for (var, depthwise, dense), values in zip(clusterable_weights(w.layer), w.clustered_values()):
            shape = tuple(var.shape)
            channels = shape[-1] * shape[-2] if depthwise else shape[-1]
            # auto: one table for Dense, one per output channel for convolutions
            tables = _tables(values, channels, per_channel=not dense)
            assert max(len(np.unique(t)) for t in tables) <= 2**bits
            # k-means on the trained weights keeps the clustered kernel close
            err = np.abs(values - var.numpy()).max()
            assert err < 0.5 * np.abs(var.numpy()).max()


def test_depthwise_channels_follow_tflite_order(cnn):
    model, x, _ = cnn
    wrapper = ClusterWeights(model.get_layer("dw"), bits=2, granularity="per_channel")
    wrapper(x[:1, 2:, 2:][:, :8, :8].repeat(6, axis=-1))
    (values,) = wrapper.clustered_values()
    assert values.shape == (3, 3, 6, 2)
    flat = values.reshape(9, 12)  # TFLite's depthwise channel is c * multiplier + m
    assert all(len(np.unique(flat[:, j])) <= 4 for j in range(12))


@pytest.mark.slow
def test_centroids_train_and_assignments_stay_fixed(cnn):
    model, x, y = cnn
    clustered = compile_(cluster_weights(model, bits=3))
    before = clustered.evaluate(x, y, verbose=0)[0]
    fc = clustered.get_layer("cluster_fc")
    c0 = fc._state[0][0].numpy().copy()
    a0 = fc._state[0][1].numpy().copy()
    clustered.fit(x, y, epochs=3, batch_size=32, verbose=0)
    assert not np.allclose(fc._state[0][0].numpy(), c0)
    np.testing.assert_array_equal(fc._state[0][1].numpy(), a0)
    assert clustered.evaluate(x, y, verbose=0)[0] < before
    assert len(np.unique(fc.clustered_values()[0])) <= 8


@pytest.mark.slow
def test_zeros_from_pruning_stay_zero_within_k_values(cnn):
    model, x, y = cnn
    fc = model.get_layer("fc")
    kernel = fc.kernel.numpy()
    pruned = np.where(np.abs(kernel) < np.quantile(np.abs(kernel), 0.6), 0.0, kernel)
    fc.kernel.assign(pruned)
    try:
        clustered = compile_(cluster_weights(model, bits=2, layers=["fc"]))
        clustered.fit(x, y, epochs=2, batch_size=32, verbose=0)
        (values,) = clustered.get_layer("cluster_fc").clustered_values()
    finally:
        fc.kernel.assign(kernel)
    np.testing.assert_array_equal(values == 0, pruned == 0)
    assert len(np.unique(values)) <= 4 and 0.0 in values


def test_protocol_layer_is_clustered():
    @keras.saving.register_keras_serializable(package="tinycompress_tests")
    class Scaled(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 5), initializer="glorot_uniform")

        def call(self, x):
            return keras.ops.matmul(x, self.w)

        def get_prunable_weights(self):
            return [self.w]

    layer = ClusterWeights(Scaled(), bits=2)
    x = np.random.default_rng(0).normal(size=(3, 7)).astype("float32")
    y = layer(x).numpy()
    (values,) = layer.clustered_values()
    assert max(len(np.unique(values[:, j])) for j in range(5)) <= 4  # per channel
    np.testing.assert_allclose(y, x @ values, rtol=1e-5, atol=1e-6)


def test_save_and_reload_round_trips(cnn, tmp_path):
    model, x, _ = cnn
    clustered = cluster_weights(model, bits=3, init="linear", seed=4)
    y = clustered.predict(x[:8], verbose=0)
    path = tmp_path / "clustered.keras"
    clustered.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:8], verbose=0), y)
    wrapper = loaded.get_layer("cluster_conv")
    assert wrapper.get_config()["bits"] == 3 and wrapper.get_config()["init"] == "linear"
    again = ClusterWeights.from_config(wrapper.get_config())
    assert again.get_config() == wrapper.get_config()
