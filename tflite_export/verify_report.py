"""What `tflite_export.verify` found: per-op rows, drift, and error against float.

`output_tasks` decides which outputs are class scores (argmax agreement with
the float model is meaningful) and which are values (regression, autoencoder
reconstructions: only absolute errors are). Rule for ``task="auto"``, per
output: class scores when its last dimension is above 1, it is not the size of
a model input (a reconstruction), and it is made by SOFTMAX or by a
FULLY_CONNECTED/CONV_2D/... without a fused activation (logits), looking
through RESHAPE, SQUEEZE, QUANTIZE and DEQUANTIZE; values otherwise. Pass
``task="classification"`` or ``"regression"`` to `verify` to decide for all
outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tflite_export import _flatbuffer as fb

__all__ = ["TASKS", "OpCheck", "OutputCheck", "VerifyReport", "output_tasks"]

#: Accepted values of ``task``.
TASKS = ("auto", "classification", "regression")

_PASS_THROUGH = {"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE"}
_LOGIT_OPS = {"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "ADD", "MEAN"}


def _elements(shape) -> int:
    return int(np.prod([int(d) for d in shape[1:]])) if len(shape) > 1 else 1


def output_tasks(model: bytes, task: str = "auto") -> list[str]:
    """``"classification"`` or ``"regression"`` for each model output.

    Args:
        model: `.tflite` flatbuffer bytes.
        task: ``"auto"`` (the rule in the module docstring), or a value that
            applies to every output. Default "auto".

    Returns:
        One task per output.

    Example:
        >>> import tflite_export
        >>> output_tasks(tflite_export.testing.tiny_model())
        ['classification']
    """
    m = fb.unpack(model)
    sg = m.subgraphs[0]
    if task != "auto":
        return [task] * len(sg.outputs)
    producers = {int(t): op for op in sg.operators for t in op.outputs}
    input_sizes = {_elements(sg.tensors[int(t)].shape) for t in sg.inputs}
    tasks = []
    for t in sg.outputs:
        shape = [int(d) for d in sg.tensors[int(t)].shape]
        op, name = producers.get(int(t)), ""
        while op is not None:
            name = fb.op_name(m.operatorCodes[op.opcodeIndex])
            if name not in _PASS_THROUGH:
                break
            op = producers.get(int(op.inputs[0]))
        fused = getattr(op.builtinOptions, "fusedActivationFunction", 0) if op is not None else 0
        scores = name == "SOFTMAX" or (name in _LOGIT_OPS and not fused)
        is_scores = bool(shape) and shape[-1] > 1 and _elements(shape) not in input_sizes and scores
        tasks.append("classification" if is_scores else "regression")
    return tasks


@dataclass(frozen=True)
class OpCheck:
    """One op run alone on TFLM and LiteRT with TFLM's own input tensors.

    Attributes:
        index: operator index in subgraph 0.
        opcode: builtin name, e.g. ``"FULLY_CONNECTED"``.
        output: the output tensor's name (or ``tensor N (unnamed)``).
        tensor: the output tensor's index.
        max_lsb_diff: largest |TFLM - LiteRT| over samples and outputs, in
            LSBs (None when the op was not checked).
        tolerance: LSBs allowed for this op (None when not checked).
        rule: ``"exact"``, ``"requantized"``, ``"slope"`` or ``"not checked"``.
        at: (sample, flat element) of the largest difference, or None.
        note: why the op was not checked ("" when it was).
    """

    index: int
    opcode: str
    output: str
    tensor: int
    max_lsb_diff: int | None
    tolerance: int | None
    rule: str
    at: tuple[int, int] | None
    note: str = ""


@dataclass(frozen=True)
class OutputCheck:
    """One model output: drift between the runtimes and error against float.

    Attributes:
        index: output position.
        name: tensor name ("" when slimmed).
        task: ``"classification"`` (class scores) or ``"regression"`` (values).
        drift_lsb: largest end-to-end |TFLM - LiteRT|, in output LSBs.
        drift_tolerance: what one op's rounding alone could explain at this
            output (`output_tolerances`); drift beyond it is rounding carried
            through layers, reported, not refused.
        argmax_agreement: fraction of samples whose TFLM argmax equals the
            float model's (classification only, else None).
        max_abs_error: largest |dequantized TFLM - float| (None without float).
        mean_abs_error: mean |dequantized TFLM - float| (None without float).
        float_range: (min, max) of the float outputs (None without float).
    """

    index: int
    name: str
    task: str
    drift_lsb: int
    drift_tolerance: int
    argmax_agreement: float | None = None
    max_abs_error: float | None = None
    mean_abs_error: float | None = None
    float_range: tuple[float, float] | None = None

    @classmethod
    def measure(cls, k, detail, task, tflm, ref, drift, tolerance) -> "OutputCheck":
        """Compare raw TFLM outputs (samples, elements) with float outputs ``ref``.

        ``detail`` is the output's `TensorIO`; ``drift`` and ``tolerance`` are
        stored as they are.
        """
        row = cls(k, detail.name, task, drift, tolerance)
        if ref is None:
            return row
        y = tflm.astype(np.float32)
        if detail.quantized:
            y = (y - detail.zero_point) * np.float32(detail.scale)
        r = np.asarray(ref, np.float32).reshape(len(y), -1)
        err = np.abs(y - r)
        agree = None
        if task == "classification":
            agree = float(np.mean(np.argmax(y, -1) == np.argmax(r, -1)))
        return cls(k, detail.name, task, drift, tolerance, agree, float(err.max()),
                   float(err.mean()), (float(r.min()), float(r.max())))


@dataclass(frozen=True)
class VerifyReport:
    """What verification found.

    Attributes:
        samples: number of samples run.
        max_lsb_diff: end-to-end drift: largest |TFLM - LiteRT| over all
            outputs, in LSBs (rounding carried through layers; not refused).
        lsb_diff_at: (sample, output, flat element) of that difference, or None.
        argmax_agreement: argmax agreement with the float model of the first
            class-score output (None without float outputs or class scores).
        max_abs_error: largest |dequantized TFLM - float| over all outputs
            (None without float outputs).
        mean_abs_error: mean of the outputs' mean |dequantized TFLM - float|
            (None without float outputs).
        ops: one `OpCheck` per operator.
        outputs: one `OutputCheck` per model output.
    """

    samples: int
    max_lsb_diff: int
    lsb_diff_at: tuple[int, int, int] | None
    argmax_agreement: float | None
    max_abs_error: float | None
    mean_abs_error: float | None = None
    ops: tuple[OpCheck, ...] = ()
    outputs: tuple[OutputCheck, ...] = ()

    @classmethod
    def collect(cls, samples: int, ops, outputs, with_float: bool, where=None) -> "VerifyReport":
        """Summarize per-op and per-output rows into one report.

        ``where`` is the (sample, output, element) of the largest drift.
        """
        worst = max(outputs, key=lambda o: o.drift_lsb, default=None)
        drift = worst.drift_lsb if worst is not None else 0
        scores = [o for o in outputs if o.argmax_agreement is not None]
        max_err = mean_err = None
        if with_float and outputs:
            max_err = max(o.max_abs_error for o in outputs)
            mean_err = float(np.mean([o.mean_abs_error for o in outputs]))
        return cls(samples, drift, where if drift else None,
                   scores[0].argmax_agreement if scores else None, max_err, mean_err,
                   tuple(ops), tuple(outputs))

    @property
    def max_op_lsb_diff(self) -> int:
        """Largest per-op difference given the same inputs, in LSBs."""
        return max((o.max_lsb_diff for o in self.ops if o.max_lsb_diff is not None), default=0)

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the fields."""
        return asdict(self)

    def summary(self) -> str:
        """One line for a console: per-op result, drift, and agreement with float."""
        checked = [o for o in self.ops if o.max_lsb_diff is not None]
        line = (f"TFLM vs LiteRT: {len(checked)}/{len(self.ops)} ops checked alone, each within "
                f"tolerance (largest {self.max_op_lsb_diff} LSB); end-to-end drift "
                f"{self.max_lsb_diff} LSB over {self.samples} samples")
        if self.argmax_agreement is not None:
            line += f"; argmax agreement with float {self.argmax_agreement:.1%}"
        elif self.max_abs_error is not None:
            line += (f"; abs error vs float max {self.max_abs_error:.4g}, "
                     f"mean {self.mean_abs_error:.4g}")
        return line

    def to_markdown(self) -> str:
        """A ``## Verification`` section: summary lines, outputs, and a per-op table."""
        checked = [o for o in self.ops if o.max_lsb_diff is not None]
        lines = [
            "## Verification", "",
            f"- samples: {self.samples}",
            f"- each op run alone on TFLM and LiteRT with the same input tensors (TFLM's): "
            f"{len(checked)} of {len(self.ops)} checked, all within tolerance "
            f"(largest {self.max_op_lsb_diff} LSB)",
            f"- end-to-end drift TFLM vs LiteRT: max {self.max_lsb_diff} LSB"
            + (f" at (sample, output, element) {self.lsb_diff_at}" if self.lsb_diff_at else "")
            + " (rounding differences carried through layers; reported, not refused)",
        ]
        for o in self.outputs:
            lines.append(f"- {_output_line(o)}")
        lines += ["", "| op | opcode | output | max LSB | tolerance | rule |",
                  "|---|---|---|---|---|---|"]
        for o in self.ops:
            diff = "-" if o.max_lsb_diff is None else str(o.max_lsb_diff)
            tol = o.note if o.tolerance is None else str(o.tolerance)
            name = o.output.replace("|", "\\|")
            lines.append(f"| {o.index} | {o.opcode} | {name} | {diff} | {tol} | {o.rule} |")
        return "\n".join(lines) + "\n"


def _output_line(o: OutputCheck) -> str:
    kind = "class scores" if o.task == "classification" else "values"
    text = f"output {o.index}{f' `{o.name}`' if o.name else ''} ({kind}): drift {o.drift_lsb} LSB"
    if o.max_abs_error is None:
        return text
    if o.argmax_agreement is not None:
        text += f", argmax agreement with the float model {o.argmax_agreement:.2%}"
    lo, hi = o.float_range
    return (text + f", abs error vs float max {o.max_abs_error:.6g}, mean "
            f"{o.mean_abs_error:.6g} (float outputs in [{lo:.4g}, {hi:.4g}])")
