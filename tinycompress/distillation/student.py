"""Derive a smaller student from a teacher's architecture."""

from __future__ import annotations

import math

import keras

from tinycompress.core import KERNEL_TABLE, layer_kernels, rewrite, walk_layers
from tinycompress.distillation.errors import DistillationConfigError

__all__ = ["derive_student", "WIDTH_SCALED_LAYERS"]

_WIDTH_KINDS = ("dense", "conv", "separable")
#: Layer types whose width `derive_student` scales, and the config key it scales
#: (the Dense and convolution rows of `tinycompress.core.KERNEL_TABLE`).
WIDTH_SCALED_LAYERS: dict[type, str] = {
    cls: row.width for cls, row in KERNEL_TABLE.items() if row.kind in _WIDTH_KINDS
}

# Layers that keep the shape of their input; they belong to the weight layer before them.
_SHAPE_PRESERVING = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.BatchNormalization,
    keras.layers.Dropout,
)


def _width_key(layer: keras.layers.Layer) -> str | None:
    row = layer_kernels(layer)
    return row.width if row is not None and row.kind in _WIDTH_KINDS else None


def _check_multiplier(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise DistillationConfigError(
            f"expected `{name}` in (0, 1]. Received: {name}={value!r}. A student is never wider "
            "or deeper than its teacher; pass e.g. 0.25."
        )
    return float(value)


def _scaled(layer: keras.layers.Layer, width: float, keep: bool) -> keras.layers.Layer:
    config = layer.get_config()
    # A frozen teacher (keras.distillation.Distiller freezes it) must not give a frozen student.
    config["trainable"] = True
    key = _width_key(layer)
    if key is not None and not keep:
        config[key] = max(1, round(config[key] * width))
    return type(layer).from_config(config)


def _removable_blocks(model: keras.Sequential, last_width_layer: keras.layers.Layer) -> list[list[int]]:
    """Index groups [weight layer, its shape-preserving followers] that keep the shape."""
    layers = model.layers
    blocks = []
    for i, layer in enumerate(layers):
        if _width_key(layer) is None or layer is last_width_layer:
            continue
        if tuple(layer.input.shape) != tuple(layer.output.shape):
            continue
        block = [i]
        for j in range(i + 1, len(layers)):
            if not isinstance(layers[j], _SHAPE_PRESERVING):
                break
            block.append(j)
        blocks.append(block)
    return blocks


def derive_student(
    teacher: keras.Model,
    width_multiplier: float = 0.5,
    depth_multiplier: float = 1.0,
    *,
    name: str | None = None,
) -> keras.Model:
    """Build a freshly initialised, narrower (and optionally shallower) copy of `teacher`.

    Every Dense, Conv and SeparableConv layer (see `WIDTH_SCALED_LAYERS`;
    nested models included) gets ``round(width * width_multiplier)`` units
    or filters (at least 1), except the last one, which produces the output
    and keeps its width. Layer names are kept, so feature losses can name the
    same layer in both models. With ``depth_multiplier < 1`` (Sequential models
    only) the trailing blocks that keep their input shape (a weight layer with
    equal input and output shapes, plus the BatchNorm/activation/dropout
    layers right after it) are dropped so that ``ceil(n * depth_multiplier)``
    of the ``n`` such blocks remain.

    Args:
        teacher: a built Sequential or Functional model.
        width_multiplier: scale of units/filters, in (0, 1]. Default 0.5.
        depth_multiplier: share of shape-preserving blocks kept, in (0, 1].
            Default 1.0.
        name: name of the new model; default ``teacher.name + "_student"``.

    Returns:
        A new, uncompiled, trainable model with the same input and output
        shapes (even when the teacher is frozen).

    Raises:
        DistillationConfigError: a multiplier outside (0, 1], a subclassed
            teacher, depth scaling on a non-Sequential model, or a teacher
            without any layer that `derive_student` can scale.

    Example:
        >>> import keras
        >>> hidden = [keras.layers.Dense(64, activation="relu") for _ in range(3)]
        >>> teacher = keras.Sequential([keras.Input((16,)), *hidden, keras.layers.Dense(4)])
        >>> student = derive_student(teacher, width_multiplier=0.25, depth_multiplier=0.5)
        >>> [layer.units for layer in student.layers]
        [16, 16, 4]
        >>> teacher.count_params(), student.count_params()
        (9668, 612)
    """
    width = _check_multiplier("width_multiplier", width_multiplier)
    depth = _check_multiplier("depth_multiplier", depth_multiplier)
    if not isinstance(teacher, keras.Model) or getattr(teacher, "inputs", None) is None:
        raise DistillationConfigError(
            "expected a built Sequential or Functional keras.Model as teacher. Received: "
            f"{type(teacher).__name__}. Build subclassed students by hand."
        )
    width_layers = [layer for layer in walk_layers(teacher) if _width_key(layer) is not None]
    if not width_layers:
        raise DistillationConfigError(
            f"teacher {teacher.name!r} has no layer of the types {sorted(c.__name__ for c in WIDTH_SCALED_LAYERS)} "
            "to scale. Build the student by hand."
        )
    last = width_layers[-1]
    name = name or f"{teacher.name}_student"

    dropped: set[int] = set()

    def scaled(layer: keras.layers.Layer):
        if isinstance(layer, keras.Model):
            return None  # rewritten layer by layer
        return [] if id(layer) in dropped else _scaled(layer, width, layer is last)

    if depth == 1.0:
        return rewrite(teacher, scaled, name=name)

    if not isinstance(teacher, keras.Sequential):
        raise DistillationConfigError(
            f"expected a Sequential teacher for depth_multiplier < 1. Received a "
            f"{type(teacher).__name__} model {teacher.name!r}. Use depth_multiplier=1.0 and "
            "width scaling, or build the shallower student by hand."
        )
    blocks = _removable_blocks(teacher, last)
    keep = math.ceil(len(blocks) * depth)
    dropped.update(id(teacher.layers[i]) for block in blocks[keep:] for i in block)
    return rewrite(teacher, scaled, name=name)
