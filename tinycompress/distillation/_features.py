"""Shared checks for losses that read intermediate feature maps."""

from __future__ import annotations

import keras

from tinycompress.distillation.errors import DistillationConfigError


def check_layer_names(loss_name: str, teacher_layer_name: object, student_layer_name: object) -> None:
    """Both names are strings, or (when `None` is allowed by the caller) both None."""
    for role, value in (("teacher_layer_name", teacher_layer_name), ("student_layer_name", student_layer_name)):
        if value is not None and (not isinstance(value, str) or not value):
            raise DistillationConfigError(
                f"expected `{role}` of {loss_name} to be a layer name. Received: {value!r}."
            )
    if (teacher_layer_name is None) != (student_layer_name is None):
        raise DistillationConfigError(
            f"expected {loss_name} to name a layer in both models or in neither. Received: "
            f"teacher_layer_name={teacher_layer_name!r}, student_layer_name={student_layer_name!r}. "
            "Name both layers, or neither to use the final outputs."
        )


def feature_shape(model: keras.Model, layer_name: str | None, role: str, loss_name: str) -> tuple:
    """Output shape of `layer_name` in `model` (the model output when None)."""
    if getattr(model, "inputs", None) is None:
        raise DistillationConfigError(
            f"{loss_name} needs a Functional or Sequential {role}; {model.name!r} has no "
            "symbolic inputs. Rebuild it with keras.Input(...)."
        )
    if layer_name is None:
        return tuple(model.outputs[0].shape)
    try:
        layer = model.get_layer(name=layer_name)
    except ValueError as e:
        names = [layer.name for layer in model.layers]
        raise DistillationConfigError(
            f"{loss_name}: the {role} {model.name!r} has no layer {layer_name!r}. "
            f"Its layers are {names}; pass one of them."
        ) from e
    return tuple(layer.output.shape)


def spatial_mismatch(teacher_shape: tuple, student_shape: tuple) -> bool:
    """True when the non-batch, non-channel dims differ (None matches anything)."""
    if len(teacher_shape) != len(student_shape):
        return True
    return any(
        t is not None and s is not None and t != s
        for t, s in zip(teacher_shape[1:-1], student_shape[1:-1])
    )
