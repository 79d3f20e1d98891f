import numpy as np
import pytest

from tinycompress.clustering import ClusteringError, ReassignClusters, cluster_weights

from _cluster_models import compile_, trained_cnn


@pytest.mark.slow
def test_reassignment_moves_weights_and_keeps_k_values():
    model, x, y = trained_cnn(epochs=1)
    c = compile_(cluster_weights(model, bits=2, layers=["fc"]))
    fc = c.get_layer("cluster_fc")
    before = fc._state[0][1].numpy().copy()
    c.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[ReassignClusters(every_n_epochs=1)])
    after = fc._state[0][1].numpy()
    assert (after != before).any()
    # every weight sits on the centroid nearest to its latent value
    latent = fc.layer.kernel.numpy().reshape(-1)
    centroids = fc._state[0][0].numpy()[:, 0]
    nearest = np.argmin(np.abs(latent[:, None] - centroids[None, :]), axis=1)
    np.testing.assert_array_equal(after.reshape(-1), nearest)
    assert len(np.unique(fc.clustered_values()[0])) <= 4


def test_config_round_trip_and_validation():
    cb = ReassignClusters(3)
    assert ReassignClusters.from_config(cb.get_config()).get_config() == {"every_n_epochs": 3}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ClusteringError, match="every_n_epochs"):
            ReassignClusters(bad)
