"""Relational knowledge distillation (RKD, Park et al. 2019) as a Keras loss."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tinycompress.distillation._features import check_layer_names, feature_shape
from tinycompress.distillation._validate import check_weight
from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["RelationalDistillation"]

_EPS = 1e-8


def _flatten(x: Any) -> Any:
    x = ops.cast(x, "float32")
    return ops.reshape(x, (ops.shape(x)[0], -1))


def _smooth_l1(a: Any, b: Any) -> Any:
    diff = ops.abs(a - b)
    return ops.mean(ops.where(diff < 1.0, 0.5 * ops.square(diff), diff - 0.5))


def _normalized_distances(e: Any) -> Any:
    sq = ops.sum(ops.square(e), axis=1)
    d2 = ops.expand_dims(sq, 1) + ops.expand_dims(sq, 0) - 2.0 * ops.matmul(e, ops.transpose(e))
    d = ops.sqrt(ops.maximum(d2, _EPS))
    off_diagonal = 1.0 - ops.eye(ops.shape(e)[0], dtype="float32")
    d = d * off_diagonal
    mean = ops.sum(d) / ops.maximum(ops.sum(off_diagonal), 1.0)
    return d / (mean + _EPS)


def _angles(e: Any) -> Any:
    # unit vectors from sample i to sample j: (B, B, D); angle[i, j, k] = <u_ij, u_ik>
    diff = ops.expand_dims(e, 0) - ops.expand_dims(e, 1)
    norm = ops.sqrt(ops.sum(ops.square(diff), axis=-1, keepdims=True))
    unit = diff / (norm + _EPS)
    return ops.matmul(unit, ops.transpose(unit, (0, 2, 1)))


@keras.saving.register_keras_serializable(package="tinycompress")
class RelationalDistillation(keras.distillation.DistillationLoss):
    """Match the pairwise structure of a batch of teacher and student embeddings.

    Each sample's features are flattened to a vector. The distance term
    compares the batch's pairwise Euclidean distances, each divided by their
    mean; the angle term compares the cosines of the angles formed by every
    triple of samples. Both use the smooth-L1 (Huber) penalty. Only relations
    are compared, so teacher and student widths may differ freely: no adapter.

    Args:
        teacher_layer_name: teacher layer to read; None (default) uses the
            final outputs (logits) of both models.
        student_layer_name: student layer to read; None exactly when
            `teacher_layer_name` is None. Default None.
        distance_weight: weight of the distance term, >= 0. Default 1.0.
        angle_weight: weight of the angle term, >= 0 (costs batch**3 memory
            per feature). Default 2.0.

    Raises:
        DistillationConfigError: only one layer named, negative or non-finite
            weights, both weights 0, or (when the distiller is built) a
            missing layer.

    Example:
        >>> import numpy as np
        >>> t = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
        >>> rkd = RelationalDistillation()
        >>> round(float(rkd.compute_loss(t, 5.0 * t)), 6)  # same geometry, other scale
        0.0
        >>> float(rkd.compute_loss(t, t[::-1])) > 0.01  # pairs no longer match
        True
    """

    def __init__(
        self,
        teacher_layer_name: str | None = None,
        student_layer_name: str | None = None,
        distance_weight: float = 1.0,
        angle_weight: float = 2.0,
    ) -> None:
        check_layer_names("RelationalDistillation", teacher_layer_name, student_layer_name)
        self.distance_weight = check_weight("distance_weight", distance_weight)
        self.angle_weight = check_weight("angle_weight", angle_weight)
        if self.distance_weight == 0 and self.angle_weight == 0:
            raise DistillationConfigError(
                "expected RelationalDistillation to have distance_weight or angle_weight > 0. "
                "Received both 0. Use distance_weight=1.0, angle_weight=2.0 as in the paper."
            )
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name

    def validate_model_compatibility(self, teacher: keras.Model, student: keras.Model) -> None:
        if self.teacher_layer_name is not None:
            feature_shape(teacher, self.teacher_layer_name, "teacher", "RelationalDistillation")
            feature_shape(student, self.student_layer_name, "student", "RelationalDistillation")

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """Weighted sum of the RKD distance and angle terms over the batch."""
        t, s = _flatten(teacher_outputs), _flatten(student_outputs)
        loss = ops.zeros((), dtype="float32")
        if self.distance_weight > 0:
            loss += self.distance_weight * _smooth_l1(_normalized_distances(s), _normalized_distances(t))
        if self.angle_weight > 0:
            loss += self.angle_weight * _smooth_l1(_angles(s), _angles(t))
        return loss

    def get_config(self) -> dict[str, Any]:
        return {
            "teacher_layer_name": self.teacher_layer_name,
            "student_layer_name": self.student_layer_name,
            "distance_weight": self.distance_weight,
            "angle_weight": self.angle_weight,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RelationalDistillation:
        return cls(**config)
