"""Check an exported model on TFLM against LiteRT and against the float model.

`verify` runs the same quantized inputs through TFLM and LiteRT (reference
kernels) and compares them in LSBs, and compares the dequantized TFLM outputs
with the float model's outputs when given. The two runtimes round requantized
values differently (TFLM's reference kernels, like CMSIS-NN, round twice;
LiteRT's wheel rounds once), so a tensor may differ by 1 LSB; an output made by
SOFTMAX, LOGISTIC or TANH may differ by as much as its input's tolerated
difference can move it (see `output_tolerances`).
`verify_identical` proves a rewrite (slimming, LUT compression) changed no
output bit on TFLM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.errors import VerificationError
from tflite_export.io_details import dequantize, input_details, quantize
from tflite_export.progress import Progress, report
from tflite_export.runtime import run_litert, run_tflm

__all__ = ["VerifyReport", "verify", "verify_identical", "output_tolerances", "DEFAULT_MAX_LSB"]

#: LSBs by which TFLM and LiteRT may differ on a requantized tensor (rounding).
DEFAULT_MAX_LSB = 1

# Largest total slope of each squashing op: sum over inputs of |d output / d input|
# (softmax: 2 p (1 - p) <= 1/2 per unit of beta * logit; logistic 1/4; tanh 1).
_SLOPES = {"SOFTMAX": 0.5, "LOGISTIC": 0.25, "TANH": 1.0}


def output_tolerances(model: bytes, max_lsb: int = DEFAULT_MAX_LSB) -> list[int]:
    """TFLM/LiteRT difference tolerated at each output, in output LSBs.

    ``max_lsb`` for most outputs. An output made by SOFTMAX, LOGISTIC or TANH
    turns an input difference of ``max_lsb`` into at most ``max_lsb * slope *
    input_scale / output_scale`` output LSBs (plus its own rounding), so that
    is its tolerance.

    Args:
        model: `.tflite` flatbuffer bytes.
        max_lsb: tolerated difference of a requantized tensor. Default 1.

    Returns:
        One tolerance per model output.

    Example:
        >>> import tflite_export
        >>> output_tolerances(tflite_export.testing.tiny_model())
        [1]
    """
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    producers = {int(op.outputs[0]): op for op in sg.operators if len(op.outputs)}
    tolerances = []
    for t in sg.outputs:
        op = producers.get(int(t))
        name = fb.op_name(m.operatorCodes[op.opcodeIndex]) if op is not None else ""
        q_in = sg.tensors[int(op.inputs[0])].quantization if name in _SLOPES else None
        q_out = sg.tensors[int(t)].quantization
        if q_in is None or q_in.scale is None or q_out is None or q_out.scale is None:
            tolerances.append(max_lsb)
            continue
        slope = _SLOPES[name] * (op.builtinOptions.beta if name == "SOFTMAX" else 1.0)
        gain = slope * float(q_in.scale[0]) / float(q_out.scale[0])
        tolerances.append(max_lsb + int(np.ceil(max_lsb * gain)))
    return tolerances


@dataclass(frozen=True)
class VerifyReport:
    """What verification found.

    Attributes:
        samples: number of samples run.
        max_lsb_diff: largest |TFLM - LiteRT| over all outputs, in LSBs.
        lsb_diff_at: (sample, output, flat element) of that difference, or None.
        argmax_agreement: fraction of samples whose TFLM argmax equals the float
            model's (None without float outputs).
        max_abs_error: largest |dequantized TFLM - float| (None without float
            outputs).
    """

    samples: int
    max_lsb_diff: int
    lsb_diff_at: tuple[int, int, int] | None
    argmax_agreement: float | None
    max_abs_error: float | None

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the fields."""
        return asdict(self)


def _as_list(y) -> list[np.ndarray]:
    return [np.asarray(a) for a in (y if isinstance(y, list) else [y])]


def _quantize_all(x, model: bytes) -> list[np.ndarray]:
    xs = x if isinstance(x, (list, tuple)) else [x]
    if len(xs) != len(input_details(model)):
        raise ValueError(
            f"the model has {len(input_details(model))} input(s) but {len(xs)} "
            "array(s) were given; pass one array per input."
        )
    return [quantize(a, model, i) for i, a in enumerate(xs)]


def verify(
    model: bytes,
    x_float,
    *,
    float_outputs=None,
    max_lsb: int = DEFAULT_MAX_LSB,
    litert_model: bytes | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Run a model on TFLM and LiteRT and compare with each other and with float.

    Args:
        model: `.tflite` flatbuffer bytes.
        x_float: float input samples (samples first), or a list per input.
        float_outputs: the float model's outputs for the same samples (array or
            list per output). Default None: skip the float comparison.
        max_lsb: tolerated TFLM/LiteRT difference of a requantized tensor, in
            LSBs; squashing outputs get more (see `output_tolerances`). Default 1.
        litert_model: the model LiteRT runs instead of ``model``: LiteRT has no
            kernel for TFLM's DECODE, so a LUT-compressed model is compared with
            its uncompressed original. Default None: ``model`` itself.
        progress: called as ``progress("verifying on TFLM and LiteRT", done, 2)``
            before and after each runtime (see `tflite_export.progress`).
            Default None.

    Returns:
        A `VerifyReport`.

    Raises:
        VerificationError: TFLM and LiteRT differ by more than tolerated.

    Example:
        >>> import numpy as np, tflite_export
        >>> x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
        >>> tflite_export.verify(tflite_export.testing.tiny_model(), x).max_lsb_diff
        0
    """
    xq = _quantize_all(x_float, model)
    report(progress, "verifying on TFLM and LiteRT", 0, 2)
    tflm = _as_list(run_tflm(model, xq))
    report(progress, "verifying on TFLM and LiteRT", 1, 2)
    litert = _as_list(run_litert(litert_model or model, xq))
    report(progress, "verifying on TFLM and LiteRT", 2, 2)
    worst, where = 0, None
    for k, (a, b, allowed) in enumerate(zip(tflm, litert, output_tolerances(model, max_lsb))):
        d = np.abs(a.astype(np.int64) - b.astype(np.int64)).reshape(len(a), -1)
        if not d.size:
            continue
        s, e = np.unravel_index(int(np.argmax(d)), d.shape)
        if d[s, e] > worst:
            worst, where = int(d[s, e]), (int(s), k, int(e))
        if d[s, e] > allowed:
            raise VerificationError(
                f"TFLM and LiteRT disagree by {int(d[s, e])} LSB (more than the {allowed} "
                f"tolerated) at sample {s}, output {k}, element {e}: TFLM "
                f"{a.reshape(len(a), -1)[s, e]}, LiteRT {b.reshape(len(b), -1)[s, e]}. "
                "Their kernels round differently, which can add up in deep models: if the "
                "accuracy on TFLM is right, raise max_lsb (export: verify_max_lsb, CLI: "
                "--verify-max-lsb); otherwise a kernel differs, report the model to tinycompress."
            )
    agreement = max_err = None
    if float_outputs is not None:
        ref = _as_list(float_outputs)
        deq = [dequantize(y, model, k) for k, y in enumerate(tflm)]
        n = len(deq[0])
        a0, r0 = deq[0].reshape(n, -1), np.asarray(ref[0], np.float32).reshape(n, -1)
        agreement = float(np.mean(np.argmax(a0, -1) == np.argmax(r0, -1)))
        max_err = float(
            max(np.max(np.abs(d.reshape(n, -1) - np.asarray(r, np.float32).reshape(n, -1)))
                for d, r in zip(deq, ref))
        )
    return VerifyReport(len(xq[0]), worst, where if worst else None, agreement, max_err)


def verify_identical(model_a: bytes, model_b: bytes, x_float, *, what: str = "rewritten") -> int:
    """Prove two models give bit-identical TFLM outputs on the given samples.

    Args:
        model_a: reference `.tflite` bytes.
        model_b: the rewritten model (slimmed, LUT-compressed, ...).
        x_float: float samples, quantized with ``model_a``'s input parameters.
        what: how ``model_b`` was made, for the error message. Default "rewritten".

    Returns:
        Number of samples compared.

    Raises:
        VerificationError: naming the first sample and output element that differ.
    """
    xq = _quantize_all(x_float, model_a)
    ya = _as_list(run_tflm(model_a, xq))
    yb = _as_list(run_tflm(model_b, xq))
    for k, (a, b) in enumerate(zip(ya, yb)):
        if a.shape != b.shape or not np.array_equal(a, b):
            bad = np.argwhere(a.reshape(len(a), -1) != b.reshape(len(b), -1))
            s, e = (int(v) for v in bad[0]) if len(bad) else (0, 0)
            raise VerificationError(
                f"the {what} model's TFLM output {k} differs from the original at sample "
                f"{s}, element {e}; the rewrite is not exact. Export without it and report "
                "the model."
            )
    return len(xq[0])
