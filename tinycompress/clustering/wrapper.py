"""`ClusterWeights`: train a layer whose kernels hold only 2**bits shared values.

Each clustered kernel is stored as centroids (trained) and fixed integer
assignments: the layer computes with ``centroids[assignment]``, so it never holds
more than ``K = 2**bits`` distinct values per table (per tensor, or per output
channel). The gradient of each weight reaches its centroid (weight sharing, Han
et al., Deep Compression) and, straight through, the original "latent" kernel,
which `ReassignClusters` uses to move weights between clusters.

With ``preserve_sparsity`` (default) exact zeros (from pruning) stay zero: they
are masked out, excluded from k-means, and a table with zeros keeps one of its
K entries for zero, so the total stays at most K values.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tinycompress import core
from tinycompress.clustering._kmeans import INITS, assign, kmeans_1d
from tinycompress.errors import ClusteringError

__all__ = [
    "BITS_RANGE",
    "GRANULARITIES",
    "SUPPORTED_LAYERS",
    "ClusterWeights",
    "check_settings",
    "clusterable_weights",
    "is_clusterable",
]

#: Allowed values of ``bits`` (K = 2**bits values; TFLM LUT indices are at most 7 bits).
BITS_RANGE = range(2, 8)

#: Table granularities; "auto" is per tensor for Dense (converted per tensor
#: by `tinycompress.convert`) and per output channel for convolutions.
GRANULARITIES = ("auto", "per_tensor", "per_channel")

#: Kernel kinds of `tinycompress.core.KERNEL_TABLE` that clustering shares values in: Dense,
#: convolutions, and a recurrent layer's input and recurrent kernels.
CLUSTERABLE_KINDS = core.LINEAR_KINDS + ("recurrent",)

#: Kernel kinds quantized with one scale per tensor (clustered and snapped per tensor under
#: ``"auto"``): Dense, and recurrent kernels, whose gates the converter quantizes per tensor.
_PER_TENSOR_KINDS = ("dense", "recurrent")

#: Layer classes clustered out of the box and the attributes of their kernels
#: (a view of `tinycompress.core.KERNEL_TABLE`).
SUPPORTED_LAYERS: dict[type, tuple[str, ...]] = {
    cls: tuple(spec.attr for spec in row.kernels)
    for cls, row in core.KERNEL_TABLE.items() if row.kind in CLUSTERABLE_KINDS
}


def is_clusterable(layer: keras.layers.Layer) -> bool:
    """Whether `ClusterWeights` accepts the layer.

    Args:
        layer: a Keras layer.

    Returns:
        True for the classes in `SUPPORTED_LAYERS` and for layers defining
        ``get_compressible_weights()`` (the protocol shared by every technique).

    Example:
        >>> import keras
        >>> is_clusterable(keras.layers.Dense(2)), is_clusterable(keras.layers.Flatten())
        (True, False)
    """
    return core.is_compressible(layer, CLUSTERABLE_KINDS)


def _kernels(layer: keras.layers.Layer) -> list[core.Kernel]:
    if not is_clusterable(layer):
        raise ClusteringError(
            f"layer '{layer.name}' ({type(layer).__name__}) cannot be clustered: expected one "
            f"of {[c.__name__ for c in SUPPORTED_LAYERS]} or a layer defining "
            "get_compressible_weights(). Leave it out of `layers=` or add that method."
        )
    return core.kernels(layer)


def clusterable_weights(layer: keras.layers.Layer) -> list[tuple[keras.Variable, bool, bool]]:
    """The kernels of a built layer that clustering rewrites.

    Args:
        layer: a built, clusterable layer.

    Returns:
        ``(variable, depthwise, dense)`` per kernel: ``depthwise`` when the
        kernel's last two axes form TFLite's channel axis (depthwise kernels),
        ``dense`` when it belongs to a Dense layer.

    Raises:
        ClusteringError: the layer is not clusterable.
    """
    return [(k.variable, k.depthwise, k.kind == "dense") for k in _kernels(layer)]


def _initial_state(
    w2d: np.ndarray, k: int, per_channel: bool, preserve_sparsity: bool, init: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = w2d.shape
    mask = (w2d != 0) if preserve_sparsity else np.ones_like(w2d, dtype=bool)
    groups = [slice(g, g + 1) for g in range(cols)] if per_channel else [slice(None)]
    centroids = np.zeros((k, len(groups)))
    indices = np.zeros((rows, cols), np.int32)
    for g, cols_g in enumerate(groups):
        block, m = w2d[:, cols_g], mask[:, cols_g]
        k_fit = k - 1 if not m.all() else k
        fitted = kmeans_1d(block[m], k_fit, init=init, seed=seed + g)
        centroids[:k_fit, g] = fitted
        idx = assign(block.reshape(-1), fitted).reshape(block.shape)
        idx[~m] = k - 1
        indices[:, cols_g] = idx
    return centroids, indices, mask.astype(np.float32)


def check_settings(bits: int, granularity: str, init: str) -> None:
    """Validate clustering settings.

    Args:
        bits: index width; must be in `BITS_RANGE` (2..7).
        granularity: one of `GRANULARITIES`.
        init: one of "kmeans++", "linear".

    Raises:
        ClusteringError: ``bits`` not in `BITS_RANGE`, or an unknown
            ``granularity`` or ``init``.

    Example:
        >>> check_settings(8, "auto", "linear")
        Traceback (most recent call last):
        ...
        tinycompress.errors.ClusteringError: expected bits between 2 and 7 (K = 2**bits shared values; TFLM lookup tables hold at most 128). Received bits=8.
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits not in BITS_RANGE:
        raise ClusteringError(
            f"expected bits between {BITS_RANGE.start} and {BITS_RANGE.stop - 1} "
            f"(K = 2**bits shared values; TFLM lookup tables hold at most 128). "
            f"Received bits={bits!r}."
        )
    if granularity not in GRANULARITIES:
        raise ClusteringError(
            f"expected granularity in {GRANULARITIES}. Received granularity={granularity!r}."
        )
    if init not in INITS:
        raise ClusteringError(f"expected init in {INITS}. Received init={init!r}.")


def _snap(w: np.ndarray, cols: int, per_channel: bool) -> np.ndarray:
    """Round `w` to the symmetric int8 grid (scale max|w| / 127 per column or tensor)."""
    w2d = w.reshape(-1, cols).astype(np.float64)
    amax = np.max(np.abs(w2d), axis=0 if per_channel else None, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return (np.round(w2d / scale) * scale).astype(np.float32).reshape(w.shape)


@keras.saving.register_keras_serializable(package="tinycompress")
class ClusterWeights(keras.layers.Wrapper):
    """Wrap a layer so its kernels share ``2**bits`` trained values.

    Args:
        layer: a layer listed in `SUPPORTED_LAYERS` or defining
            ``get_compressible_weights()`` (e.g. a QAT wrapper exposing its float
            kernel: clustering then preserves clusters through QAT).
        bits: index width, 2..7, giving K = 2**bits values per table. Default 4.
        granularity: "per_tensor", "per_channel" (one table per output
            channel), or "auto" (default): per tensor for Dense and
            recurrent kernels, per channel for convolutions, matching how
            `tinycompress.convert` quantizes them.
        init: centroid initialization, "kmeans++" (default) or "linear".
        preserve_sparsity: keep exact zeros at zero. Default True.
        seed: seed of the k-means++ initialization. Default 0.
        **kwargs: passed to `keras.layers.Wrapper` (e.g. ``name``).

    Raises:
        ClusteringError: bits, granularity or init out of range, or a layer
            that cannot be clustered.

    Example:
        >>> import keras, numpy as np
        >>> layer = ClusterWeights(keras.layers.Dense(8), bits=2)
        >>> y = layer(np.ones((1, 16), "float32"))
        >>> len(np.unique(layer.clustered_values()[0]))
        4
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        bits: int = 4,
        granularity: str = "auto",
        init: str = "kmeans++",
        preserve_sparsity: bool = True,
        seed: int = 0,
        **kwargs,
    ):
        check_settings(bits, granularity, init)
        if not is_clusterable(layer):
            _kernels(layer)
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.bits = int(bits)
        self.granularity = granularity
        self.init = init
        self.preserve_sparsity = bool(preserve_sparsity)
        self.seed = int(seed)
        self._state: list[tuple[keras.Variable, keras.Variable, keras.Variable]] = []

    def _per_channel(self, dense: bool) -> bool:
        if self.granularity == "auto":
            return not dense
        return self.granularity == "per_channel"

    def build(self, input_shape=None):
        super().build(input_shape)
        k = 2**self.bits
        state = []
        for i, kernel in enumerate(_kernels(self.layer)):
            w2d = np.asarray(ops.convert_to_numpy(kernel.variable), np.float64).reshape(-1, kernel.channels)
            per_channel = self._per_channel(kernel.kind in _PER_TENSOR_KINDS)
            centroids, indices, mask = _initial_state(
                w2d, k, per_channel, self.preserve_sparsity, self.init, self.seed
            )
            c = self.add_weight(name=f"centroids_{i}", shape=centroids.shape, initializer="zeros")
            idx = self.add_weight(name=f"assignments_{i}", shape=indices.shape, dtype="int32",
                                  initializer="zeros", trainable=False)
            m = self.add_weight(name=f"mask_{i}", shape=mask.shape, initializer="ones",
                                trainable=False)
            c.assign(centroids.astype(np.float32))
            idx.assign(indices)
            m.assign(mask)
            state.append((c, idx, m))
        self._state = state
        self.built = True

    def _gathered(self, centroids, assignments, mask):
        groups = centroids.shape[1]
        flat = assignments * groups
        if groups > 1:
            flat = flat + ops.arange(assignments.shape[1], dtype="int32")
        return ops.take(ops.reshape(centroids, (-1,)), flat) * mask

    def call(self, inputs, training=None):
        mapping = []
        for var, (c, idx, m) in zip(self._variables(), self._state):
            latent = ops.reshape(var, m.shape)
            values = self._gathered(c, idx, m) + (latent - ops.stop_gradient(latent)) * m
            mapping.append((var, ops.reshape(values, var.shape)))
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            outputs = self.layer(inputs, training=training)
        mapped = {id(v) for v, _ in mapping}
        for v in self.layer.variables:
            new = None if id(v) in mapped else scope.get_current_value(v)
            if new is not None:
                v.assign(new)
        for loss in scope.losses:
            self.add_loss(loss)
        return outputs

    def _variables(self) -> list[keras.Variable]:
        return [k.variable for k in _kernels(self.layer)]

    def baked_values(self, int8_grid: str | None = "auto") -> list[tuple[keras.Variable, np.ndarray]]:
        """``(kernel variable, shared values)`` pairs, optionally snapped to the int8 grid.

        Args:
            int8_grid: "auto" (default: per tensor for Dense, per channel
                otherwise, as `tinycompress.convert` quantizes them),
                "per_tensor", "per_channel" or None (no snapping). Recurrent
                kernels are never snapped: the converter splits them into one
                tensor per gate, each with its own scale, which keeps at most
                ``2**bits`` values per gate tensor.
        """
        out = []
        for kernel, values in zip(_kernels(self.layer), self.clustered_values()):
            if int8_grid is not None and kernel.kind != "recurrent":
                per_channel = (kernel.kind not in _PER_TENSOR_KINDS if int8_grid == "auto"
                               else int8_grid == "per_channel")
                values = _snap(values, kernel.channels, per_channel)
            out.append((kernel.variable, values))
        return out

    def export_layers(self, int8_grid: str | None = "auto") -> core.Replacement:
        """What `prepare_for_export` puts in place of this wrapper.

        Args:
            int8_grid: see `baked_values`. Default "auto".

        Returns:
            A `Replacement`: a fresh copy of the wrapped layer whose kernels
            hold the shared values (the wrapper is left as it is).
        """
        baked = {id(v): values for v, values in self.baked_values(int8_grid)}
        inner = self.layer
        weights = [baked.get(id(v), keras.ops.convert_to_numpy(v)) for v in inner.weights]
        return core.Replacement((inner.__class__.from_config(inner.get_config()),), (weights,))

    def clustered_values(self) -> list[np.ndarray]:
        """The shared-value kernels, one numpy array per clustered variable."""
        return [
            np.asarray(ops.convert_to_numpy(self._gathered(c, idx, m))).reshape(var.shape)
            for var, (c, idx, m) in zip(self._variables(), self._state)
        ]

    def reassign(self) -> None:
        """Move each weight to its nearest centroid, using the latent kernels."""
        k = 2**self.bits
        for var, (c, idx, m) in zip(self._variables(), self._state):
            w2d = np.asarray(ops.convert_to_numpy(var)).reshape(m.shape)
            cent = np.asarray(ops.convert_to_numpy(c))
            mask = np.asarray(ops.convert_to_numpy(m)) > 0
            new = np.asarray(ops.convert_to_numpy(idx)).copy()
            for g in range(cent.shape[1]):
                cols = slice(g, g + 1) if cent.shape[1] > 1 else slice(None)
                block, mb = w2d[:, cols], mask[:, cols]
                k_fit = k - 1 if not mb.all() else k
                chosen = assign(block.reshape(-1), cent[:k_fit, g]).reshape(block.shape)
                new[:, cols] = np.where(mb, chosen, k - 1)
            idx.assign(new)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "bits": self.bits,
            "granularity": self.granularity,
            "init": self.init,
            "preserve_sparsity": self.preserve_sparsity,
            "seed": self.seed,
        }
