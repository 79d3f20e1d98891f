"""`ReassignClusters`: periodically move weights to their nearest centroid."""

from __future__ import annotations

import keras

from tinycompress.clustering.cluster import cluster_wrappers
from tinycompress.errors import ClusteringError

__all__ = ["ReassignClusters"]


@keras.saving.register_keras_serializable(package="tinycompress")
class ReassignClusters(keras.callbacks.Callback):
    """Re-assign clustered weights every few epochs during `fit`.

    Without this callback assignments stay fixed and only the centroids train.
    With it, each weight's latent value (trained straight through) picks its
    nearest centroid at the end of every ``every_n_epochs``-th epoch. The
    epoch is the absolute index Keras passes (``fit(initial_epoch=...)``
    restores it after a reload), so resumed training keeps the rhythm; the
    assignments themselves are model weights.

    Args:
        every_n_epochs: epochs between re-assignments, at least 1. Default 1.

    Raises:
        ClusteringError: ``every_n_epochs`` is not a positive integer.

    Example:
        >>> ReassignClusters(2).get_config()
        {'every_n_epochs': 2}
    """

    def __init__(self, every_n_epochs: int = 1):
        super().__init__()
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ClusteringError(
                "expected every_n_epochs to be a positive integer. "
                f"Received every_n_epochs={every_n_epochs!r}."
            )
        self.every_n_epochs = every_n_epochs

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.every_n_epochs == 0:
            for wrapper in cluster_wrappers(self.model):
                wrapper.reassign()

    def get_config(self) -> dict:
        return {"every_n_epochs": self.every_n_epochs}

    @classmethod
    def from_config(cls, config: dict) -> "ReassignClusters":
        return cls(**config)
