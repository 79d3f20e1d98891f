"""The latency rig (`bench/latency_rig`): counting method, output parsing, one real measurement.

The counting test needs qemu-system-arm and arm-none-eabi-gcc; the measurement test also needs
TFLM_DIR (a tflite-micro checkout; TFLM_GEN_CACHE keeps its builds between runs).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from latency_rig import qemu as rig_qemu  # noqa: E402
from latency_rig.measure import parse  # noqa: E402
from latency_rig.qemu import MACHINES, RigError  # noqa: E402
from tflite_export.cost.records import read_table  # noqa: E402
from tflite_export.testing import tiny_model  # noqa: E402

TABLE = Path(__file__).resolve().parents[2] / "tflite_export" / "data" / "cost" / "measured.csv"
needs_arm = pytest.mark.skipif(
    not (shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc")),
    reason="needs qemu-system-arm and arm-none-eabi-gcc")


@pytest.mark.slow
@needs_arm
@pytest.mark.parametrize("cpu", sorted(MACHINES))
def test_systick_counts_instructions_on_a_known_loop(tmp_path, cpu):
    check = rig_qemu.check_counter(cpu, tmp_path)
    # 2 instructions per loop iteration, up to 2e7: the fitted slope is the clock's period in ns
    assert check.instructions_per_tick == pytest.approx(check.expected_per_tick, rel=1e-4)
    # every loop size lands within one tick (the resolution) of the fitted line
    assert check.max_residual <= check.expected_per_tick + 1e-6
    assert check.repeat_spread <= 1


def test_parse_turns_ticks_into_instructions():
    out = ("overhead 256 512\nop 0 FULLY_CONNECTED 300\nop 1 FULLY_CONNECTED 30\n"
           "invoke 400\nrepeats 3\ncheck PASS\n")
    m = parse(out, tiny_model(), "tiny", "cortex-m4", "cmsis_nn")
    per_tick = MACHINES["cortex-m4"].instructions_per_tick  # 40
    overhead = 512 * per_tick / 256
    assert [op.instructions for op in m.ops] == [round(300 * per_tick / 3 - overhead),
                                                round(30 * per_tick / 3 - overhead)]
    assert m.total.instructions == round(400 * per_tick / 3) and m.total.ops == 2
    assert [op.record.op for op in m.ops] == ["FULLY_CONNECTED"] * 2
    with pytest.raises(RigError, match="did not pass"):
        parse(out.replace("PASS", "FAIL"), tiny_model(), "tiny", "cortex-m4", "cmsis_nn")
    with pytest.raises(RigError, match="operators"):
        parse(out.replace("op 1 FULLY_CONNECTED 30\n", ""), tiny_model(), "tiny", "cortex-m4",
              "cmsis_nn")


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_arm
@pytest.mark.skipif(not os.environ.get("TFLM_DIR"), reason="TFLM_DIR is unset")
def test_single_op_measurement_is_reproducible(tmp_path):
    from latency_rig.measure import measure
    from latency_rig.op_models import build_probes

    name = "probe_b16c8"  # ADD and MUL of two 16x16x8 int8 tensors
    model = build_probes(tmp_path / "probes", [name])[name].read_bytes()
    gen = Path(os.environ.get("TFLM_GEN_CACHE", tmp_path / "gen"))
    runs = [measure(model, name, "cortex-m4", "reference", tflm_dir=Path(os.environ["TFLM_DIR"]),
                    gen_cache=gen, workdir=tmp_path / f"w{i}", repeats=3) for i in range(2)]
    first, second = ([op.instructions for op in r.ops] for r in runs)
    assert first == second and all(n > 2048 for n in first)  # > 1 instruction per element
    assert runs[0].total.instructions >= sum(first)
    if TABLE.exists():  # the shipped table holds what this rig measures today
        rows = {(r.model, r.kernels, r.cpu, r.record.op_index): r.instructions
                for r in read_table(TABLE)[1]}
        key = (name, "reference", "cortex-m4")
        if (*key, 0) in rows:
            # A probe converted in another process can get other requantization parameters
            # (converter calibration), which moves data-dependent branches: 0.2% measured.
            shipped = [rows[(*key, op.record.op_index)] for op in runs[0].ops]
            assert shipped == pytest.approx(first, rel=0.01)
