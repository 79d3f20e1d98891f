"""The device catalogue: Cortex-M cores, board presets, and user-defined devices.

A `Core` holds what the cost model needs from a processor: its ISA class
(which selects the kernel code path CMSIS-NN compiles: pure C on ``armv6-m``,
the DSP extension on ``armv7e-m`` and ``armv8-m.main+dsp``, Helium/MVE on
``armv8.1-m.main+mve``), the rig CPUs whose measured instruction tables apply,
the QEMU machine that emulates it, and Arm's published CoreMark/MHz (used to
carry a silicon calibration from one core to another of the same family).
The cycles-per-instruction factors of each core (one per operator class,
`tflite_export.cost.cycles`) are not constants here: they are calibrated on
published silicon latencies by `tflite_export.cost.fit` and shipped with the
fitted coefficients (see ``tflite_export/data/cost/CALIBRATION.md``).

A `Device` is a core at a clock with a kernel library and an active power;
`DEVICES` holds presets by common board names and `get_device` resolves a name.
Memory maps for firmware projects stay in `tflite_export.boards.BOARDS`;
a core names the firmware board that emulates it (`Core.firmware_board`).

Example:
    >>> d = get_device("nrf52840")
    >>> d.core, d.mhz, d.kernels, d.isa
    ('cortex-m4', 64.0, 'cmsis_nn', 'armv7e-m')
    >>> Device(core="cortex-m7", mhz=480, kernels="reference", active_mw=200.0).name
    'cortex-m7@480MHz'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tflite_export.errors import DeviceError

__all__ = ["Core", "Device", "CORES", "DEVICES", "KERNEL_LIBRARIES", "DeviceError", "get_device"]

#: Kernel libraries a device can run TFLM with (TFLM ``OPTIMIZED_KERNEL_DIR``; reference = none).
KERNEL_LIBRARIES = ("reference", "cmsis_nn")


@dataclass(frozen=True)
class Core:
    """One Cortex-M processor as the cost model sees it.

    Attributes:
        name: gcc ``-mcpu`` name, e.g. ``"cortex-m4"``.
        isa: ISA class: ``"armv6-m"``, ``"armv7e-m"``, ``"armv8-m.main+dsp"`` or
            ``"armv8.1-m.main+mve"``.
        tables: rig CPUs (gcc ``-mcpu`` names) whose measured instruction tables
            apply, best first; a later entry is a proxy (same ISA class or the
            same kernel code path) and widens the stated error.
        coremark_per_mhz: Arm's published CoreMark/MHz for the core.
        qemu_machine: QEMU ``-M`` machine with this core, or None.
        firmware_board: the `tflite_export.boards.BOARDS` preset that emulates
            this core, or None when the firmware targets have none.
    """

    name: str
    isa: str
    tables: tuple[str, ...]
    coremark_per_mhz: float
    qemu_machine: str | None = None
    firmware_board: str | None = None


#: The cores of the catalogue. CoreMark/MHz: Arm's Cortex-M processor pages
#: (developer.arm.com, "Performance" tables; M0+ 2.46, M4 3.54, M7 5.29,
#: M33 4.02, M55 4.2, M85 6.28).
CORES: dict[str, Core] = {c.name: c for c in (
    Core("cortex-m0plus", "armv6-m", ("cortex-m0plus",), 2.46, "mps2-an385", "mps2-an385"),
    Core("cortex-m4", "armv7e-m", ("cortex-m4",), 3.54, "mps2-an386", "mps2-an386"),
    Core("cortex-m7", "armv7e-m", ("cortex-m7", "cortex-m4"), 5.29, "mps2-an500", "mps2-an500"),
    Core("cortex-m33", "armv8-m.main+dsp", ("cortex-m33", "cortex-m4"), 4.02, "mps2-an505",
         "mps2-an505"),
    Core("cortex-m55", "armv8.1-m.main+mve", ("cortex-m55",), 4.2, "mps3-an547", "mps3-an547"),
    Core("cortex-m85", "armv8.1-m.main+mve", ("cortex-m85", "cortex-m55"), 6.28),
)}


@dataclass(frozen=True)
class Device:
    """A core at a clock, with a TFLM kernel library and an active power.

    Args:
        core: a `CORES` name, e.g. ``"cortex-m4"``.
        mhz: core clock in MHz (> 0).
        kernels: ``"cmsis_nn"`` or ``"reference"``. Default ``"cmsis_nn"``.
        active_mw: power drawn while running the model, mW (> 0), or None when
            unknown (then energy is not estimated). Default None.
        name: label in reports. Default ``"<core>@<mhz>MHz"``.
        active_mw_source: where ``active_mw`` comes from. Default ``"user"``.
        power_rel_error: relative uncertainty of ``active_mw``. Default 0.2.

    Raises:
        DeviceError: unknown core or kernel library, non-positive clock or power.

    Example:
        >>> Device(core="cortex-m33", mhz=64, active_mw=6.0).isa
        'armv8-m.main+dsp'
    """

    core: str
    mhz: float
    kernels: str = "cmsis_nn"
    active_mw: float | None = None
    name: str = ""
    active_mw_source: str = "user"
    power_rel_error: float = 0.2

    def __post_init__(self) -> None:
        if self.core not in CORES:
            raise DeviceError(f"expected core in {sorted(CORES)}. Received core={self.core!r}.")
        if self.kernels not in KERNEL_LIBRARIES:
            raise DeviceError(f"expected kernels in {KERNEL_LIBRARIES}. Received kernels={self.kernels!r}.")
        for key in ("mhz", "active_mw", "power_rel_error"):
            value = getattr(self, key)
            if value is None and key == "active_mw":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and (value > 0 or (key == "power_rel_error" and value == 0))):
                raise DeviceError(f"expected {key} as a positive number. Received {key}={value!r}.")
            object.__setattr__(self, key, float(value))
        if not self.name:
            object.__setattr__(self, "name", f"{self.core}@{self.mhz:g}MHz")

    @property
    def isa(self) -> str:
        """The core's ISA class (see `Core.isa`)."""
        return CORES[self.core].isa

    def to_dict(self) -> dict:
        """JSON-ready fields, plus the ISA class."""
        return {"name": self.name, "core": self.core, "isa": self.isa, "mhz": self.mhz,
                "kernels": self.kernels, "active_mw": self.active_mw,
                "active_mw_source": self.active_mw_source, "power_rel_error": self.power_rel_error}


# Active power is the run current at that clock times the supply voltage. Where an
# MLPerf Tiny energy run of TFLM + CMSIS-NN exists for the board, its measured
# power (energy per inference / latency) is used; else the datasheet's run current.
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("cortex-m4", 64, "cmsis_nn", 9.9, "nrf52840", power_rel_error=0.25,
           active_mw_source="nRF52840 Product Specification, CPU running CoreMark from flash, "
                            "cache on, DC/DC, 3.0 V: 3.3 mA (compounded IS0 8.1 mA minus radio "
                            "TX 0 dBm 4.8 mA agrees)"),
    Device("cortex-m4", 120, "cmsis_nn", 41.5, "stm32l4r5", power_rel_error=0.1,
           active_mw_source="MLPerf Tiny v0.5 reference (TFLM + CMSIS-NN) on NUCLEO-L4R5ZI at "
                            "1.8 V: IC 29207 uJ / 704 ms"),
    Device("cortex-m7", 280, "cmsis_nn", 160.0, "stm32h7a3", power_rel_error=0.1,
           active_mw_source="MLPerf Tiny v0.7 STMicroelectronics NUCLEO-H7A3ZI-Q energy runs at "
                            "280 MHz, 3.0 V SMPS (X-CUBE-AI; chip power): IC 11200 uJ x 14.197 inf/s"),
    Device("cortex-m0plus", 133, "cmsis_nn", None, "rp2040",
           active_mw_source="unknown: the RP2040 datasheet gives run current only for demos "
                            "at 48 MHz; pass Device(..., active_mw=...) measured on your board"),
    Device("cortex-m33", 200, "cmsis_nn", 72.0, "ek-ra6m4", power_rel_error=0.1,
           active_mw_source="MLPerf Tiny v0.7 Renesas EK-RA6M4 (TFLM + CMSIS) at 3.0 V: "
                            "IC 17724 uJ / 246 ms"),
    Device("cortex-m55", 400, "cmsis_nn", None, "alif-e7-hp",
           active_mw_source="unknown: no published run current for the Ensemble E7 HP core"),
    Device("cortex-m85", 480, "cmsis_nn", None, "ek-ra8d1",
           active_mw_source="unknown: the MLPerf Tiny v1.2 EK-RA8D1 run has no energy result"),
)}

_ALIASES = {"nucleo-l4r5zi": "stm32l4r5", "nucleo-h7a3zi-q": "stm32h7a3", "pico": "rp2040",
            "raspberry-pi-pico": "rp2040", "nrf52840dk": "nrf52840", "alif-ensemble-e7": "alif-e7-hp"}


def get_device(device: str | Device) -> Device:
    """A `Device` by preset name (case-insensitive), or the device itself.

    Args:
        device: a `DEVICES` name (or an alias such as ``"nucleo-l4r5zi"``) or a `Device`.

    Returns:
        The device.

    Raises:
        DeviceError: unknown name; the message lists the presets and how to define one.

    Example:
        >>> get_device("NUCLEO-L4R5ZI").name
        'stm32l4r5'
    """
    if isinstance(device, Device):
        return device
    if isinstance(device, str):
        key = device.strip().lower().replace("_", "-")
        key = _ALIASES.get(key, key)
        if key in DEVICES:
            return DEVICES[key]
    raise DeviceError(
        f"expected a device preset in {sorted(DEVICES)} or a Device. Received device={device!r}. "
        "Define your own: Device(core='cortex-m4', mhz=80, kernels='cmsis_nn', active_mw=20.0) "
        f"with core in {sorted(CORES)}."
    )
