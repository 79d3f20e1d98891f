"""Latency benchmark: the cost model's estimates against QEMU and against published silicon.

Emulator lines (one per model x core x kernel library): the estimated instructions of one
Invoke (`tflite_export.cost.estimate`) against the instructions the latency rig counts under
QEMU (``bench/latency_rig``: ``-icount shift=0``, SysTick read around the whole Invoke, one
tick = 31-50 instructions). The models are the held-out whole models, not used to fit: the
MLPerf Tiny int8 reference models (files from github.com/mlcommons/tiny, folder in
``MLPERF_TINY_DIR``) and the architectures our benches export. Keys: ``model``, ``core``,
``kernels``, ``est_instructions``, ``measured_instructions``, ``rel_err``, ``fitted``, and
``measure_error`` when the rig cannot run the model on that core (e.g. it does not fit the board).
With ``TFLM_DIR`` set the rig measures live; without it ``measured_instructions`` is null,
unless ``--table`` takes the measurement from the shipped table
(``tflite_export/data/cost/measured_models.csv``, ``"measured_from": "table"``).

Silicon lines (one per published MLPerf Tiny TFLM + CMSIS-NN result in
``tflite_export/data/cost/silicon.csv``): ``model``, ``board``, ``est_ms``, ``published_ms``,
``rel_err``, ``calibrated`` (whether the result set the core's cycles per instruction, one
per operator class: ``tflite_export/cost/cycles.py``; the others are only checked).

Run: python bench/latency.py [--targets cortex-m4:cmsis_nn ...] [--table] [--include-fitted]
     [--cost-model fitted.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tflite_export" / "data" / "cost"
#: silicon.csv model names -> MLPerf Tiny files (latency_rig.op_models.MLPERF_FILES).
SILICON_MODELS = {"ad": "mlperf_ad", "kws": "mlperf_kws", "ic": "mlperf_ic", "vww": "mlperf_vww"}


def _rel(est, ref):
    return None if est is None or not ref else round((est - ref) / ref, 4)


def _models(work: Path, include_fitted: bool) -> tuple[dict[str, Path], set[str]]:
    from latency_rig.op_models import bench_models, build_probes, mlperf_models

    models = {}
    if os.environ.get("MLPERF_TINY_DIR"):
        models.update(mlperf_models(Path(os.environ["MLPERF_TINY_DIR"])))
    models.update(bench_models(work / "bench_models"))
    fitted = set()
    if include_fitted:
        probes = build_probes(work / "probes")
        models.update(probes)
        fitted = set(probes)
    return models, fitted


_COST_MODEL = {"path": None}  # --cost-model


def _estimate(model: bytes, device):
    from tflite_export.cost import estimate

    try:
        return estimate(model, device, cost_model=_COST_MODEL["path"])
    except Exception as e:  # an estimate the model cannot give is reported, not fatal
        return e


def emulator_lines(models, fitted, targets, table: bool, work: Path):
    from tflite_export.cost import Device
    from tflite_export.cost.records import read_model_table

    measured_table = {}
    if table and (DATA / "measured_models.csv").exists():
        measured_table = {(t.model, t.kernels, t.cpu): t.instructions
                          for t in read_model_table(DATA / "measured_models.csv")[1]}
    live = bool(os.environ.get("TFLM_DIR"))
    for target in targets:
        cpu, kernels = target.split(":")
        device = Device(cpu, 100, kernels, None, f"qemu-{cpu}")
        for name, path in models.items():
            data = path.read_bytes()
            est = _estimate(data, device)
            line = {"model": name, "core": cpu, "kernels": kernels,
                    "est_instructions": None if isinstance(est, Exception) else round(est.total_instructions),
                    "measured_instructions": None, "rel_err": None, "fitted": name in fitted}
            if isinstance(est, Exception):
                line["est_error"] = str(est)
            elif est.unknown_ops:
                line["unknown_ops"] = list(est.unknown_ops)
            if live:
                from latency_rig.measure import measure
                from latency_rig.qemu import RigError

                try:  # e.g. a model that does not fit the board's memory: reported, not fatal
                    m = measure(data, name, cpu, kernels, tflm_dir=Path(os.environ["TFLM_DIR"]),
                                gen_cache=Path(os.environ.get("TFLM_GEN_CACHE", work / "tflm-gen")),
                                workdir=work / "projects")
                    line["measured_instructions"] = m.total.instructions
                    line["measured_from"] = "qemu"
                except RigError as e:  # the build's or run's own words, e.g. a region overflowed
                    lines = str(e).splitlines()
                    line["measure_error"] = next((ln for ln in lines if "overflow" in ln), lines[0])
            elif (name, kernels, cpu) in measured_table:
                line["measured_instructions"] = measured_table[(name, kernels, cpu)]
                line["measured_from"] = "table"
            line["rel_err"] = _rel(line["est_instructions"], line["measured_instructions"])
            yield line


def silicon_lines(models):
    with open(DATA / "silicon.csv", newline="") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for row in rows:
        name = SILICON_MODELS.get(row["model"], row["model"])
        published = float(row["published_ms"])
        line = {"model": name, "board": row["board"], "core": row["core"], "est_ms": None,
                "published_ms": published, "rel_err": None, "calibrated": row["role"] == "calibrate",
                "source": row["source"]}
        if name not in models:
            line["est_error"] = "model file not found: set MLPERF_TINY_DIR"
        else:
            est = _estimate(models[name].read_bytes(), row["board"])
            if isinstance(est, Exception):
                line["est_error"] = str(est)
            else:
                line["est_ms"] = round(est.total_ms, 3)
                line["est_rel_error"] = est.rel_error
                line["rel_err"] = _rel(est.total_ms, published)
        yield line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="estimated vs measured latency")
    parser.add_argument("--targets", nargs="+",
                        default=["cortex-m4:reference", "cortex-m4:cmsis_nn", "cortex-m55:cmsis_nn",
                                 "cortex-m0plus:reference", "cortex-m7:cmsis_nn", "cortex-m7:reference",
                                 "cortex-m33:cmsis_nn"])
    parser.add_argument("--table", action="store_true",
                        help="without TFLM_DIR, take measurements from the shipped table")
    parser.add_argument("--include-fitted", action="store_true", help="also the probe models")
    parser.add_argument("--no-silicon", action="store_true")
    parser.add_argument("--cost-model", help="a fitted cost model JSON (default: the shipped one)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("RIG_WORK", "")) if
                        os.environ.get("RIG_WORK") else Path(tempfile.gettempdir()) / "latency-rig")
    args = parser.parse_args(argv)
    _COST_MODEL["path"] = args.cost_model
    models, fitted = _models(args.work, args.include_fitted)
    for line in emulator_lines(models, fitted, args.targets, args.table, args.work):
        print(json.dumps(line), flush=True)
    if not args.no_silicon:
        for line in silicon_lines(models):
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
