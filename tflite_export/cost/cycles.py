"""The cycle model: estimated instructions to silicon cycles, with one CPI per operator class.

Instructions counted under QEMU say how much work a kernel does, not how long
the silicon takes: that depends on where the operands come from. Two classes
of operators behave differently enough that one cycles-per-instruction (CPI)
factor per core cannot serve both:

* ``stream``: a matrix-vector ``FULLY_CONNECTED`` (one input row). Each
  constant weight is read exactly once per inference, straight from flash;
  there is no reuse for a cache or for registers to hide the flash wait
  states, so the kernel is bound by the memory system (MLPerf Tiny's anomaly
  detector is ten such layers with 264 KB of weights).
* ``compute``: every other operator, and the interpreter's own work.
  Convolutions reuse each weight over many output pixels and work on the SRAM
  arena, so they are bound by the MAC/ALU pipeline; element-wise ops, pooling
  and data movement work on the arena too.

``cycles = CPI_compute x instructions(compute) + CPI_stream x instructions(stream)``
(`cycles`). Both CPIs of a core are calibrated on published silicon latencies
(`calibrate_cores`): per board, at most two published results, one dominated by
each class, solved jointly (each model holds a little of the other class). A
calibrated CPI also absorbs what differs between the published build and the
measured one (TFLM and CMSIS-NN versions, compiler), separately for each class,
so nothing forces the stream CPI above the compute one: on a fast core whose
flash cannot keep up (Cortex-M85 with Helium) it is well above; on the 2020
STM32L4R5 reference run it is below, the convolution kernels of that CMSIS-NN
being the slower part.
The stated error of each class is the worst relative error on the results
that only check it and are dominated by that class; a class no result checks
states `UNCHECKED_CPI_ERROR`. Cores without silicon data borrow both CPIs of a
calibrated core (`scale_uncalibrated`).

Example:
    >>> cycles({"compute": 1000.0, "stream": 200.0}, {"compute": 1.5, "stream": 2.0})
    1900.0
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence

from tflite_export.cost.devices import CORES
from tflite_export.cost.records import OpRecord
from tflite_export.errors import ModelFormatError

__all__ = ["CLASSES", "op_class", "cycles", "calibrate_cores", "scale_uncalibrated"]

#: Operator classes, each with its own CPI (see the module docstring).
CLASSES = ("compute", "stream")
#: Stated error of a calibrated class that no published result checks (a prior, not a residual).
UNCHECKED_CPI_ERROR = 0.35
#: Relative error added (in quadrature) when CPIs are carried to another core by CoreMark/MHz.
SCALED_CPI_ERROR = 0.3
#: Relative error added when CPIs are carried across ISA classes (see `scale_uncalibrated`).
CROSS_ISA_CPI_ERROR = 0.4


def op_class(record: OpRecord) -> str:
    """``"stream"`` for a matrix-vector FULLY_CONNECTED, else ``"compute"``.

    Args:
        record: the operator.

    Returns:
        A name of `CLASSES`. A FULLY_CONNECTED on several input rows reuses
        each weight once per row, like a convolution: ``"compute"``.

    Example:
        >>> from tflite_export.cost.records import op_records
        >>> from tflite_export.testing import tiny_model
        >>> [op_class(r) for r in op_records(tiny_model())]
        ['stream', 'stream']
    """
    shapes = record.input_shapes
    if record.op != "FULLY_CONNECTED" or len(shapes) < 2 or not shapes[0] or not shapes[1]:
        return "compute"
    return "stream" if math.prod(shapes[0]) == shapes[1][-1] else "compute"


def cycles(instructions: Mapping[str, float], cpi: Mapping[str, float]) -> float:
    """Silicon cycles of instructions split by class (`CLASSES` keys in both mappings)."""
    return sum(instructions[c] * cpi[c] for c in CLASSES)


def _share(instructions: Mapping[str, float]) -> float:
    """Fraction of the instructions in the stream class."""
    return instructions["stream"] / sum(instructions.values())


def _solve(rows: Sequence[dict]) -> dict[str, float]:
    """Both CPIs of one board from its one or two calibration results."""
    if len(rows) == 1:
        cpi = rows[0]["cycles"] / sum(rows[0]["instructions"].values())
        return {c: cpi for c in CLASSES}
    det, a, b = 0.0, None, None
    if len(rows) == 2:
        a, b = sorted(rows, key=lambda r: _share(r["instructions"]))
        ia, ib = a["instructions"], b["instructions"]
        det = ia["compute"] * ib["stream"] - ia["stream"] * ib["compute"]
    # A pair with nearly the same class mix (e.g. two convolution models) cannot separate the CPIs.
    if a is None or det <= 0.05 * sum(ia.values()) * sum(ib.values()):
        raise ModelFormatError(
            f"expected one or two calibration results per board, one dominated by the compute "
            f"class and one by matrix-vector FULLY_CONNECTED layers (e.g. mlperf_ic and mlperf_ad). "
            f"Received {[(r['board'], r['model']) for r in rows]}; fix the roles in silicon.csv.")
    cpi = {"compute": (a["cycles"] * ib["stream"] - b["cycles"] * ia["stream"]) / det,
           "stream": (b["cycles"] * ia["compute"] - a["cycles"] * ib["compute"]) / det}
    if min(cpi.values()) <= 0:
        raise ModelFormatError(f"the calibration results of {a['board']} give CPIs {cpi}: "
                               "choose results whose latencies are consistent in silicon.csv.")
    return cpi


def _dominant(share: float) -> str:
    return "stream" if share >= 0.5 else "compute"


def _compare(row: dict, cpi: Mapping[str, float]) -> dict:
    est = cycles(row["instructions"], cpi)
    return {"board": row["board"], "model": row["model"], "published_ms": row["published_ms"],
            "est_ms": round(est / (row["mhz"] * 1e3), 4), "rel_err": round(est / row["cycles"] - 1.0, 4),
            "stream_share": round(_share(row["instructions"]), 4)}


def _alternatives(rows: Sequence[dict]) -> dict[str, float]:
    """Worst check error if the compute CPI were calibrated on each compute-dominated result."""
    cal = [r for r in rows if r["role"] == "calibrate"]
    stream = [r for r in cal if _dominant(_share(r["instructions"])) == "stream"]
    out = {}
    for r in rows:
        if len(cal) == 2 and stream and _dominant(_share(r["instructions"])) == "compute":
            cpi = _solve([r, stream[0]])
            others = [abs(_compare(o, cpi)["rel_err"]) for o in rows if o is not r and o is not stream[0]]
            out[f"{r['board']} {r['model']}"] = round(max(others, default=0.0), 4)
    return out


def calibrate_cores(silicon: Sequence[dict], splits: Mapping[tuple[str, str, str], Mapping[str, float]]
                    ) -> dict[str, dict]:
    """Both CPIs per core, from published silicon latencies.

    Args:
        silicon: rows of ``silicon.csv`` (``board, core, mhz, kernels, model,
            published_ms, role, source``); role ``calibrate`` sets the CPIs
            (at most two per board), ``check`` is only compared.
        splits: estimated instructions of a whole inference by class, keyed by
            ``(model, core, kernels)``; a row without one is skipped.

    Returns:
        ``{core: {"cpi": {class: CPI}, "rel_error": {class: error}, "method",
        "calibrated_on", "calibration", "checked_on", "alternatives"}}`` for
        every core of `CORES` that can be calibrated or scaled: ``calibration`` and
        ``checked_on`` compare the estimate with each published result,
        ``alternatives`` gives the worst check error had the compute CPI been
        calibrated on another result of the board.

    Raises:
        ModelFormatError: a board's calibration results cannot set both CPIs.
    """
    points: dict[str, list[dict]] = defaultdict(list)
    for row in silicon:
        split = splits.get((row["model"], row["core"], row["kernels"]))
        if split is not None and row["role"] in ("calibrate", "check"):
            points[row["core"]].append({**row, "instructions": dict(split),
                                        "cycles": row["published_ms"] * row["mhz"] * 1e3})
    cores = {}
    for core, rows in sorted(points.items()):
        boards: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            boards[r["board"]].append(r)
        per_board = [_solve(cal) for b in sorted(boards)
                     if (cal := [r for r in boards[b] if r["role"] == "calibrate"])]
        if not per_board:
            continue
        cpi = {c: round(statistics.median(p[c] for p in per_board), 4) for c in CLASSES}
        checked = [_compare(r, cpi) for r in rows if r["role"] == "check"]
        cores[core] = {
            "cpi": cpi,
            "rel_error": {cls: round(max([abs(c["rel_err"]) for c in checked
                                          if _dominant(c["stream_share"]) == cls],
                                         default=UNCHECKED_CPI_ERROR), 4) for cls in CLASSES},
            "method": "calibrated",
            "calibrated_on": [f"{r['board']} {r['model']} {r['published_ms']} ms ({r['source']})"
                              for r in rows if r["role"] == "calibrate"],
            "calibration": [_compare(r, cpi) for r in rows if r["role"] == "calibrate"],
            "checked_on": checked,
            "alternatives": {k: v for b in sorted(boards) for k, v in _alternatives(boards[b]).items()},
        }
    return scale_uncalibrated(cores)


def scale_uncalibrated(cores: dict[str, dict]) -> dict[str, dict]:
    """Carry calibrated CPIs to each core of `CORES` without silicon data.

    Within an ISA class the instruction stream is the same, so both CPIs scale
    by Arm's CoreMark/MHz ratio (error `SCALED_CPI_ERROR` added). Across classes
    the instruction counts already differ in the tables (Thumb-1 needs more),
    so the CPIs of the Cortex-M4 are taken as they are: both are in-order
    single-issue pipelines with 1-cycle ALU/MAC and 2-cycle loads (error
    `CROSS_ISA_CPI_ERROR` added). The stream CPI scales like the compute one:
    no published result measures a board's flash without its core.

    Args:
        cores: calibrated cores (`calibrate_cores`).

    Returns:
        ``cores`` plus one scaled entry per missing core, sorted by name.
    """
    out = dict(cores)
    for name, core in CORES.items():
        if name in out or not cores:
            continue
        same_isa = sorted(c for c in cores if CORES[c].isa == core.isa)
        ref = same_isa[0] if same_isa else ("cortex-m4" if "cortex-m4" in cores else sorted(cores)[0])
        if same_isa:
            ratio, extra = CORES[ref].coremark_per_mhz / core.coremark_per_mhz, SCALED_CPI_ERROR
            how = f"CoreMark/MHz {CORES[ref].coremark_per_mhz} / {core.coremark_per_mhz}"
        else:
            ratio, extra, how = 1.0, CROSS_ISA_CPI_ERROR, "ratio 1 across ISA classes"
        out[name] = {
            "cpi": {c: round(cores[ref]["cpi"][c] * ratio, 4) for c in CLASSES},
            "rel_error": {c: round(math.hypot(cores[ref]["rel_error"][c], extra), 4) for c in CLASSES},
            "method": f"scaled from {ref} ({how})",
            "calibrated_on": [], "calibration": [], "checked_on": [], "alternatives": {},
        }
    return dict(sorted(out.items()))
