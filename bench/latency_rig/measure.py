"""Measure one model on one core and kernel library: build its firmware, run it under QEMU.

The firmware is the ``cortex-m`` project `tflite_export.firmware.render_project` writes for
the core's board (`qemu.MACHINES`), with its ``main.cc`` replaced by the rig's profiling main
(``c/rig_main.cc.j2``): the model, golden sample, op resolver, startup code, linker script and
Makefile are the product's own. TFLM is built once per (TFLM arch, kernels) flavour under
``gen_cache`` and reused by every model: the full library of the firmware tests' flavour folder
when it exists, else the rig's restricted one (`latency_rig.tflm_lib`; same flags, same kernel
sources for the measured operators, hence the same instruction counts).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jinja2
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


def flavour(cpu: str, kernels: str) -> str:
    """Name of TFLM's build folder for a core and kernel library (as the firmware tests use)."""
    arch = board(cpu).tflm_arch
    return arch if kernels == "cmsis_nn" else f"{arch}-{kernels}"


def tflm_gen(tflm_dir: Path, gen_cache: Path, cpu: str, kernels: str) -> Path:
    """The ``TFLM_GEN`` folder to link with: a full library if built, else the rig's (built now)."""
    full = gen_cache / flavour(cpu, kernels)
    if (full / "lib" / "libtensorflow-microlite.a").exists():
        return full
    return build_library(tflm_dir, gen_cache, cpu, kernels)


def _golden(model: bytes, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in input_details(model):
        info = np.iinfo(t.dtype) if np.issubdtype(np.dtype(t.dtype), np.integer) else None
        lo, hi = (info.min, info.max) if info else (-1, 1)
        out.append(rng.integers(lo, hi, size=t.shape, endpoint=True).astype(t.dtype))
    return out


def write_project(model: bytes, name: str, cpu: str, out: Path, repeats: int, seed: int = 0) -> Path:
    """Render the rig firmware of ``model`` for ``cpu`` into ``out`` (created or replaced)."""
    ident = c_identifier(name)
    arena = measure_arena(model).emitted_bytes + kernel_scratch_bound(model) + ARENA_MARGIN
    files = render_project(model, "cortex-m", name=name, golden_input=_golden(model, seed),
                           arena_size=arena, board=board(cpu))
    main = jinja2.Template((C_DIR / "rig_main.cc.j2").read_text(), keep_trailing_newline=True,
                           trim_blocks=True, lstrip_blocks=True)
    n_out = len(re.findall(r"#define \w+_OUTPUT\d+_BYTES", files[f"src/{ident}_io.h"]))
    files["src/main.cc"] = main.render(ident=ident, MACRO=ident.upper(), n_inputs=len(input_details(model)),
                                       n_outputs=n_out).replace(
        "#ifndef RIG_REPEATS", f"#define RIG_REPEATS {int(repeats)}\n#ifndef RIG_REPEATS", 1)
    files["src/tick_counter.h"] = (C_DIR / "tick_counter.h").read_text()
    for rel, text in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return out


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
    project = write_project(model, name, cpu, workdir / f"{c_identifier(name)}-{cpu}-{kernels}",
                            repeats)
    gen = tflm_gen(tflm_dir, gen_cache, cpu, kernels)
    make = ["make", "-C", str(project), f"TFLM_DIR={tflm_dir}", f"TFLM_GEN={gen}/",
            f"KERNELS={kernels}", "-j2"]
    run(make, timeout)
    elf = next((project / "build").glob("*.elf"))
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
