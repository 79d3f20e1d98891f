"""A synthetic measured table with known per-op coefficients, for the cost-model tests."""

from __future__ import annotations

import numpy as np

from tflite_export.cost.model import features
from tflite_export.cost.records import MeasuredOp, ModelTotal, OpRecord

#: Instructions per feature (see `tflite_export.cost.model.FEATURES`) per op.
TRUE_COEF = {
    "CONV_2D": (900.0, 1.6, 0.4, 12.0, 0.5, 40.0, 2.0, 0.3, 6.0, 0.2, 40.0),
    "DEPTHWISE_CONV_2D": (700.0, 3.1, 0.0, 9.0, 0.8, 25.0, 0.0, 1.5, 0.0, 0.4, 2.0),
    "FULLY_CONNECTED": (400.0, 1.1, 15.0, 0.2),
    "ADD": (300.0, 0.0, 6.0),
}
OVERHEAD = 850.0
#: Random shapes per op kind: enough for every CONV_2D feature to be independent.
N_SHAPES = 16


def conv(i: int, h: int, c_in: int, c_out: int, k: int, op: str = "CONV_2D") -> OpRecord:
    if op == "DEPTHWISE_CONV_2D":
        c_out = c_in
        weight, macs = (1, k, k, c_in), h * h * c_in * k * k
    else:
        weight, macs = (c_out, k, k, c_in), h * h * c_out * k * k * c_in
    return OpRecord(i, op, ((1, h, h, c_in), weight, (c_out,)), ("int8", "int8", "int32"),
                    ((1, h, h, c_out),), ("int8",), {"padding": "SAME"}, macs)


def fc(i: int, n_in: int, n_out: int) -> OpRecord:
    return OpRecord(i, "FULLY_CONNECTED", ((1, n_in), (n_out, n_in), (n_out,)),
                    ("int8", "int8", "int32"), ((1, n_out),), ("int8",), {}, n_in * n_out)


def add(i: int, n: int) -> OpRecord:
    return OpRecord(i, "ADD", ((1, n), (1, n)), ("int8", "int8"), ((1, n),), ("int8",), {}, n)


def true_instructions(r: OpRecord) -> float:
    return float(features(r) @ np.asarray(TRUE_COEF[r.op]))


def single_op_records(seed: int = 0) -> list[OpRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_SHAPES):
        h, ci, co, k = (int(rng.choice(v)) for v in ((4, 7, 8, 16, 32), (1, 3, 8, 16, 32),
                                                      (4, 8, 16, 64), (1, 3, 5)))
        out += [conv(0, h, ci, co, k), conv(0, h, ci, co, k, "DEPTHWISE_CONV_2D"),
                fc(0, h * ci, co), add(0, h * h * ci)]
    return out


def table(noise: float = 0.0, seed: int = 0, kernels: str = "cmsis_nn", cpu: str = "cortex-m4"):
    """(rows, totals, held_out): single-op rows, plus one held-out 4-op model."""
    rng = np.random.default_rng(seed)

    def measured(r: OpRecord) -> int:
        return max(1, round(true_instructions(r) * (1 + noise * rng.standard_normal())))

    rows = [MeasuredOp(f"single{n}", kernels, cpu, r, measured(r))
            for n, r in enumerate(single_op_records(seed))]
    net = [conv(0, 16, 3, 8, 3), conv(1, 16, 8, 8, 3, "DEPTHWISE_CONV_2D"), add(2, 16 * 16 * 8),
           fc(3, 16 * 16 * 8, 10)]
    held = [MeasuredOp("net", kernels, cpu, r, measured(r)) for r in net]
    total = ModelTotal("net", kernels, cpu, len(net),
                       round(sum(m.instructions for m in held) + OVERHEAD * len(net)))
    return rows + held, [total], frozenset({"net"})
