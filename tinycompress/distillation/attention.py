"""Attention transfer (Zagoruyko & Komodakis, 2017) as a Keras distillation loss."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tinycompress.distillation._features import check_layer_names, feature_shape, spatial_mismatch
from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["AttentionTransfer"]

_EPS = 1e-8


@keras.saving.register_keras_serializable(package="tinycompress")
class AttentionTransfer(keras.distillation.DistillationLoss):
    """Match the spatial attention maps of a teacher and a student feature map.

    The attention map of a feature map ``F`` (batch, ..., channels) is
    ``mean_c |F|**p`` over channels, flattened and L2-normalised per sample;
    the loss is the squared distance between the teacher's and the student's
    maps averaged over the batch (range [0, 4]). Channel counts may differ, so
    no adapter is needed; the spatial (or time) dims must match.

    Args:
        teacher_layer_name: name of a teacher layer with a rank >= 3 output
            (Conv1D/Conv2D feature map).
        student_layer_name: name of the student layer with the same spatial
            dims.
        p: exponent applied to activations before averaging, > 0. Default 2.0.

    Raises:
        DistillationConfigError: missing names, p <= 0, or (when the distiller
            is built) a missing layer, a rank < 3 output, or different
            spatial dims.

    Example:
        >>> import numpy as np
        >>> at = AttentionTransfer("t_conv", "s_conv")
        >>> f = np.random.default_rng(0).random((2, 4, 4, 8)).astype("float32")
        >>> round(float(at.compute_loss(f, 3.0 * f)), 6)  # scale-invariant
        0.0
        >>> 0.0 < float(at.compute_loss(f, f[..., :3])) < 0.1  # fewer student channels
        True
    """

    def __init__(self, teacher_layer_name: str, student_layer_name: str, p: float = 2.0) -> None:
        if teacher_layer_name is None or student_layer_name is None:
            raise DistillationConfigError(
                "expected AttentionTransfer to name a feature-map layer in both models. Received: "
                f"teacher_layer_name={teacher_layer_name!r}, student_layer_name={student_layer_name!r}."
            )
        check_layer_names("AttentionTransfer", teacher_layer_name, student_layer_name)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0:
            raise DistillationConfigError(
                f"expected `p` of AttentionTransfer to be a number > 0. Received: p={p!r}. "
                "Use p=2.0 as in the paper."
            )
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.p = float(p)

    def validate_model_compatibility(self, teacher: keras.Model, student: keras.Model) -> None:
        t_shape = feature_shape(teacher, self.teacher_layer_name, "teacher", "AttentionTransfer")
        s_shape = feature_shape(student, self.student_layer_name, "student", "AttentionTransfer")
        if len(t_shape) < 3 or len(s_shape) < 3:
            raise DistillationConfigError(
                "expected AttentionTransfer layers with (batch, ..., channels) feature maps of "
                f"rank >= 3. Received: teacher {self.teacher_layer_name!r} {t_shape}, student "
                f"{self.student_layer_name!r} {s_shape}. Pick Conv1D/Conv2D outputs, or use "
                "RelationalDistillation for vectors."
            )
        if spatial_mismatch(t_shape, s_shape):
            raise DistillationConfigError(
                "expected AttentionTransfer layers with the same spatial dims. Received: "
                f"teacher {self.teacher_layer_name!r} {t_shape}, student "
                f"{self.student_layer_name!r} {s_shape}. Pick layers at the same resolution."
            )

    def _attention(self, features: Any) -> Any:
        features = ops.cast(features, "float32")
        amap = ops.mean(ops.power(ops.abs(features), self.p), axis=-1)
        amap = ops.reshape(amap, (ops.shape(amap)[0], -1))
        norm = ops.sqrt(ops.sum(ops.square(amap), axis=1, keepdims=True))
        return amap / (norm + _EPS)

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """Mean over the batch of the squared distance between normalised maps."""
        diff = self._attention(teacher_outputs) - self._attention(student_outputs)
        return ops.mean(ops.sum(ops.square(diff), axis=1))

    def get_config(self) -> dict[str, Any]:
        return {
            "teacher_layer_name": self.teacher_layer_name,
            "student_layer_name": self.student_layer_name,
            "p": self.p,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AttentionTransfer:
        return cls(**config)
