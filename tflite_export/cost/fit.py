"""Fit the shipped cost model: instruction tables from the rig, CPI from silicon.

``python -m tflite_export.cost.fit`` reads the measured tables the rig wrote
(``tflite_export/data/cost/measured.csv`` and ``measured_models.csv``) and the
published silicon latencies (``silicon.csv``), skips the measurements
``excluded.csv`` lists (with the reason), and writes
``tflite_export/data/cost/cost_model.json`` (and its summary ``CALIBRATION.md``):

1. **Instruction tables**, one per (kernel library, rig CPU): a non-negative
   least-squares fit per (op, dtype) on the single-op models
   (`tflite_export.cost.model.fit_op`), and per CMSIS-NN code path
   (`tflite_export.cost.model.op_keys`) with at least one row per feature,
   whose rows then leave the general fit; the models the table lists as
   ``held_out`` are never fitted. On them the script records the per-op
   relative error (per op, RMS) and the whole-model error; the interpreter's
   own work per operator is the median over held-out models of
   ``(whole Invoke - sum of its ops) / ops``.
2. **Cycles per instruction** per core and operator class
   (`tflite_export.cost.cycles`): a compute CPI and a stream CPI
   (matrix-vector FULLY_CONNECTED), solved per board from at most two
   published latencies (role ``calibrate`` in ``silicon.csv``) against the
   *estimated* instructions of those models (operators read from the rows
   ``measured.csv`` holds for them), so that `estimate` reproduces a calibration
   result; the ``check`` rows give the stated error. A core without silicon
   data takes the CPIs of a calibrated core (scaled by Arm's CoreMark/MHz ratio
   within an ISA class), with a wider error.

The result depends only on the input files: fitting twice gives the same JSON.

Example:
    >>> from tflite_export.cost.records import MeasuredOp, op_records
    >>> from tflite_export.testing import tiny_model
    >>> r = op_records(tiny_model())[0]
    >>> t = fit_tables([MeasuredOp("m", "reference", "cortex-m4", r, 500)], [], frozenset())
    >>> sorted(t["reference/cortex-m4"]["ops"])
    ['FULLY_CONNECTED/int8']
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tflite_export.atomic import write_files
from tflite_export.cost.cycles import calibrate_cores
from tflite_export.cost.devices import Device
from tflite_export.cost.estimator import DATA_DIR, FORMAT, MODEL_FILE, class_instructions
from tflite_export.cost.model import FEATURES, OpFit, find_fit, fit_op, op_keys
from tflite_export.cost.records import (
    MeasuredOp,
    ModelTotal,
    OpRecord,
    held_out_models,
    read_model_table,
    read_table,
)
from tflite_export.cost.summary import render_summary
from tflite_export.errors import ModelFormatError

__all__ = [
    "DATA_DIR", "MODEL_FILE", "fit_tables", "read_silicon", "silicon_splits", "calibrate_cores",
    "fit_files", "main",
]

logger = logging.getLogger(__name__)

#: The human-readable summary written beside the JSON (`tflite_export.cost.summary`).
SUMMARY_NAME = "CALIBRATION.md"
EXCLUDED_COLUMNS = ("model", "kernels", "cpu", "reason")
SILICON_COLUMNS = ("board", "core", "mhz", "kernels", "model", "published_ms", "role", "source")
#: Smallest relative error a table states (a perfect held-out match is still an estimate).
MIN_REL_ERROR = 0.01


def _rms(values: Sequence[float]) -> float | None:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else None


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _held_out_check(fits: dict[str, OpFit], rows: list[MeasuredOp], totals: dict[str, ModelTotal]):
    """Per-op and whole-model relative errors and overhead per op on held-out models."""
    per_op: dict[str, list[float]] = defaultdict(list)
    by_model: dict[str, list[MeasuredOp]] = defaultdict(list)
    for m in rows:
        by_model[m.model].append(m)
        fit = find_fit(fits, m.record)
        if fit is not None:
            per_op[fit.key].append(fit.predict(m.record) / m.instructions - 1.0)
    overheads = [(t.instructions - sum(m.instructions for m in by_model[name])) / t.ops
                 for name, t in totals.items() if name in by_model and t.ops]
    overhead = max(0.0, statistics.median(overheads)) if overheads else 0.0
    models = {}
    for name, t in sorted(totals.items()):
        if name not in by_model:
            continue
        ops = by_model[name]
        if all(find_fit(fits, m.record) is not None for m in ops):
            est = sum(find_fit(fits, m.record).predict(m.record) for m in ops) + overhead * t.ops
            models[name] = {"measured": t.instructions, "estimated": round(est),
                            "rel_err": round(est / t.instructions - 1.0, 4)}
    return per_op, overhead, models


def fit_tables(rows: Iterable[MeasuredOp], totals: Iterable[ModelTotal],
               held_out: frozenset[str]) -> dict[str, dict]:
    """Fit every (kernel library, rig CPU) table of the measured rows.

    Args:
        rows: measured operators (`read_table`).
        totals: whole-model totals (`read_model_table`).
        held_out: models measured only to check the fit.

    Returns:
        ``{"<kernels>/<cpu>": {"ops": {key: OpFit dict + held-out error},
        "overhead_per_op", "held_out_models", "rel_error", "fit_rel_rms"}}``.
    """
    groups: dict[str, list[MeasuredOp]] = defaultdict(list)
    for m in rows:
        if m.instructions > 0:
            groups[f"{m.kernels}/{m.cpu}"].append(m)
    total_groups: dict[str, dict[str, ModelTotal]] = defaultdict(dict)
    for t in totals:
        total_groups[f"{t.kernels}/{t.cpu}"][t.model] = t
    tables = {}
    for table, members in sorted(groups.items()):
        by_key: dict[str, list[MeasuredOp]] = defaultdict(list)
        for m in members:
            if m.model not in held_out:
                for key in op_keys(m.record):
                    by_key[key].append(m)
        # A code-path key is fitted only with at least one row per feature; its rows then
        # stay out of the general key, which models the general kernel only.
        paths = {key for key, ms in by_key.items() if "[" in key and len(ms) >= len(FEATURES["conv"])}
        general = {key: [m for m in ms if op_keys(m.record)[0] not in paths]
                   for key, ms in by_key.items() if "[" not in key}
        fits = {key: fit_op(key, [m.record for m in ms], [m.instructions for m in ms])
                for key, ms in sorted({**general, **{k: by_key[k] for k in paths}}.items()) if ms}
        check_rows = [m for m in members if m.model in held_out]
        check_totals = {k: v for k, v in total_groups[table].items() if k in held_out}
        per_op, overhead, models = _held_out_check(fits, check_rows, check_totals)
        fit_errors = [f.fit_rel_rms for f in fits.values()]
        whole = [abs(v["rel_err"]) for v in models.values()]
        tables[table] = {
            "ops": {key: {**fit.to_dict(), "held_out_rel_rms": _round(_rms(per_op.get(key, [])))}
                    for key, fit in fits.items()},
            "overhead_per_op": round(overhead, 1),
            "held_out_models": models,
            "fit_rel_rms": _round(_rms(fit_errors)),
            # The stated error of a whole-model estimate: the worst held-out model,
            # else (no held-out model measured) twice the fit's RMS residual.
            "rel_error": _round(max(MIN_REL_ERROR, max(whole) if whole else 2 * (_rms(fit_errors) or 0.5))),
        }
    return tables


def read_silicon(path: str | Path) -> list[dict]:
    """Published silicon latencies (``silicon.csv``): one dict per row, ``#`` lines skipped."""
    try:
        lines = [ln for ln in Path(path).read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    except OSError as e:
        raise ModelFormatError(f"cannot read {str(path)!r}: {e.strerror}.") from e
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != SILICON_COLUMNS:
        raise ModelFormatError(f"expected the columns {','.join(SILICON_COLUMNS)} in {str(path)!r}.")
    return [{**r, "mhz": float(r["mhz"]), "published_ms": float(r["published_ms"])} for r in reader]


def _model_records(rows: Iterable[MeasuredOp], totals: Iterable[ModelTotal]) -> dict[str, list[OpRecord]]:
    """Every operator of each whole model the table measured, from one of its (kernels, cpu) runs.

    A model whose rows do not cover all of its operators (``ops`` of the model
    table) is left out.
    """
    runs: dict[tuple[str, str, str], dict[int, OpRecord]] = defaultdict(dict)
    for m in rows:
        runs[(m.model, m.kernels, m.cpu)][m.record.op_index] = m.record
    ops = {(t.model, t.kernels, t.cpu): t.ops for t in totals}
    out: dict[str, list[OpRecord]] = {}
    for key, records in sorted(runs.items()):
        if key[0] not in out and ops.get(key) == len(records):
            out[key[0]] = [records[i] for i in sorted(records)]
    return out


def silicon_splits(silicon: Sequence[dict], records: dict[str, list[OpRecord]],
                   tables: dict[str, dict]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Estimated instructions by class of each silicon row's model on its core.

    Args:
        silicon: rows of `read_silicon`.
        records: operators per model (`_model_records`).
        tables: fitted instruction tables (`fit_tables`).

    Returns:
        ``{(model, core, kernels): {class: instructions}}`` for the rows the
        tables can estimate; the others are logged and left out.
    """
    doc, out = {"tables": tables}, {}
    for row in silicon:
        key = (row["model"], row["core"], row["kernels"])
        split = None
        if row["model"] in records:
            device = Device(row["core"], row["mhz"], row["kernels"])
            split = class_instructions(doc, device, records[row["model"]])
        if split is None:
            logger.warning("silicon row %s %s not compared: no measured operators or table for it",
                           row["board"], row["model"])
        else:
            out[key] = split
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_excluded(path: Path | None) -> list[dict]:
    """Measurements the fit must skip (``excluded.csv``: model,kernels,cpu,reason), or none."""
    if path is None or not path.exists():
        return []
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != EXCLUDED_COLUMNS:
        raise ModelFormatError(f"expected the columns {','.join(EXCLUDED_COLUMNS)} in {str(path)!r}.")
    return list(reader)


def fit_files(table: Path, model_table: Path, silicon: Path, excluded: Path | None = None) -> dict:
    """The cost-model JSON document fitted from the input files.

    Rows of the (model, kernels, cpu) triples ``excluded`` lists are skipped,
    and the document says which and why.
    """
    meta, rows = read_table(table)
    model_meta, totals = read_model_table(model_table)
    held_out = held_out_models(meta) | held_out_models(model_meta)
    skip = read_excluded(excluded)
    drop = {(e["model"], e["kernels"], e["cpu"]) for e in skip}
    rows = [m for m in rows if (m.model, m.kernels, m.cpu) not in drop]
    totals = [t for t in totals if (t.model, t.kernels, t.cpu) not in drop]
    inputs = [p for p in (table, model_table, silicon, excluded) if p is not None and p.exists()]
    tables, published = fit_tables(rows, totals, held_out), read_silicon(silicon)
    return {
        "format": FORMAT,
        "generated_by": "python -m tflite_export.cost.fit",
        "tflm_commit": meta.get("tflm_commit", "unknown"),
        "inputs": {p.name: _sha256(p) for p in inputs},
        "table_meta": dict(sorted(meta.items())),
        "held_out": sorted(held_out),
        "excluded": skip,
        "tables": tables,
        "cores": calibrate_cores(published, silicon_splits(published, _model_records(rows, totals), tables)),
        # silicon.csv's comment lines: where the results come from and why these calibrate.
        "silicon_notes": " ".join(ln.lstrip("# ").strip() for ln in silicon.read_text(encoding="utf-8")
                                  .splitlines() if ln.startswith("#")),
    }


def main(argv: list[str] | None = None) -> int:
    """Refit and write ``cost_model.json`` (``--check`` compares instead of writing).

    Args:
        argv: command-line arguments. Default None: ``sys.argv[1:]``.

    Returns:
        0 on success; 1 when ``--check`` finds the shipped file out of date.
    """
    parser = argparse.ArgumentParser(prog="python -m tflite_export.cost.fit", description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=DATA_DIR / "measured.csv")
    parser.add_argument("--model-table", type=Path, default=DATA_DIR / "measured_models.csv")
    parser.add_argument("--silicon", type=Path, default=DATA_DIR / "silicon.csv")
    parser.add_argument("--excluded", type=Path, default=DATA_DIR / "excluded.csv")
    parser.add_argument("--out", type=Path, default=MODEL_FILE,
                        help="the JSON to write; CALIBRATION.md is written beside it")
    parser.add_argument("--check", action="store_true", help="fail if the files differ from a refit")
    args = parser.parse_args(argv)
    doc = fit_files(args.table, args.model_table, args.silicon, args.excluded)
    files = {args.out.name: json.dumps(doc, indent=1, sort_keys=True) + "\n",
             SUMMARY_NAME: render_summary(doc)}
    if args.check:
        stale = [n for n, text in files.items() if not (args.out.parent / n).exists()
                 or (args.out.parent / n).read_text(encoding="utf-8") != text]
        logger.info("%s", f"out of date: {', '.join(stale)}" if stale else "up to date")
        return 1 if stale else 0
    write_files(args.out.parent, files)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.exit(main())
