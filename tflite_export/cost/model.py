"""Per-operator instruction model: features of an `OpRecord` and a least-squares fit.

The instructions one TFLM kernel executes grow with the work its shapes imply.
Each operator family has a short, fixed feature list:

* convolutions (``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``TRANSPOSE_CONV``): a
  constant, MACs, MACs on the input rather than the padding (the reference
  kernels skip padded taps; CMSIS-NN's im2col computes them), output elements
  (requantization), input elements (padding copies), output channels (per-channel multiplier setup), filter taps per
  output element (``out * k_h * k_w``: the reference kernels' bounds check per
  tap), the input patch per output pixel (``pixels * k_h * k_w * in_c``:
  CMSIS-NN's im2col copy), the taps per output pixel (``pixels * k_h * k_w``:
  one im2col copy call per tap, whatever its length; a depthwise convolution
  makes one per block of 124 channels), the MACs with the
  reduction rounded up to whole vector lanes (``lane_macs``: a CONV_2D's
  ``k_h * k_w * in_c`` to 16 int8 lanes, the MVE dot product; a depthwise
  convolution's channels to 4 int32 lanes) and the outputs of pixels left
  over from groups of 4 (``lone_out``: the MVE matrix product takes 4 pixels
  at a time, then the rest one by one; once per output row for a strided 1x1
  convolution, once per op otherwise; a depthwise convolution's left-over
  pixels count their taps on 4-lane channel groups);
* ``FULLY_CONNECTED``: a constant, MACs, output and input elements;
* pooling: a constant, MACs (window reads), output elements, both with the
  channels rounded up to 16 int8 lanes (``lane_out``, ``lane_macs``: the MVE
  kernels walk the channels one 16-lane vector at a time), and the window
  taps over all channels at once (``taps``: CMSIS-NN's max pooling makes one
  call per tap);
* everything else (element-wise, activations, softmax, data movement): a
  constant, input elements and output elements.

A table is fitted per (op, input dtype) within one (kernel library, rig CPU),
and per CMSIS-NN code path where the probes measured enough rows of it (`op_keys`),
table by non-negative least squares on relative residuals (each row divided by
its measured count, so a 200-instruction op weighs as much as a 2M one). Non-
negative coefficients keep the estimate monotone in every feature, MACs
included. The fit is plain numpy (`nnls`).

Example:
    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> nnls(a, np.array([2.0, -1.0, 1.0])).round(3).tolist()
    [1.5, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tflite_export.cost.records import OpRecord

__all__ = ["FEATURES", "OpFit", "feature_names", "features", "find_fit", "fit_op", "nnls", "op_keys"]

_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV")
_POOLS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
#: Channels CMSIS-NN's MVE depthwise kernel copies per im2col call (its ``CH_IN_BLOCK_MVE``).
_CHANNEL_BLOCK = 124

#: Feature names per operator family (``"other"`` for every op not listed).
FEATURES: dict[str, tuple[str, ...]] = {
    "conv": ("one", "macs", "valid_macs", "out", "in", "out_c", "taps", "patch", "pixel_taps",
             "lane_macs", "lone_out"),
    "fc": ("one", "macs", "out", "in"),
    "pool": ("one", "macs", "out", "lane_out", "lane_macs", "taps"),
    "other": ("one", "in", "out"),
}


def _family(op: str) -> str:
    if op in _CONVS:
        return "conv"
    if op == "FULLY_CONNECTED":
        return "fc"
    return "pool" if op in _POOLS else "other"


def feature_names(op: str) -> tuple[str, ...]:
    """The feature names of ``op``'s family (see the module docstring)."""
    return FEATURES[_family(op)]


def _variant(record: OpRecord) -> str | None:
    """The CMSIS-NN code path a convolution takes, when it is not the general one.

    ``1x1``: a 1x1 CONV_2D at stride 1 (no im2col: one matrix product); ``1x1s``: a
    strided 1x1 CONV_2D (no im2col: one matrix product per output row); ``cin<4``: a CONV_2D on
    fewer than 4 input channels (im2col patches too short for the 4-wide DSP
    loop); ``mult``: a depthwise convolution with a channel multiplier above 1
    (the generic kernel); ``3x3``: a 3x3 depthwise convolution (its own fast kernel).
    """
    shapes = record.input_shapes
    if len(shapes) < 2 or shapes[0] is None or shapes[1] is None or len(shapes[1]) != 4:
        return None
    if record.op == "CONV_2D" and shapes[1][1:3] == (1, 1):
        strided = max(record.options.get("stride_h", 1), record.options.get("stride_w", 1)) > 1
        return "1x1s" if strided else "1x1"
    if record.op == "CONV_2D" and shapes[1][3] < 4:
        return "cin<4"
    if record.op == "DEPTHWISE_CONV_2D" and shapes[1][3] > shapes[0][-1]:
        return "mult"
    if record.op == "DEPTHWISE_CONV_2D" and shapes[1][1:3] == (3, 3):
        return "3x3"
    return None


def op_keys(record: OpRecord) -> tuple[str, ...]:
    """The keys a table fits and looks up for ``record``, most specific first.

    ``"<op>/<dtype of input 0>"``, preceded by ``"<op>[<path>]/<dtype>"`` when
    the op takes a special kernel path (see `_variant`).

    Example:
        >>> from tflite_export.cost.records import op_records
        >>> from tflite_export.testing import tiny_model
        >>> op_keys(op_records(tiny_model())[0])
        ('FULLY_CONNECTED/int8',)
    """
    dtype = next((d for d in record.input_dtypes if d is not None), "none")
    variant = _variant(record)
    base = f"{record.op}/{dtype}"
    return (f"{record.op}[{variant}]/{dtype}", base) if variant else (base,)


def find_fit(fits, record: OpRecord):
    """The entry of ``fits`` (a mapping by key) for ``record``'s most specific key, or None."""
    return next((fits[k] for k in op_keys(record) if k in fits), None)


def _elements(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape is not None else 0


def _inside(n_in: int, n_out: int, k: int, stride: int, dilation: int, same: bool) -> float:
    """Fraction of a filter's taps along one axis that fall inside the input (not padding)."""
    span = (k - 1) * dilation + 1
    pad = max((n_out - 1) * stride + span - n_in, 0) // 2 if same else 0
    inside = sum(1 for o in range(n_out) for t in range(k)
                 if 0 <= o * stride - pad + t * dilation < n_in)
    return inside / (n_out * k) if n_out * k else 1.0


def _valid_fraction(record: OpRecord) -> float:
    """Share of a 2-D convolution's MACs that read the input rather than padding."""
    x, w = record.input_shapes[0], record.input_shapes[1]
    y = record.output_shapes[0]
    if record.op == "TRANSPOSE_CONV" or x is None or len(x) != 4 or len(y) != 4:
        return 1.0
    o = record.options
    same = o.get("padding") == "SAME"
    return (_inside(x[1], y[1], w[1], o.get("stride_h", 1), o.get("dilation_h", 1), same)
            * _inside(x[2], y[2], w[2], o.get("stride_w", 1), o.get("dilation_w", 1), same))


def _round_up(n: int, lanes: int) -> int:
    return -(-n // lanes) * lanes


def _conv_values(record: OpRecord, out_shape: Sequence[int]) -> dict[str, float]:
    """The convolution-only features (zero when the filter shape is unknown)."""
    w = record.input_shapes[1] if len(record.input_shapes) > 1 else None
    names = ("taps", "patch", "valid_macs", "pixel_taps", "lane_macs", "lone_out")
    if record.op not in _CONVS or w is None or len(w) != 4 or not out_shape:
        return dict.fromkeys(names, 0.0)
    out, out_c = _elements(out_shape), out_shape[-1]
    pixels = out // out_c
    window = w[1] * w[2]
    copies = pixels * window
    if record.op == "DEPTHWISE_CONV_2D":  # vectors run across channels, one tap at a time
        reduction, lane_macs = window, pixels * window * _round_up(out_c, 4)
        copies *= -(-out_c // _CHANNEL_BLOCK)
    else:  # vectors run along the k_h * k_w * in_c reduction of each output element
        reduction = window * w[3]
        lane_macs = out * _round_up(reduction, 16)
    strided = max(record.options.get("stride_h", 1), record.options.get("stride_w", 1)) > 1
    if record.op == "DEPTHWISE_CONV_2D":  # a left-over pixel walks its taps 4 channels at a time
        lone = (pixels % 4) * window * _round_up(out_c, 4)
    elif record.op == "CONV_2D" and window == 1 and strided:  # one product per output row
        lone = (out_shape[-2] % 4) * (pixels // out_shape[-2]) * out_c
    else:
        lone = (pixels % 4) * out_c
    return {"lone_out": float(lone), "taps": float(out * window), "patch": float(pixels * reduction),
            "valid_macs": record.macs * _valid_fraction(record), "pixel_taps": float(copies),
            "lane_macs": float(lane_macs)}


def _pool_values(record: OpRecord, out_shape: Sequence[int] | None) -> dict[str, float]:
    if record.op not in _POOLS or not out_shape:
        return {"lane_out": 0.0, "lane_macs": 0.0, "taps": 0.0}
    widen = _round_up(out_shape[-1], 16) / out_shape[-1]
    return {"lane_out": _elements(out_shape) * widen, "lane_macs": record.macs * widen,
            "taps": record.macs / out_shape[-1]}


def features(record: OpRecord) -> np.ndarray:
    """The feature vector of one operator, in `feature_names` order.

    Args:
        record: the operator.

    Returns:
        float64 vector.

    Example:
        >>> from tflite_export.cost.records import op_records
        >>> from tflite_export.testing import tiny_model
        >>> features(op_records(tiny_model())[0]).tolist()
        [1.0, 32.0, 8.0, 4.0]
    """
    out_shape = record.output_shapes[0] if record.output_shapes else None
    values = {
        "one": 1.0,
        "macs": float(record.macs),
        "out": float(_elements(out_shape)),
        "in": float(_elements(record.input_shapes[0] if record.input_shapes else None)),
        "out_c": float(out_shape[-1]) if out_shape else 0.0,
        **_conv_values(record, out_shape),
    }
    if record.op in _POOLS:
        values.update(_pool_values(record, out_shape))
    return np.array([values[name] for name in feature_names(record.op)], dtype=np.float64)


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Non-negative least squares, ``argmin ||a x - b||`` with ``x >= 0`` (Lawson-Hanson).

    Args:
        a: (m, n) matrix.
        b: (m,) vector.
        max_iter: iteration cap. Default None: ``10 * n``.

    Returns:
        The (n,) solution.
    """
    m, n = a.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 1e-10 * max(1.0, float(np.abs(a).max(initial=0.0))) * max(m, n)
    for _ in range(max_iter or 10 * n):
        w = a.T @ (b - a @ x)
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > tol
    return x


@dataclass(frozen=True)
class OpFit:
    """The fitted instruction model of one (op, dtype) in one table.

    Attributes:
        key: ``"<op>/<dtype>"`` or ``"<op>[<path>]/<dtype>"`` (`op_keys`).
        features: feature names.
        coef: one non-negative coefficient per feature (instructions per unit).
        rows: measured rows fitted.
        fit_rel_rms: RMS relative residual on the fitted rows.
    """

    key: str
    features: tuple[str, ...]
    coef: tuple[float, ...]
    rows: int
    fit_rel_rms: float

    def predict(self, record: OpRecord) -> float:
        """Estimated instructions of ``record`` (same op and dtype)."""
        return float(features(record) @ np.asarray(self.coef))

    def to_dict(self) -> dict:
        """JSON-ready fields (coefficients rounded to 6 significant digits)."""
        return {"features": list(self.features), "coef": [float(f"{c:.6g}") for c in self.coef],
                "rows": self.rows, "fit_rel_rms": round(self.fit_rel_rms, 4)}

    @classmethod
    def from_dict(cls, key: str, d: dict) -> OpFit:
        """The inverse of `to_dict`."""
        return cls(key, tuple(d["features"]), tuple(float(c) for c in d["coef"]), int(d["rows"]),
                   float(d["fit_rel_rms"]))


def fit_op(key: str, records: Sequence[OpRecord], instructions: Sequence[int]) -> OpFit:
    """Fit one (op, dtype) on measured rows by non-negative relative least squares.

    Each row is divided by its measured count (relative residuals), then each
    column by its largest entry, so that MAC counts in the millions and the
    constant term are equally conditioned.

    Args:
        key: a key of `op_keys` every record shares.
        records: the measured operators (at least one).
        instructions: measured instructions per record (> 0).

    Returns:
        The `OpFit`.
    """
    x = np.stack([features(r) for r in records])
    y = np.asarray(instructions, dtype=np.float64)
    # rows in a canonical order: collinear features (a depthwise convolution's im2col copies
    # and patch agree below 124 channels) then get the same solution whatever the input order
    order = np.lexsort(np.column_stack([x, y]).T)
    x, y = x[order], y[order]
    a = x / y[:, None]
    scale = np.abs(a).max(axis=0)
    scale[scale == 0] = 1.0
    coef = nnls(a / scale, np.ones_like(y)) / scale
    rel = x @ coef / y - 1.0
    return OpFit(key, feature_names(records[0].op), tuple(float(c) for c in coef), len(y),
                 float(np.sqrt(np.mean(rel ** 2))))
