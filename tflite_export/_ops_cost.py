"""Multiply-accumulate counts and the role of each operator input.

Private tables used by `tflite_export.inspect`. Shapes are those stored in the
flatbuffer (batch included). What one MAC means per operator:

* ``CONV_2D``: ``batch * out_h * out_w * out_c * k_h * k_w * in_c / groups``
  (the filter's last axis already holds ``in_c / groups``);
* ``DEPTHWISE_CONV_2D``: output elements ``* k_h * k_w``;
* ``FULLY_CONNECTED``: output elements ``* in_features`` (``batch * out * in``);
* ``TRANSPOSE_CONV``: input elements ``* k_h * k_w * out_c``;
* ``BATCH_MATMUL``: output elements ``*`` the contracted dimension;
* ``AVERAGE_POOL_2D``, ``MAX_POOL_2D``, ``L2_POOL_2D``: output elements ``*``
  window size;
* ``MEAN``, ``SUM``: input elements (one accumulation each);
* ``UNIDIRECTIONAL_SEQUENCE_LSTM``: per sample and time step, the four gates'
  input and recurrent products ``4 * cell * (in + out)`` plus the three
  products of the cell update ``3 * cell``;
* element-wise arithmetic (``ADD``, ``SUB``, ``MUL``, ``DIV``, ``SQUARED_DIFFERENCE``,
  ``MAXIMUM``, ``MINIMUM``, ``PRELU``): output elements;
* everything else (activations, softmax, reshapes, (de)quantize, padding,
  concatenation...): 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["WEIGHT_INPUTS", "OUT_CHANNEL_AXIS", "SHAPE_INPUTS", "DECODE_CUSTOM_CODE", "macs"]

#: Input positions that hold the weights and bias of parametric operators.
WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "CONV_2D": (1, 2),
    "DEPTHWISE_CONV_2D": (1, 2),
    "FULLY_CONNECTED": (1, 2),
    "TRANSPOSE_CONV": (1, 3),
}

#: Axis of the weight tensor (first weight input) that indexes output channels.
OUT_CHANNEL_AXIS: dict[str, int] = {
    "CONV_2D": 0,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 0,
    "TRANSPOSE_CONV": 0,
}

#: Input positions whose constants describe shapes, axes or paddings, not
#: learned values; their bytes are overhead, not weights.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "RESHAPE": (1,),
    "PAD": (1,),
    "PADV2": (1,),
    "MIRROR_PAD": (1,),
    "STRIDED_SLICE": (1, 2, 3),
    "SLICE": (1, 2),
    "TRANSPOSE": (1,),
    "EXPAND_DIMS": (1,),
    "SQUEEZE": (1,),
    "MEAN": (1,),
    "SUM": (1,),
    "REDUCE_MAX": (1,),
    "REDUCE_MIN": (1,),
    "REDUCE_ALL": (1,),
    "ARG_MAX": (1,),
    "ARG_MIN": (1,),
    "CUMSUM": (1,),
    "REVERSE_V2": (1,),
    "RESIZE_BILINEAR": (1,),
    "RESIZE_NEAREST_NEIGHBOR": (1,),
    "SPLIT": (0,),
    "SPLIT_V": (1, 2),
    "TRANSPOSE_CONV": (0,),
    "BROADCAST_TO": (1,),
    "BROADCAST_ARGS": (0, 1),
    "FILL": (0,),
    "SPACE_TO_BATCH_ND": (1, 2),
    "BATCH_TO_SPACE_ND": (1, 2),
    "GATHER": (1,),
}

#: Custom code of TFLM's DECODE operator: its constant inputs are encoded
#: weights (flash bytes), and the weights it produces are counted at their consumer.
DECODE_CUSTOM_CODE = "TFLM_DECODE"

_ELEMENTWISE = {"ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "PRELU"}
_POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
_REDUCTIONS = {"MEAN", "SUM"}


def _shape(shapes: Sequence[tuple[int, ...] | None], i: int, rank: int) -> tuple[int, ...] | None:
    if i >= len(shapes) or shapes[i] is None or len(shapes[i]) < rank:
        return None
    return shapes[i]


def macs(
    op: str,
    input_shapes: Sequence[tuple[int, ...] | None],
    output_shapes: Sequence[tuple[int, ...] | None],
    options: object | None = None,
) -> int:
    """Multiply-accumulates of one operator (see the module docstring).

    Args:
        op: builtin operator name.
        input_shapes: shape per input position (None for an omitted optional input).
        output_shapes: shape per output.
        options: the operator's builtin options object (pool window, matmul
            adjoint flags). Default None.

    Returns:
        The MAC count; 0 for operators that are not counted or whose shapes
        are not what the operator needs.
    """
    out = _shape(output_shapes, 0, 0)
    n_out = math.prod(out) if out is not None else 0
    if op == "CONV_2D":
        w = _shape(input_shapes, 1, 4)
        return n_out * w[1] * w[2] * w[3] if w else 0
    if op == "DEPTHWISE_CONV_2D":
        w = _shape(input_shapes, 1, 4)
        return n_out * w[1] * w[2] if w else 0
    if op == "FULLY_CONNECTED":
        w = _shape(input_shapes, 1, 2)
        return n_out * w[-1] if w else 0
    if op == "TRANSPOSE_CONV":
        w, x = _shape(input_shapes, 1, 4), _shape(input_shapes, 2, 0)
        return math.prod(x) * w[0] * w[1] * w[2] if w and x is not None else 0
    if op == "BATCH_MATMUL":
        lhs = _shape(input_shapes, 0, 2)
        if lhs is None:
            return 0
        adj_x = bool(getattr(options, "adjX", False))
        return n_out * (lhs[-2] if adj_x else lhs[-1])
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        w_in, w_rec = _shape(input_shapes, 2, 2), _shape(input_shapes, 6, 2)
        if not (w_in and w_rec and out):
            return 0
        cell = w_in[0]
        return n_out // out[-1] * (4 * cell * (w_in[1] + w_rec[1]) + 3 * cell)
    if op in _POOLS:
        h, w = (int(getattr(options, f, 0)) for f in ("filterHeight", "filterWidth"))
        return n_out * max(h, 0) * max(w, 0)
    if op in _REDUCTIONS:
        x = _shape(input_shapes, 0, 0)
        return math.prod(x) if x is not None else 0
    if op in _ELEMENTWISE:
        return n_out
    return 0
