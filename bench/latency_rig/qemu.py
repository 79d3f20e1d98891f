"""Bare-metal builds and QEMU runs shared by the rig: machines, the tick counter, the check.

One QEMU machine per core (`MACHINES`); every run uses ``-icount shift=0`` so that one guest
instruction advances the virtual clock by exactly 1 ns, and the guest reads SysTick (clocked at
the machine's system clock) to count time. One tick is therefore ``1e9 / sysclk_hz``
instructions: 40 on the MPS2 machines (25 MHz), 31.25 on the MPS3 AN547 (32 MHz); that is the
resolution of one reading. `check_counter` validates the method on a loop of known instruction
count, with no TFLM involved.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import firmware_templates
from tflite_export.boards import Board, resolve_board

C_DIR = Path(__file__).with_name("c")


@dataclass(frozen=True)
class Machine:
    """A QEMU machine the rig runs one core on."""

    cpu: str
    board: str  # a tflite_export.firmware.BOARDS preset
    sysclk_hz: int

    @property
    def instructions_per_tick(self) -> float:
        return 1e9 / self.sysclk_hz


#: cpu -> machine. The AN385 is a Cortex-M3 image running the Cortex-M0+ (ARMv6-M) binary.
MACHINES = {
    "cortex-m0plus": Machine("cortex-m0plus", "mps2-an385", 25_000_000),
    "cortex-m4": Machine("cortex-m4", "mps2-an386", 25_000_000),
    "cortex-m7": Machine("cortex-m7", "mps2-an500", 25_000_000),
    "cortex-m33": Machine("cortex-m33", "mps2-an505", 20_000_000),
    "cortex-m55": Machine("cortex-m55", "mps3-an547", 32_000_000),
}


class RigError(RuntimeError):
    """A build or an emulator run of the rig failed."""


def board(cpu: str) -> Board:
    """The firmware `Board` the rig builds for ``cpu``."""
    return resolve_board(MACHINES[cpu].board)


def arch_flags(b: Board) -> list[str]:
    flags = [f"-mcpu={b.cpu}", "-mthumb", f"-mfloat-abi={b.float_abi}"]
    return flags + (["-mfpu=auto"] if b.float_abi == "hard" else [])


def platform_files(b: Board) -> dict[str, str]:
    """Startup code, linker script and semihosting of the ``cortex-m`` firmware template."""
    env = firmware_templates.environment()
    names = {"cortex-m/startup.c.j2": "startup.c", "cortex-m/linker.ld.j2": "linker.ld",
             "cortex-m/semihost.c.j2": "semihost.c", "cortex-m/semihost.h.j2": "semihost.h"}
    return {out: env.get_template(t).render(board=b) for t, out in names.items()}


def run(cmd: list[str], timeout: float, cwd: Path | None = None) -> str:
    """Run a command; its output (stdout then stderr), or `RigError` with its tail."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise RigError(f"{cmd[0]} timed out after {timeout:.0f} s") from e
    if proc.returncode != 0:
        raise RigError(f"{' '.join(cmd[:3])}... exited {proc.returncode}:\n"
                       f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout + proc.stderr  # QEMU writes the semihosting console to stderr


def qemu(cpu: str, elf: Path, timeout: float = 600) -> str:
    """Run ``elf`` on the core's machine with ``-icount shift=0``; the semihosting output."""
    return run([shutil.which("qemu-system-arm") or "qemu-system-arm", "-M",
                resolve_board(MACHINES[cpu].board).qemu_machine, "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting", "-icount", "shift=0", "-kernel", str(elf)],
               timeout)


@dataclass(frozen=True)
class CounterCheck:
    """Result of `check_counter` on one core.

    Attributes:
        cpu: the core.
        instructions_per_tick: fitted slope: loop instructions per SysTick tick.
        expected_per_tick: 1e9 / sysclk (what ``-icount shift=0`` implies).
        max_residual: largest |measured - fitted| instructions over the loop sizes.
        repeat_spread: max - min ticks of one short loop timed 8 times (phase only).
    """

    cpu: str
    instructions_per_tick: float
    expected_per_tick: float
    max_residual: float
    repeat_spread: int


def check_counter(cpu: str, workdir: Path) -> CounterCheck:
    """Build and run the known-loop program for ``cpu`` and fit instructions per tick."""
    b = board(cpu)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in platform_files(b).items():
        (workdir / name).write_text(text)
    elf = workdir / "counter_check.elf"
    run(["arm-none-eabi-gcc", *arch_flags(b), "-O2", "-ffreestanding", "-nostartfiles",
         f"-I{C_DIR}", f"-I{workdir}", "-T", str(workdir / "linker.ld"),
         str(C_DIR / "counter_check.c"), str(workdir / "startup.c"), str(workdir / "semihost.c"),
         "--specs=nano.specs", "--specs=nosys.specs", "-o", str(elf)], 120)
    lines = [tuple(int(x) for x in m) for m in re.findall(r"spin (\d+) (\d+)", qemu(cpu, elf, 120))]
    sizes = [(n, t) for n, t in lines[:8]]
    repeats = [t for _, t in lines[8:]]
    (n0, t0), (n1, t1) = sizes[0], sizes[-1]
    per_tick = 2 * (n1 - n0) / (t1 - t0)
    residual = max(abs(2 * (n - n0) - (t - t0) * per_tick) for n, t in sizes)
    return CounterCheck(cpu, per_tick, MACHINES[cpu].instructions_per_tick, residual,
                        max(repeats) - min(repeats))
