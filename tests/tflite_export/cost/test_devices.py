"""The device catalogue: presets by board name, user-defined devices, clear errors."""

from __future__ import annotations

import pytest

from tflite_export import firmware
from tflite_export.cost import CORES, DEVICES, Device, DeviceError, get_device
from tflite_export.cost.devices import KERNEL_LIBRARIES


def test_presets_cover_the_issue_boards():
    expected = {"nrf52840": ("cortex-m4", 64), "stm32l4r5": ("cortex-m4", 120),
                "stm32h7a3": ("cortex-m7", 280), "rp2040": ("cortex-m0plus", 133),
                "alif-e7-hp": ("cortex-m55", 400)}
    for name, (core, mhz) in expected.items():
        d = get_device(name)
        assert (d.name, d.core, d.mhz, d.kernels) == (name, core, mhz, "cmsis_nn")
    assert {"cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"} <= set(CORES)


def test_isa_classes_select_the_kernel_code_path():
    assert get_device("rp2040").isa == "armv6-m"
    assert get_device("stm32h7a3").isa == "armv7e-m"
    assert get_device("ek-ra6m4").isa == "armv8-m.main+dsp"
    assert get_device("alif-e7-hp").isa == "armv8.1-m.main+mve"
    assert all(core.tables[0] == name or name == "cortex-m85" for name, core in CORES.items())


def test_power_is_sourced_or_unknown():
    for d in DEVICES.values():
        assert d.active_mw_source and d.active_mw_source != "user"
        assert (d.active_mw is None) == d.active_mw_source.startswith("unknown")


def test_names_are_case_insensitive_with_aliases():
    assert get_device("NUCLEO-L4R5ZI") is DEVICES["stm32l4r5"]
    assert get_device("raspberry_pi_pico") is DEVICES["rp2040"]
    d = DEVICES["nrf52840"]
    assert get_device(d) is d


def test_unknown_name_lists_the_presets():
    with pytest.raises(DeviceError) as e:
        get_device("esp32")
    for name in DEVICES:
        assert name in str(e.value)
    assert "Device(core=" in str(e.value)


def test_user_defined_device():
    d = Device(core="cortex-m33", mhz=64, kernels="reference", active_mw=6.5)
    assert (d.name, d.isa, d.mhz, d.active_mw) == ("cortex-m33@64MHz", "armv8-m.main+dsp", 64.0, 6.5)
    assert d.to_dict()["kernels"] == "reference"
    assert get_device(d) is d


@pytest.mark.parametrize("kwargs, word", [
    ({"core": "cortex-a53", "mhz": 100}, "core"),
    ({"core": "cortex-m4", "mhz": 0}, "mhz"),
    ({"core": "cortex-m4", "mhz": float("nan")}, "mhz"),
    ({"core": "cortex-m4", "mhz": 100, "kernels": "ethos"}, "kernels"),
    ({"core": "cortex-m4", "mhz": 100, "active_mw": -1.0}, "active_mw"),
    ({"core": "cortex-m4", "mhz": True}, "mhz"),
])
def test_bad_device_is_refused(kwargs, word):
    with pytest.raises(DeviceError, match=word):
        Device(**kwargs)


def test_cores_agree_with_the_firmware_boards():
    for name, core in CORES.items():
        if core.firmware_board is not None:
            board = firmware.BOARDS[core.firmware_board]
            assert board["cpu"] == name
            assert board["qemu_machine"] == core.qemu_machine
    assert KERNEL_LIBRARIES == ("reference", "cmsis_nn")


def test_cli_help_lists_the_presets():
    from tinycompress.cli import DEVICE_PRESETS

    assert DEVICE_PRESETS == tuple(sorted(DEVICES))
