"""Measure one model on one core and kernel library: build its firmware, run it under QEMU.

The firmware is the ``cortex-m`` project `tflite_export.firmware.render_project` writes for
the core's board (`qemu.MACHINES`), with its ``main.cc`` replaced by the rig's profiling main
(``c/rig_main.cc.j2``): the model, golden sample, op resolver, startup code, linker script and
Makefile are the product's own. TFLM is built once per (TFLM arch, kernels) flavour under
``gen_cache`` and reused by every model: the rig's restricted library (`latency_rig.tflm_lib`:
TFLM's Makefile and flags, only the measured operators' kernels). Another folder's library may
lack kernels the rig's main registers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflite_export import input_details, kernel_scratch_bound, measure_arena
from tflite_export.emit_c import c_identifier
from tflite_export.cost.records import MeasuredOp, ModelTotal, op_records
from tflite_export.firmware import render_project

from latency_rig.qemu import C_DIR, MACHINES, RigError, board, qemu, run
from latency_rig.tflm_lib import build_library

#: Arena bytes added to the host measurement: CMSIS-NN scratch is bounded separately; this
#: covers 32-bit vs 64-bit bookkeeping differences.
ARENA_MARGIN = 8 * 1024


def tflm_gen(tflm_dir: Path, gen_cache: Path, cpu: str, kernels: str) -> Path:
    """The ``TFLM_GEN`` folder to link with: the rig's restricted library (built if missing)."""
    return build_library(tflm_dir, gen_cache, cpu, kernels)


def _golden(model: bytes, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in input_details(model):
        info = np.iinfo(t.dtype) if np.issubdtype(np.dtype(t.dtype), np.integer) else None
        lo, hi = (info.min, info.max) if info else (-1, 1)
        out.append(rng.integers(lo, hi, size=t.shape, endpoint=True).astype(t.dtype))
    return out


_RIG_SYMBOLS = """
/* ---- latency rig: this model's symbols for the rig's model-independent main.cc ---- */
const void* const rig_inputs[] = {{{inputs}}};
const unsigned rig_input_bytes[] = {{{input_bytes}}};
const int rig_n_inputs = {n_inputs};
const void* const rig_outputs[] = {{{outputs}}};
const unsigned rig_output_bytes[] = {{{output_bytes}}};
const int rig_n_outputs = {n_outputs};
const int rig_repeats = {repeats};
__attribute__((aligned(16))) uint8_t rig_arena[MODEL_TENSOR_ARENA_SIZE];
const unsigned rig_arena_size = MODEL_TENSOR_ARENA_SIZE;
"""


def write_project(model: bytes, cpu: str, out: Path, repeats: int, seed: int = 0) -> Path:
    """Render the rig firmware of ``model`` for ``cpu`` into ``out`` (files replaced).

    The project is rendered with the name ``model`` (so every project has the same file and
    symbol names); ``src/main.cc`` is the rig's main and ``src/model_golden.c`` gets the
    ``rig_*`` symbols it reads.
    """
    arena = measure_arena(model).emitted_bytes + kernel_scratch_bound(model) + ARENA_MARGIN
    files = render_project(model, "cortex-m", name="model", golden_input=_golden(model, seed),
                           arena_size=arena, board=board(cpu))
    n_in = len(input_details(model))
    n_out = len(re.findall(r"#define MODEL_OUTPUT\d+_BYTES", files["src/model_io.h"]))
    files["src/model_golden.c"] += _RIG_SYMBOLS.format(
        inputs=", ".join(f"g_model_golden_input{i}" for i in range(n_in)),
        input_bytes=", ".join(f"MODEL_INPUT{i}_BYTES" for i in range(n_in)), n_inputs=n_in,
        outputs=", ".join(f"g_model_golden_output{i}" for i in range(n_out)),
        output_bytes=", ".join(f"MODEL_OUTPUT{i}_BYTES" for i in range(n_out)), n_outputs=n_out,
        repeats=int(repeats))
    files["src/main.cc"] = (C_DIR / "rig_main.cc").read_text()
    files["src/tick_counter.h"] = (C_DIR / "tick_counter.h").read_text()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


def _main_object(workdir: Path, gen: Path, cpu: str, kernels: str) -> Path:
    """Where the compiled rig main of one core, kernel library and TFLM build is kept."""
    text = (C_DIR / "rig_main.cc").read_bytes() + (C_DIR / "tick_counter.h").read_bytes()
    key = hashlib.sha256(text + str(gen).encode()).hexdigest()[:12]
    return workdir / "main_objects" / f"{cpu}-{kernels}-{key}.o"


@dataclass(frozen=True)
class Measurement:
    """Instructions of one model on one core and kernel library."""

    ops: list[MeasuredOp]
    total: ModelTotal
    raw: str


def parse(output: str, model: bytes, name: str, cpu: str, kernels: str) -> Measurement:
    """Turn the firmware's output into per-operator and whole-model instruction counts.

    Per operator: ticks summed over the repeats, times instructions per tick, divided by the
    repeats, minus the profiler's own cost per event (measured on empty event pairs).
    """
    if "check PASS" not in output:
        raise RigError(f"{name} on {cpu}/{kernels}: the firmware did not pass:\n{output[-2000:]}")
    per_tick = MACHINES[cpu].instructions_per_tick
    repeats = int(re.search(r"repeats (\d+)", output).group(1))
    pairs, ticks = (int(x) for x in re.search(r"overhead (\d+) (\d+)", output).groups())
    overhead = ticks * per_tick / pairs
    counts = {int(i): int(t) for i, t in re.findall(r"op (\d+) \S+ (\d+)", output)}
    records = op_records(model)
    if sorted(counts) != [r.op_index for r in records]:
        raise RigError(f"{name}: the firmware reported operators {sorted(counts)}, "
                       f"the model has {len(records)}")
    ops = [MeasuredOp(name, kernels, cpu, r,
                      max(0, round(counts[r.op_index] * per_tick / repeats - overhead)))
           for r in records]
    invoke = int(re.search(r"invoke (\d+)", output).group(1))
    total = ModelTotal(name, kernels, cpu, len(records), round(invoke * per_tick / repeats))
    return Measurement(ops, total, output)


def measure(model: bytes, name: str, cpu: str, kernels: str, *, tflm_dir: Path, gen_cache: Path,
            workdir: Path, repeats: int = 1, timeout: float = 1800) -> Measurement:
    """Build and run the rig firmware of one model; see the module docstring."""
    project = write_project(model, cpu, workdir / f"{c_identifier(name)}-{cpu}-{kernels}", repeats)
    gen = tflm_gen(tflm_dir, gen_cache, cpu, kernels)
    cached = _main_object(workdir, gen, cpu, kernels)
    built = project / "build" / "main.o"
    if cached.exists():  # newer than src/main.cc and the library: make keeps it
        built.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, built)
        os.utime(built)
    make = ["make", "-C", str(project), f"TFLM_DIR={tflm_dir}", f"TFLM_GEN={gen}/",
            f"KERNELS={kernels}", "-j2"]
    run(make, timeout)
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built, cached)
    elf = project / "build" / "model.elf"  # the project is rendered with name "model"
    try:
        output = qemu(cpu, elf, timeout)
    except RigError as e:
        raise RigError(f"{name} on {cpu}/{kernels}: {e}") from e
    return parse(output, model, name, cpu, kernels)


def tool_versions() -> dict[str, str]:
    """QEMU and gcc versions, for the table header."""
    def first_line(cmd):
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
    return {"qemu": first_line(["qemu-system-arm", "--version"]),
            "gcc": first_line(["arm-none-eabi-gcc", "--version"])}
