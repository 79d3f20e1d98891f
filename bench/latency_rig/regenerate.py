"""Regenerate the measured cost table: tflite_export/data/cost/measured.csv (+ measured_models.csv).

Needs TFLM_DIR (a tflite-micro checkout at `tflite_export.firmware.TFLM_COMMIT` with its
downloads), qemu-system-arm 7.2 and arm-none-eabi-gcc. Measures the probe models (for fitting)
and the held-out whole models (MLPerf Tiny from MLPERF_TINY_DIR, our bench models) on each
``cpu:kernels`` pair, and rewrites both tables after every model, keeping rows of other
(model, kernels, cpu) triples, so a run can be stopped and resumed.

Run (from the repository root):
    TFLM_DIR=/path/tflite-micro TFLM_GEN_CACHE=/path/cache MLPERF_TINY_DIR=/path/models \\
      python bench/latency_rig/regenerate.py --targets cortex-m4:reference cortex-m4:cmsis_nn
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from latency_rig.measure import measure, tool_versions  # noqa: E402
from latency_rig.op_models import bench_models, build_probes, mlperf_models  # noqa: E402
from latency_rig.qemu import MACHINES, RigError  # noqa: E402
from tflite_export.cost import records as rec  # noqa: E402
from tflite_export.errors import TinyCompressError  # noqa: E402
from tflite_export.firmware import TFLM_COMMIT  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "tflite_export" / "data" / "cost" / "measured.csv"
MODEL_TABLE = ROOT / "tflite_export" / "data" / "cost" / "measured_models.csv"
logger = logging.getLogger("latency_rig")


def _load(path, reader):
    return reader(path) if path.exists() else ({}, [])


def _meta(old: dict, command: str, held_out: set[str]) -> dict:
    meta = dict(old)
    meta.update({"tflm_commit": TFLM_COMMIT, **tool_versions(),
                 "generated": datetime.date.today().isoformat(), "command": command,
                 "method": "qemu -icount shift=0, SysTick ticks x (1e9/sysclk) per instruction, "
                           "per-op profiler cost subtracted",
                 "held_out": ",".join(sorted(held_out | rec.held_out_models(old)))})
    return meta


def _save(ops_meta, rows, totals, key, measured) -> None:
    model, kernels, cpu = key
    rows = [r for r in rows if (r.model, r.kernels, r.cpu) != key] + measured.ops
    totals = [t for t in totals if (t.model, t.kernels, t.cpu) != key] + [measured.total]
    order = lambda r: (r.cpu, r.kernels, r.model)  # noqa: E731
    rows.sort(key=lambda r: (*order(r), r.record.op_index))
    totals.sort(key=order)
    rec.write_table(TABLE, ops_meta, rows)
    rec.write_model_table(MODEL_TABLE, ops_meta, totals)
    return rows, totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["cortex-m4:reference", "cortex-m4:cmsis_nn"],
                        help="cpu:kernels pairs, cpu in " + ", ".join(MACHINES))
    parser.add_argument("--only", nargs="*", help="model names to (re)measure (default all)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip (model, kernels, cpu) triples already in the table")
    parser.add_argument("--held-out-first", action="store_true",
                        help="measure the held-out whole models before the probes")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("RIG_WORK", "/tmp/latency-rig")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tflm_dir = Path(os.environ["TFLM_DIR"])
    gen_cache = Path(os.environ.get("TFLM_GEN_CACHE", args.work / "tflm-gen"))
    models = dict(build_probes(args.work / "probes"))
    fitting = set(models)
    models.update(bench_models(args.work / "bench_models"))
    if os.environ.get("MLPERF_TINY_DIR"):
        models.update(mlperf_models(Path(os.environ["MLPERF_TINY_DIR"])))
    held_out = set(models) - fitting
    if args.held_out_first:
        models = {k: models[k] for k in sorted(models, key=lambda k: k in fitting)}
    meta, rows = _load(TABLE, rec.read_table)
    _, totals = _load(MODEL_TABLE, rec.read_model_table)
    command = "python bench/latency_rig/regenerate.py --targets " + " ".join(args.targets)
    meta = _meta(meta, command, held_out)
    done = {(t.model, t.kernels, t.cpu) for t in totals}
    failures = 0
    for target in args.targets:
        cpu, kernels = target.split(":")
        for name, path in models.items():
            key = (name, kernels, cpu)
            if (args.only and name not in args.only) or (args.skip_existing and key in done):
                continue
            try:
                m = measure(path.read_bytes(), name, cpu, kernels, tflm_dir=tflm_dir,
                            gen_cache=gen_cache, workdir=args.work / "projects",
                            repeats=1 if name in held_out else 3)
            except (RigError, TinyCompressError) as e:  # logged; the other models go on
                failures += 1
                logger.error("%s", e)
                continue
            rows, totals = _save(meta, rows, totals, key, m)
            logger.info("%s %s/%s: %d ops, %d instructions", name, cpu, kernels, len(m.ops),
                        m.total.instructions)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
