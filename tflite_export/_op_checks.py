"""Per-operator checks of `tflite_export.validate`: what TFLM's kernels assume.

TFLM's kernels trust the model: a convolution whose filter is not 4-D, a
fully connected op whose bias is not int32, a pooling window or stride of 0, an
options table of another operator, or a tensor of more than `MAX_RANK`
dimensions makes them read or write outside their buffers, divide by zero or
loop for a very long time. These checks refuse such models with the operator,
operand and rule named, before native code sees them:

* operand counts per operator (`_COUNTS`; ``-1`` inputs count as given);
* the options table matches the operator (`_OPTIONS`), and is present where
  the kernel reads strides, windows or dilations, which must be ``>= 1``;
* ranks: convolutions and pooling are 4-D (filter, input, output), a fully
  connected filter is 2-D, biases 1-D; every operand has rank ``<= MAX_RANK``;
* shapes that fit: output channels = filter channels = bias size for
  convolutions, input depth a multiple of the filter depth, fully connected
  input elements a multiple of the filter's input size and output elements =
  input rows times filter outputs, element-wise and
  unary ops keep the element count, pooling keeps the channels;
* types: integer kernels get the types they index with (int8/int16 data,
  int8/int4 filters, int32/int64 biases), element-wise ops keep the type, and
  operands are of types TFLM handles (`_TFLM_TYPES`);
* scales that TFLM's kernels assert on: quantized ADD/SUB need
  ``2 * max input scale < 2**20 * output scale`` (``2**15`` for int16), int8
  SOFTMAX needs ``beta * input scale * 2**26 > 1``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from tflite_export import _flatbuffer as fb

__all__ = ["MAX_RANK", "check_operator"]

#: Most dimensions a TFLM kernel handles (``RuntimeShape`` holds six).
MAX_RANK = 6

_TFLM_TYPES = {"FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64", "BOOL", "INT4", "UINT16",
               "UINT32", "FLOAT16", "INT2", "UINT4", "RESOURCE", "VARIANT"}

#: (min inputs, max inputs, min outputs, max outputs) per builtin operator.
_COUNTS: dict[str, tuple[int, int, int, int]] = {
    "CONV_2D": (2, 3, 1, 1), "DEPTHWISE_CONV_2D": (2, 3, 1, 1),
    "FULLY_CONNECTED": (2, 3, 1, 1), "TRANSPOSE_CONV": (3, 4, 1, 1),
    "AVERAGE_POOL_2D": (1, 1, 1, 1), "MAX_POOL_2D": (1, 1, 1, 1), "L2_POOL_2D": (1, 1, 1, 1),
    "SOFTMAX": (1, 1, 1, 1), "LOG_SOFTMAX": (1, 1, 1, 1), "LOGISTIC": (1, 1, 1, 1),
    "TANH": (1, 1, 1, 1), "RELU": (1, 1, 1, 1), "RELU6": (1, 1, 1, 1), "ELU": (1, 1, 1, 1),
    "HARD_SWISH": (1, 1, 1, 1), "LEAKY_RELU": (1, 1, 1, 1), "ABS": (1, 1, 1, 1),
    "NEG": (1, 1, 1, 1), "SQRT": (1, 1, 1, 1), "RSQRT": (1, 1, 1, 1), "SQUARE": (1, 1, 1, 1),
    "EXP": (1, 1, 1, 1), "LOG": (1, 1, 1, 1), "SIN": (1, 1, 1, 1), "COS": (1, 1, 1, 1),
    "FLOOR": (1, 1, 1, 1), "CEIL": (1, 1, 1, 1), "ROUND": (1, 1, 1, 1),
    "QUANTIZE": (1, 1, 1, 1), "DEQUANTIZE": (1, 1, 1, 1), "CAST": (1, 1, 1, 1),
    "ADD": (2, 2, 1, 1), "SUB": (2, 2, 1, 1), "MUL": (2, 2, 1, 1), "DIV": (2, 2, 1, 1),
    "MAXIMUM": (2, 2, 1, 1), "MINIMUM": (2, 2, 1, 1), "SQUARED_DIFFERENCE": (2, 2, 1, 1),
    "PRELU": (2, 2, 1, 1), "RESHAPE": (1, 2, 1, 1), "SQUEEZE": (1, 1, 1, 1),
    "EXPAND_DIMS": (2, 2, 1, 1), "MEAN": (2, 2, 1, 1), "SUM": (2, 2, 1, 1),
    "REDUCE_MAX": (2, 2, 1, 1), "REDUCE_MIN": (2, 2, 1, 1), "PAD": (2, 3, 1, 1),
    "PADV2": (3, 3, 1, 1), "CONCATENATION": (1, 1 << 16, 1, 1), "TRANSPOSE": (2, 2, 1, 1),
    "ARG_MAX": (2, 2, 1, 1), "ARG_MIN": (2, 2, 1, 1), "SLICE": (3, 3, 1, 1),
    "STRIDED_SLICE": (4, 4, 1, 1), "GATHER": (2, 2, 1, 1), "SPLIT": (2, 2, 1, 1 << 16),
    "SPLIT_V": (3, 3, 1, 1 << 16), "PACK": (1, 1 << 16, 1, 1), "UNPACK": (1, 1, 1, 1 << 16),
    "BATCH_MATMUL": (2, 2, 1, 1), "RESIZE_BILINEAR": (2, 2, 1, 1),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1, 1), "SPACE_TO_DEPTH": (1, 1, 1, 1),
    "DEPTH_TO_SPACE": (1, 1, 1, 1), "ZEROS_LIKE": (1, 1, 1, 1), "FILL": (2, 2, 1, 1),
    "SELECT_V2": (3, 3, 1, 1), "L2_NORMALIZATION": (1, 1, 1, 1),
}

#: The builtin options table each operator's kernel reads.
_OPTIONS = {
    "CONV_2D": "Conv2DOptions", "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions", "TRANSPOSE_CONV": "TransposeConvOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions", "SOFTMAX": "SoftmaxOptions",
    "CONCATENATION": "ConcatenationOptions", "ADD": "AddOptions", "SUB": "SubOptions",
    "MUL": "MulOptions", "DIV": "DivOptions", "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions", "MEAN": "ReducerOptions", "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions", "PACK": "PackOptions",
    "UNPACK": "UnpackOptions", "STRIDED_SLICE": "StridedSliceOptions",
    "LEAKY_RELU": "LeakyReluOptions", "SPLIT": "SplitOptions", "GATHER": "GatherOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
}
#: Options fields that are divisors or window sizes: required and ``>= 1``.
_POSITIVE = {
    "CONV_2D": ("strideW", "strideH", "dilationWFactor", "dilationHFactor"),
    "DEPTHWISE_CONV_2D": ("strideW", "strideH", "dilationWFactor", "dilationHFactor"),
    "TRANSPOSE_CONV": ("strideW", "strideH"),
    "AVERAGE_POOL_2D": ("strideW", "strideH", "filterWidth", "filterHeight"),
    "MAX_POOL_2D": ("strideW", "strideH", "filterWidth", "filterHeight"),
    "L2_POOL_2D": ("strideW", "strideH", "filterWidth", "filterHeight"),
}
_OPTION_NAMES = {v: k for k, v in vars(fb.schema.BuiltinOptions).items() if not k.startswith("_")}
_SAME_SHAPE = {"SOFTMAX", "LOG_SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "ELU", "HARD_SWISH",
               "LEAKY_RELU", "ABS", "NEG", "SQRT", "RSQRT", "SQUARE", "EXP", "LOG", "SIN", "COS",
               "FLOOR", "CEIL", "ROUND", "QUANTIZE", "DEQUANTIZE", "CAST", "ZEROS_LIKE",
               "L2_NORMALIZATION", "RESHAPE", "SQUEEZE", "EXPAND_DIMS"}
_SAME_TYPE = _SAME_SHAPE - {"QUANTIZE", "DEQUANTIZE", "CAST", "SOFTMAX", "LOG_SOFTMAX"} | {
    "ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "CONCATENATION", "PAD", "PADV2",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "TRANSPOSE", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"}
_INTEGER_KERNEL = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
_BIAS_TYPES = {"INT8": {"INT32"}, "INT16": {"INT64", "INT32"}, "FLOAT32": {"FLOAT32"}}
# Float input with int8 filter is a hybrid op: well formed, refused later by
# `tflite_export.check_deployable` with its own message.
_FILTER_TYPES = {"INT8": {"INT8", "INT4"}, "INT16": {"INT8", "INT4"},
                 "FLOAT32": {"FLOAT32", "INT8"}}

Fail = Callable[[str], Exception]


def _rank(where: str, tensor, ranks: tuple[int, ...], fail: Fail) -> list[int]:
    shape = [int(d) for d in (tensor.shape if tensor.shape is not None else [])]
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise fail(f"{where} has shape {shape} (rank {len(shape)}); the kernel needs rank {want}")
    return shape


def _counts(where: str, name: str, ins: list[int], outs: list[int], fail: Fail) -> None:
    lo, hi, olo, ohi = _COUNTS.get(name, (0, 1 << 16, 0, 1 << 16))
    if not lo <= len(ins) <= hi or not olo <= len(outs) <= ohi:
        want_in = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi < 1 << 16 else f"at least {lo}"
        want_out = f"{olo}" if olo == ohi else f"at least {olo}"
        raise fail(f"{where} has {len(ins)} input(s) and {len(outs)} output(s); {name} takes "
                   f"{want_in} input(s) and {want_out} output(s)")
    if name in _COUNTS and any(i < 0 for i in ins[:lo]):
        raise fail(f"{where} omits a required input (inputs {ins}); only trailing optional "
                   "inputs may be -1")


def _options(where: str, name: str, op, fail: Fail) -> None:
    got = _OPTION_NAMES.get(op.builtinOptionsType, f"type {op.builtinOptionsType}")
    want = _OPTIONS.get(name)
    if want is not None and got != "NONE" and got != want:
        raise fail(f"{where} carries {got}, but {name} reads {want} (was the op code changed?)")
    fields = _POSITIVE.get(name, ())
    if fields and (got != want or op.builtinOptions is None):
        raise fail(f"{where} has no {want}; the kernel needs its {', '.join(fields)}")
    for field in fields:
        value = int(getattr(op.builtinOptions, field))
        if value < 1:
            raise fail(f"{where} has {field} = {value}; expected an integer >= 1")


def _conv(where: str, name: str, t: list, fail: Fail) -> None:
    x = _rank(f"{where} input 0", t[0], (4,), fail)
    w = _rank(f"{where} filter (input 1)", t[1], (4,), fail)
    y = _rank(f"{where} output", t[-1], (4,), fail)
    out_ch = w[0] if name == "CONV_2D" else w[3]
    if name == "CONV_2D" and (w[3] == 0 or x[3] % w[3]):
        raise fail(f"{where} input has {x[3]} channels, not a multiple of the filter depth {w[3]}")
    if y[3] != out_ch:
        raise fail(f"{where} output has {y[3]} channels but the filter {w} makes {out_ch}")
    if len(t) > 3 and t[2] is not None:
        b = _rank(f"{where} bias (input 2)", t[2], (1,), fail)
        if b[0] != out_ch:
            raise fail(f"{where} bias has {b[0]} entries for {out_ch} output channels")


def _fully_connected(where: str, t: list, fail: Fail) -> None:
    w = _rank(f"{where} filter (input 1)", t[1], (2,), fail)
    x = [int(d) for d in (t[0].shape if t[0].shape is not None else [])]
    if w[1] == 0 or math.prod(x) % w[1]:
        raise fail(f"{where} input has shape {x}, whose size is not a multiple of the filter's "
                   f"input size {w[1]} (filter {w})")
    y = [int(d) for d in (t[-1].shape if t[-1].shape is not None else [])]
    if not y or y[-1] != w[0]:
        raise fail(f"{where} output has shape {y}; the filter {w} makes {w[0]} outputs")
    rows = math.prod(x) // w[1]
    if math.prod(y) != rows * w[0]:
        raise fail(f"{where} output has shape {y}, but {rows} input row(s) of {w[1]} through "
                   f"the filter {w} make {rows * w[0]} elements")
    if len(t) > 3 and t[2] is not None:
        b = _rank(f"{where} bias (input 2)", t[2], (1,), fail)
        if b[0] != w[0]:
            raise fail(f"{where} bias has {b[0]} entries for {w[0]} outputs")


def _types(where: str, name: str, t: list, fail: Fail) -> None:
    kinds = [None if x is None else fb.tensor_type_name(x.type) for x in t]
    for pos, kind in enumerate(kinds):
        if kind is not None and kind not in _TFLM_TYPES:
            raise fail(f"{where} operand {pos} is {kind}, a type TFLM kernels do not handle")
    if name in _INTEGER_KERNEL:
        data = kinds[0] if name != "TRANSPOSE_CONV" else kinds[2]
        filt = kinds[1]
        if data not in _FILTER_TYPES or filt not in _FILTER_TYPES[data]:
            raise fail(f"{where} has {data} input and {filt} filter; TFLM runs "
                       "int8/int16 inputs with int8/int4 filters (or float32 with float32)")
        bias = kinds[2] if name != "TRANSPOSE_CONV" and len(kinds) > 3 else (
            kinds[3] if name == "TRANSPOSE_CONV" and len(kinds) > 4 else None)
        if bias is not None and bias not in _BIAS_TYPES[data]:
            raise fail(f"{where} has a {bias} bias for {data} input; expected "
                       f"{' or '.join(sorted(_BIAS_TYPES[data]))}")
        if kinds[-1] != data:
            raise fail(f"{where} output is {kinds[-1]} but its input is {data}")
    elif name in _SAME_TYPE:
        data = [k for k in kinds[:-1] if k is not None]
        if name in ("PAD", "PADV2", "TRANSPOSE", "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN",
                    "RESHAPE", "EXPAND_DIMS"):
            data = data[:1]
        if name == "PADV2":
            data = [kinds[0], kinds[2]]
        if any(k != kinds[-1] for k in data):
            raise fail(f"{where} mixes operand types {kinds[:-1]} -> {kinds[-1]}; {name} keeps "
                       "the type of its inputs")


def _shapes(where: str, name: str, t: list, fail: Fail) -> None:
    sizes = [None if x is None else math.prod(int(d) for d in (x.shape if x.shape is not None
                                                                 else [])) for x in t]
    if name in _SAME_SHAPE and sizes[0] != sizes[-1]:
        raise fail(f"{where} turns {sizes[0]} input elements into {sizes[-1]} output elements; "
                   f"{name} keeps the element count")
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        x = _rank(f"{where} input", t[0], (4,), fail)
        y = _rank(f"{where} output", t[-1], (4,), fail)
        if x[3] != y[3] or x[0] != y[0]:
            raise fail(f"{where} maps shape {x} to {y}; pooling keeps batch and channels")
    if name in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "DIV"):
        out = [int(d) for d in (t[-1].shape if t[-1].shape is not None else [])]
        for pos, x in enumerate(t[:2]):
            shape = [int(d) for d in (x.shape if x.shape is not None else [])]
            padded = [1] * (len(out) - len(shape)) + shape
            if len(shape) > len(out) or any(a not in (1, b) for a, b in zip(padded, out)):
                raise fail(f"{where} input {pos} has shape {shape}, which does not broadcast "
                           f"to the output shape {out}")


def _scale(tensor) -> float | None:
    q = tensor.quantization if tensor is not None else None
    return float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else None


def _requantization(where: str, name: str, op, t: list, fail: Fail) -> None:
    """Scale relations TFLM's kernels assert on (a failed check aborts the process)."""
    kind = fb.tensor_type_name(t[0].type) if t[0] is not None else None
    if name in ("ADD", "SUB") and kind in ("INT8", "INT16") and len(t) == 3:
        scales = [_scale(x) for x in t]
        if None in scales:
            return
        # The output multiplier must be < 1 (QuantizeMultiplierSmallerThanOneExp).
        left_shift = 20 if kind == "INT8" else 15
        multiplier = 2 * max(scales[:2]) / (2**left_shift * scales[2])
        if multiplier >= 1:
            raise fail(f"{where} has input scales {scales[0]:.3g} and {scales[1]:.3g} for output "
                       f"scale {scales[2]:.3g}: the requantization multiplier {multiplier:.3g} "
                       f"must be < 1 (2 * max input scale < 2**{left_shift} * output scale)")
    if name == "SOFTMAX" and kind == "INT8" and op.builtinOptions is not None:
        scale = _scale(t[0])
        beta = float(getattr(op.builtinOptions, "beta", 1.0))
        if scale is not None and not beta * scale * 2**26 > 1:
            raise fail(f"{where} has beta {beta:.3g} and input scale {scale:.3g}; TFLM's int8 "
                       "softmax needs beta * input scale * 2**26 > 1")


def check_operator(where: str, name: str, op, tensors: list, fail: Fail) -> None:
    """Check one operator against what TFLM's kernel for it assumes.

    Args:
        where: label for messages (subgraph, operator index and name).
        name: builtin operator name.
        op: the operator (`OperatorT`), its indices already range-checked.
        tensors: the subgraph's tensors (`TensorT`).
        fail: builds the exception to raise from a message.

    Raises:
        The exception ``fail`` builds, naming the operand and the rule.
    """
    ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
    outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    for role, idxs in (("input", ins), ("output", outs)):
        for pos, i in enumerate(idxs):
            if i >= 0 and tensors[i].shape is not None and len(tensors[i].shape) > MAX_RANK:
                raise fail(f"{where} {role} {pos} has rank {len(tensors[i].shape)}; TFLM kernels "
                           f"handle at most {MAX_RANK} dimensions")
    _counts(where, name, ins, outs, fail)
    _options(where, name, op, fail)
    if name not in _COUNTS or not outs:
        return
    t = [tensors[i] if i >= 0 else None for i in ins] + [tensors[outs[0]]]
    _types(where, name, t, fail)
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _conv(where, name, t, fail)
    elif name == "FULLY_CONNECTED":
        _fully_connected(where, t, fail)
    elif name == "TRANSPOSE_CONV":
        _rank(f"{where} output shape (input 0)", t[0], (1,), fail)
        _rank(f"{where} filter (input 1)", t[1], (4,), fail)
        _rank(f"{where} input 2", t[2], (4,), fail)
        _rank(f"{where} output", t[-1], (4,), fail)
    _shapes(where, name, t, fail)
    _requantization(where, name, op, t, fail)
