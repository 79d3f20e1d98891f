"""FitNets hint learning (Romero et al. 2015) with a trainable projection adapter."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tinycompress.distillation._features import check_layer_names, feature_shape, spatial_mismatch
from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["HintDistillation"]


@keras.saving.register_keras_serializable(package="tinycompress")
class HintDistillation(keras.layers.Layer, keras.distillation.DistillationLoss):
    """Regress a teacher feature map from a student feature map through an adapter.

    The student's features (batch, ..., c_s) go through a learned linear
    projection to the teacher's channel count c_t (a 1x1 convolution, applied
    on the last axis) and the mean squared error to the teacher's features is
    the loss. The adapter is created when the `keras.distillation.Distiller` is
    built, so it is tracked by the distiller, trained by its optimizer and
    saved with it; it is never part of the student, so the exported student
    carries no adapter (and no teacher) weights.

    Args:
        teacher_layer_name: name of the teacher layer giving the hint.
        student_layer_name: name of the student layer being guided; it must
            have the same spatial (or time) dims.
        use_adapter: project student features to the teacher's channels. When
            False the channel counts must already match. Default True.
        name: layer name. Default None (derived by Keras).
        **kwargs: other `keras.layers.Layer` keywords.

    Raises:
        DistillationConfigError: missing layer names, or (when the distiller is
            built) a missing layer, different spatial dims, or different
            channel counts with ``use_adapter=False``.

    Example:
        >>> import numpy as np
        >>> hint = HintDistillation("t_conv", "s_conv")
        >>> hint.build_adapter(teacher_channels=8, student_channels=3)
        >>> tuple(hint.adapter.kernel.shape)
        (3, 8)
        >>> f_s = np.zeros((2, 4, 4, 3), "float32"); f_t = np.ones((2, 4, 4, 8), "float32")
        >>> float(hint.compute_loss(f_t, f_s))  # adapter has a zero bias at start
        1.0
    """

    def __init__(
        self,
        teacher_layer_name: str,
        student_layer_name: str,
        use_adapter: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if teacher_layer_name is None or student_layer_name is None:
            raise DistillationConfigError(
                "expected HintDistillation to name a layer in both models. Received: "
                f"teacher_layer_name={teacher_layer_name!r}, student_layer_name={student_layer_name!r}."
            )
        check_layer_names("HintDistillation", teacher_layer_name, student_layer_name)
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.use_adapter = bool(use_adapter)
        self.adapter: keras.layers.Dense | None = None

    def build_adapter(self, teacher_channels: int, student_channels: int) -> None:
        """Create the projection from `student_channels` to `teacher_channels`.

        Called by `validate_model_compatibility` when the distiller is built;
        call it yourself only to use the loss outside a distiller.
        """
        if self.adapter is None:
            self.adapter = keras.layers.Dense(teacher_channels, name="hint_adapter")
            self.adapter.build((None, student_channels))
        self.built = True

    def validate_model_compatibility(self, teacher: keras.Model, student: keras.Model) -> None:
        t_shape = feature_shape(teacher, self.teacher_layer_name, "teacher", "HintDistillation")
        s_shape = feature_shape(student, self.student_layer_name, "student", "HintDistillation")
        if spatial_mismatch(t_shape, s_shape) or len(t_shape) < 2:
            raise DistillationConfigError(
                "expected HintDistillation layers with the same spatial dims. Received: teacher "
                f"{self.teacher_layer_name!r} {t_shape}, student {self.student_layer_name!r} "
                f"{s_shape}. Pick layers at the same resolution."
            )
        if self.use_adapter:
            self.build_adapter(t_shape[-1], s_shape[-1])
        elif t_shape[-1] != s_shape[-1]:
            raise DistillationConfigError(
                f"expected equal channel counts with use_adapter=False. Received: teacher "
                f"{t_shape[-1]}, student {s_shape[-1]}. Set use_adapter=True."
            )

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any) -> Any:
        """Mean squared error between teacher features and projected student features."""
        student_outputs = ops.cast(student_outputs, "float32")
        if self.use_adapter:
            if self.adapter is None:
                raise DistillationConfigError(
                    "HintDistillation's adapter is not built yet. Pass the loss to a "
                    "keras.distillation.Distiller (which builds it), or call build_adapter()."
                )
            student_outputs = self.adapter(student_outputs)
        return ops.mean(ops.square(ops.cast(teacher_outputs, "float32") - student_outputs))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "teacher_layer_name": self.teacher_layer_name,
            "student_layer_name": self.student_layer_name,
            "use_adapter": self.use_adapter,
        }
