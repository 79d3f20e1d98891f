"""Memory maps of the Cortex-M boards the ``cortex-m`` and ``cmake`` firmware targets build for.

`BOARDS` holds the presets QEMU emulates (one per core the latency rig measures);
`resolve_board` turns a preset name, a dict or a `Board` into a checked `Board`.
"""

from __future__ import annotations

from dataclasses import dataclass

from tflite_export.errors import EmitError

__all__ = ["BOARDS", "Board", "resolve_board"]

_CPUS = {  # cpu -> (TFLM TARGET_ARCH with FPU, without FPU); None: the core has no such variant
    "cortex-m0plus": (None, "cortex-m0plus"),
    "cortex-m4": ("cortex-m4+fp", "cortex-m4"),
    "cortex-m7": ("cortex-m7+fp", "cortex-m7"),
    "cortex-m33": ("cortex-m33", None),
    "cortex-m55": ("cortex-m55", None),
}
_MiB = 1 << 20

#: Memory maps of boards QEMU emulates. MPS2 AN385/386/500: ZBT SSRAM1 as flash at 0, SSRAM2/3
#: as RAM. AN385 is a Cortex-M3 FPGA image: its preset builds for the Cortex-M0+ (ARMv6-M is a
#: subset of ARMv7-M, so the M0+ binary runs and executes the M0+ instruction stream). AN505
#: (Cortex-M33) and AN547 (Cortex-M55) boot in the secure state from the secure aliases: SSRAM1
#: at 0x10000000 and SSRAM2/3 at 0x38000000 (AN505); ITCM at 0x10000000 for the vectors, SRAM
#: at 0x11000000 for code and DTCM at 0x30000000 for data (AN547).
BOARDS: dict[str, dict] = {
    "mps2-an385": {"cpu": "cortex-m0plus", "flash_origin": 0x0, "flash_size": 4 * _MiB,
                   "ram_origin": 0x20000000, "ram_size": 4 * _MiB, "float_abi": "soft",
                   "qemu_machine": "mps2-an385"},
    "mps2-an386": {"cpu": "cortex-m4", "flash_origin": 0x0, "flash_size": 4 * _MiB,
                   "ram_origin": 0x20000000, "ram_size": 4 * _MiB, "qemu_machine": "mps2-an386"},
    "mps2-an500": {"cpu": "cortex-m7", "flash_origin": 0x0, "flash_size": 4 * _MiB,
                   "ram_origin": 0x20000000, "ram_size": 4 * _MiB, "qemu_machine": "mps2-an500"},
    "mps2-an505": {"cpu": "cortex-m33", "flash_origin": 0x10000000, "flash_size": 4 * _MiB,
                   "ram_origin": 0x38000000, "ram_size": 4 * _MiB, "qemu_machine": "mps2-an505"},
    "mps3-an547": {"cpu": "cortex-m55", "flash_origin": 0x10000000, "flash_size": 512 * 1024,
                   "ram_origin": 0x30000000, "ram_size": 512 * 1024, "qemu_machine": "mps3-an547"},
}


@dataclass(frozen=True)
class Board:
    """A Cortex-M memory map for the ``cortex-m`` and ``cmake`` targets.

    Attributes:
        name: board name (used in comments and READMEs).
        cpu: gcc ``-mcpu`` name: ``"cortex-m0plus"``, ``"cortex-m4"``, ``"cortex-m7"``,
            ``"cortex-m33"`` or ``"cortex-m55"``.
        flash_origin, flash_size: code and read-only data region, bytes.
        ram_origin, ram_size: data, tensor arena, heap and stack region, bytes.
        stack_size: main stack bytes, at the top of RAM. Default 16 KiB.
        heap_size: heap bytes (newlib). Default 8 KiB.
        float_abi: ``"hard"`` (FPU, default) or ``"soft"`` (the only choice, and the
            default `resolve_board` picks, for the Cortex-M0+).
        qemu_machine: QEMU ``-M`` machine that emulates the board, or None.
    """

    name: str
    cpu: str
    flash_origin: int
    flash_size: int
    ram_origin: int
    ram_size: int
    stack_size: int = 16 * 1024
    heap_size: int = 8 * 1024
    float_abi: str = "hard"
    qemu_machine: str | None = None

    @property
    def tflm_arch(self) -> str:
        """TFLM Makefile ``TARGET_ARCH`` for this CPU and float ABI."""
        return _CPUS[self.cpu][0 if self.float_abi == "hard" else 1] or self.cpu


def resolve_board(board: str | dict | Board) -> Board:
    """Turn a preset name, a dict or a `Board` into a validated `Board`.

    Args:
        board: a name in `BOARDS`, a dict with `Board`'s fields (``name`` optional),
            or a `Board`.

    Returns:
        The board.

    Raises:
        EmitError: unknown preset, unknown or missing field, bad CPU, float ABI,
            size or overlapping regions.

    Example:
        >>> resolve_board("mps2-an386").tflm_arch
        'cortex-m4+fp'
    """
    if isinstance(board, Board):
        fields = dict(board.__dict__)
    elif isinstance(board, str):
        if board not in BOARDS:
            raise EmitError(
                f"expected a board preset in {sorted(BOARDS)} or a dict memory map. "
                f"Received board={board!r}. Pass e.g. board={{'cpu': 'cortex-m4', 'flash_origin': "
                "0x08000000, 'flash_size': 1048576, 'ram_origin': 0x20000000, 'ram_size': 196608}."
            )
        fields = {"name": board, **BOARDS[board]}
    elif isinstance(board, dict):
        fields = {"name": "custom-board", **board}
    else:
        raise EmitError(f"expected board as a str, dict or Board. Received {type(board).__name__}.")
    if _CPUS.get(fields.get("cpu"), ("",))[0] is None:
        fields.setdefault("float_abi", "soft")  # a core without an FPU
    known = set(Board.__dataclass_fields__)
    if set(fields) - known:
        raise EmitError(f"unknown board fields {sorted(set(fields) - known)}; expected among {sorted(known)}.")
    try:
        result = Board(**fields)
    except TypeError as e:
        raise EmitError(f"the board dict misses fields: {e}. Required: cpu, flash_origin, "
                        "flash_size, ram_origin, ram_size.") from e
    if result.cpu not in _CPUS:
        raise EmitError(f"expected cpu in {sorted(_CPUS)}. Received cpu={result.cpu!r}.")
    if result.float_abi not in ("hard", "soft"):
        raise EmitError(f"expected float_abi 'hard' or 'soft'. Received {result.float_abi!r}.")
    if _CPUS[result.cpu][0 if result.float_abi == "hard" else 1] is None:
        raise EmitError(f"the {result.cpu} has no float_abi={result.float_abi!r} build in TFLM. "
                        f"Use float_abi={'soft' if result.float_abi == 'hard' else 'hard'!r}.")
    for key in ("flash_origin", "flash_size", "ram_origin", "ram_size", "stack_size", "heap_size"):
        value = getattr(result, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value >= 1 << 32 or (
            key.endswith("size") and value == 0
        ):
            raise EmitError(f"expected board {key} as an int in [0, 2**32) (sizes > 0). Received {value!r}.")
    f0, f1 = result.flash_origin, result.flash_origin + result.flash_size
    r0, r1 = result.ram_origin, result.ram_origin + result.ram_size
    if max(f1, r1) > 1 << 32 or (f0 < r1 and r0 < f1):
        raise EmitError(
            f"expected FLASH and RAM regions inside 32-bit space and not overlapping. Received "
            f"FLASH [{f0:#x}, {f1:#x}), RAM [{r0:#x}, {r1:#x})."
        )
    return result
