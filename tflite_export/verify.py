"""Check an exported model on TFLM against LiteRT, op by op, and against the float model.

The two runtimes round requantized values differently (TFLM's reference
kernels, like CMSIS-NN, round twice; LiteRT's wheel rounds once), so a
requantized tensor may differ by 1 LSB, and those differences add up through
the layers of a deep model. Comparing outputs end to end would therefore refuse
correct models. `verify` compares each op with identical inputs instead: TFLM
runs the model and keeps every intermediate tensor, and LiteRT runs each op
alone (a single-op model cut out of the model, see `tflite_export.op_models`)
on TFLM's input tensors for that op. Each op is held to its own tolerance
(0 LSB where nothing is requantized, ``max_lsb`` where it is, more for
SOFTMAX/LOGISTIC/TANH by their slope); an op beyond it is refused by name.
The end-to-end difference at the outputs (the drift) is reported, not refused.

The float comparison reports, per output, max and mean absolute error of the
dequantized TFLM outputs, and the argmax agreement for outputs that are class
scores (see `output_tasks`).

`verify_identical` proves a rewrite (slimming, LUT compression) changed no
output bit on TFLM.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.errors import InputError, VerificationError
from tflite_export.io_details import input_details, output_details, quantize
from tflite_export.progress import Progress, report
from tflite_export.op_models import SLOPES, lsb_unit, op_tolerance, single_op_models
from tflite_export.runtime import DEFAULT_TIMEOUT_S, call_worker, run_tflm
from tflite_export.validate import validate
from tflite_export.verify_report import TASKS, OpCheck, OutputCheck, VerifyReport, output_tasks

__all__ = [
    "VerifyReport",
    "OpCheck",
    "OutputCheck",
    "verify",
    "verify_identical",
    "output_tolerances",
    "output_tasks",
    "TASKS",
    "DEFAULT_MAX_LSB",
]

#: LSBs by which TFLM and LiteRT may differ on a requantized tensor (rounding).
DEFAULT_MAX_LSB = 1

# Float tensors without a quantization grid are compared relative to their size.
_FLOAT_RELATIVE_LSB = 1e-5


def output_tolerances(model: bytes, max_lsb: int = DEFAULT_MAX_LSB) -> list[int]:
    """TFLM/LiteRT difference tolerated at each output's last op, in output LSBs.

    ``max_lsb`` for most outputs. An output made by SOFTMAX, LOGISTIC or TANH
    turns an input difference of ``max_lsb`` into at most ``max_lsb * slope *
    input_scale / output_scale`` output LSBs (plus its own rounding), so that
    is its tolerance. `verify` holds each op to this rule given identical
    inputs (see `tflite_export.op_models.op_tolerance`).

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
        q_in = sg.tensors[int(op.inputs[0])].quantization if name in SLOPES else None
        q_out = sg.tensors[int(t)].quantization
        if q_in is None or q_in.scale is None or q_out is None or q_out.scale is None:
            tolerances.append(max_lsb)
            continue
        slope = SLOPES[name] * (op.builtinOptions.beta if name == "SOFTMAX" else 1.0)
        gain = slope * float(q_in.scale[0]) / float(q_out.scale[0])
        tolerances.append(max_lsb + int(np.ceil(max_lsb * gain)))
    return tolerances


def _as_list(y) -> list[np.ndarray]:
    return [np.asarray(a) for a in (y if isinstance(y, list) else [y])]


def _quantize_all(x, model: bytes) -> list[np.ndarray]:
    xs = x if isinstance(x, (list, tuple)) else [x]
    if len(xs) != len(input_details(model)):
        raise InputError(
            f"the model has {len(input_details(model))} input(s) but {len(xs)} "
            "array(s) were given; pass one array per input."
        )
    return [quantize(a, model, i) for i, a in enumerate(xs)]


def _elements(shape) -> int:
    return int(np.prod([int(d) for d in shape[1:]]))


def _tensor_label(sg, t: int) -> str:
    name = sg.tensors[t].name
    name = name.decode(errors="replace") if isinstance(name, bytes) else (name or "")
    return name or f"tensor {t} (unnamed)"


def _in_lsb(diff: np.ndarray, unit: float, magnitude: np.ndarray) -> np.ndarray:
    """Differences in LSBs; a float tensor without a grid relative to its magnitude."""
    if unit == 1.0:
        return np.rint(diff).astype(np.int64)
    step = unit if unit > 0 else _FLOAT_RELATIVE_LSB * np.maximum(magnitude, 1e-30)
    return np.ceil(diff / step - 1e-6).astype(np.int64)


def _check_op(m, op, arrays: dict, max_lsb: int, error: str | None) -> OpCheck:
    """One `OpCheck` from the worker's per-op differences; refuse beyond tolerance."""
    sg = m.subgraphs[0]
    out0 = op.outputs[0] if op.outputs else -1
    label = _tensor_label(sg, out0) if out0 >= 0 else "no output"
    if op.model is None or error is not None:
        why = op.reason or f"LiteRT cannot run it alone: {error}"
        return OpCheck(op.index, op.opcode, label, out0, None, None, "not checked", None, why)
    tolerance, rule = op_tolerance(m, op.index, max_lsb)
    worst = OpCheck(op.index, op.opcode, label, out0, 0, tolerance, rule, None)
    j = op.index
    for k, t in enumerate(op.outputs):
        if f"op{j}_d{k}" not in arrays:
            continue
        lsb = _in_lsb(arrays[f"op{j}_d{k}"], lsb_unit(m, t), arrays[f"op{j}_m{k}"])
        s = int(np.argmax(lsb))
        if lsb[s] <= worst.max_lsb_diff:
            continue
        e = int(arrays[f"op{j}_e{k}"][s])
        worst = OpCheck(op.index, op.opcode, _tensor_label(sg, t), t, int(lsb[s]), tolerance,
                        rule, (s, e))
        if lsb[s] > tolerance:
            a, b = arrays[f"op{j}_a{k}"][s], arrays[f"op{j}_b{k}"][s]
            raise VerificationError(
                f"op {op.index} {op.opcode} (output tensor {worst.tensor} {worst.output!r}): "
                f"TFLM and LiteRT disagree by {int(lsb[s])} LSB (more than the {tolerance} "
                f"tolerated, rule {rule!r}) at sample {s}, element {e}, given the same input "
                "tensors: TFLM "
                f"{a:g}, LiteRT {b:g}. The two kernels compute this op differently, so the "
                "device may not compute what the model means: report the model to "
                "tinycompress. If the accuracy on TFLM is right and you accept the "
                "difference, raise max_lsb (export: verify_max_lsb, CLI: --verify-max-lsb)."
            )
    return worst


def _run_checks(model: bytes, reference: bytes, xq, ops, timeout_s: float):
    """One child process: TFLM intermediates, LiteRT on each op and end to end.

    Returns the worker's arrays (per-op keys ``op{index}_...``) and op index ->
    why LiteRT could not run that op alone.
    """
    runnable = [op for op in ops if op.model is not None]
    blobs = [np.frombuffer(op.model, np.uint8) for op in runnable]
    if reference != model:
        validate(model)
        blobs.append(np.frombuffer(model, np.uint8))
    arrays, meta, _ = call_worker(
        reference,
        "verify_ops",
        [*xq, *blobs],
        n_model_inputs=len(xq),
        model_outputs=[d.index for d in output_details(reference)],
        ops=[{"index": op.index, "inputs": list(op.inputs), "outputs": list(op.outputs)}
             for op in runnable],
        arena_size=8 * 1024 * 1024 + 4 * max(len(model), len(reference)),
        timeout_s=timeout_s,
    )
    for k in range(len(output_details(model))):
        a, b = arrays[f"tflm{k}"], arrays.get(f"reference{k}", arrays[f"tflm{k}"])
        if a.shape != b.shape or not np.array_equal(a, b):
            s, e = (int(v) for v in np.argwhere(a != b)[0]) if a.shape == b.shape else (0, 0)
            raise VerificationError(
                f"TFLM computes output {k} of the model differently from litert_model (its "
                f"original) at sample {s}, element {e}; the model is not an exact rewrite "
                "of it. Export without the rewrite (slim=False, lut=False) and report the model."
            )
    return arrays, {int(j): msg for j, msg in meta["op_errors"].items()}


def _check_float_outputs(float_outputs, model: bytes, n: int) -> list:
    """The float outputs as one array per model output, or Nones; shapes checked."""
    details = output_details(model)
    if float_outputs is None:
        return [None] * len(details)
    ref = _as_list(float_outputs)
    if len(ref) != len(details) or any(
        r.size != n * _elements(d.shape) for r, d in zip(ref, details)
    ):
        raise InputError(
            f"float_outputs must hold one array per model output ({len(details)}), each with "
            f"{n} samples of the output's shape {[tuple(d.shape[1:]) for d in details]}; "
            f"received shapes {[r.shape for r in ref]}."
        )
    return ref


def _output_checks(model, reference, arrays, ref, tasks, max_lsb):
    """Per-output drift (TFLM vs LiteRT) and agreement with the float outputs ``ref``."""
    m = fb.unpack(reference)
    details = output_details(model)
    tolerances = output_tolerances(reference, max_lsb)
    named = output_details(reference)  # an unslimmed original keeps the names
    rows, where, worst_all = [], None, 0
    for k, d in enumerate(details):
        d = dataclasses.replace(d, name=d.name or named[k].name)
        tflm = arrays[f"tflm{k}"].reshape(len(arrays[f"tflm{k}"]), -1)
        litert = arrays[f"litert{k}"].reshape(len(tflm), -1).astype(np.float64)
        diff = np.abs(tflm.astype(np.float64) - litert)
        mag = np.abs(litert).max(axis=1, keepdims=True) if litert.size else litert
        lsb = _in_lsb(diff, lsb_unit(m, named[k].index), mag)
        at = np.unravel_index(int(np.argmax(lsb)), lsb.shape) if lsb.size else (0, 0)
        worst = int(lsb[at]) if lsb.size else 0
        if worst > worst_all:
            worst_all, where = worst, (int(at[0]), k, int(at[1]))
        rows.append(OutputCheck.measure(k, d, tasks[k], tflm, ref[k], worst, tolerances[k]))
    return rows, where


def verify(
    model: bytes,
    x_float,
    *,
    float_outputs=None,
    max_lsb: int = DEFAULT_MAX_LSB,
    litert_model: bytes | None = None,
    task: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
) -> VerifyReport:
    """Verify every op of a model on TFLM against LiteRT, and the outputs against float.

    TFLM runs the model and keeps every intermediate tensor; LiteRT runs each
    op alone on TFLM's input tensors for that op. All of it happens in one
    child process.

    Args:
        model: `.tflite` flatbuffer bytes.
        x_float: float input samples (samples first), or a list per input.
        float_outputs: the float model's outputs for the same samples (array or
            list per output). Default None: skip the float comparison.
        max_lsb: tolerated TFLM/LiteRT difference of a requantized op given the
            same inputs, in LSBs; ops that requantize nothing get 0, squashing
            ops more (see `tflite_export.op_models`). Default 1.
        litert_model: the model the per-op check and LiteRT run instead of
            ``model``, with the same outputs: LiteRT has no kernel for TFLM's
            DECODE, so a LUT-compressed model is checked through its
            uncompressed original; an unslimmed original also gives tensor
            names for error messages. Default None: ``model`` itself.
        task: ``"auto"``, ``"classification"`` or ``"regression"``: whether
            outputs are class scores (argmax agreement is reported) or values
            (only absolute errors); see `output_tasks`. Default "auto".
        timeout_s: seconds the child process may run. Default 300.
        progress: called as ``progress("verifying on TFLM and LiteRT", done, 1)``
            before and after the child process runs (see
            `tflite_export.progress`). Default None.

    Returns:
        A `VerifyReport` with per-op rows, the end-to-end drift and the float
        error metrics.

    Raises:
        VerificationError: an op's TFLM and LiteRT outputs differ by more than
            its tolerance given the same inputs (naming the op).
        ModelFormatError: a model is malformed.
        RuntimeCheckError: a runtime failed, crashed or timed out.

    Example:
        >>> import numpy as np, tflite_export
        >>> x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
        >>> r = tflite_export.verify(tflite_export.testing.tiny_model(), x)
        >>> r.max_lsb_diff, [(o.opcode, o.max_lsb_diff <= o.tolerance) for o in r.ops]
        (0, [('FULLY_CONNECTED', True), ('FULLY_CONNECTED', True)])
    """
    if task not in TASKS:
        raise InputError(f"expected task in {TASKS}. Received: task={task!r}.")
    reference = litert_model or model
    validate(reference)
    xq = _quantize_all(x_float, model)
    ref = _check_float_outputs(float_outputs, model, len(xq[0]))
    ops = single_op_models(reference)
    report(progress, "verifying on TFLM and LiteRT", 0, 1)
    arrays, errors = _run_checks(model, reference, xq, ops, timeout_s)
    report(progress, "verifying on TFLM and LiteRT", 1, 1)
    m = fb.unpack(reference)
    checks = tuple(_check_op(m, op, arrays, max_lsb, errors.get(op.index)) for op in ops)
    outputs, where = _output_checks(model, reference, arrays, ref,
                                    output_tasks(reference, task), max_lsb)
    return VerifyReport.collect(len(xq[0]), checks, outputs, float_outputs is not None, where)


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
