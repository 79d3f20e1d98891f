"""estimate(): per-layer figures, totals, errors, unknown ops, devices, and the reports."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import cost_synthetic as syn
from tflite_export import inspect
from tflite_export.cost import CORES, DEVICES, Device, estimate, load_cost_model
from tflite_export.cost import estimator as estimate_module
from tflite_export.cost import fit
from tflite_export.cost.cycles import cycles, op_class
from tflite_export.cost.estimator import FORMAT, class_instructions
from tflite_export.cost.model import OpFit
from tflite_export.cost.records import op_records
from tflite_export.errors import UnsupportedModelError
from tflite_export.testing import tiny_model

DATA = Path(__file__).resolve().parent.parent / "data"
CPI = {"compute": 1.25, "stream": 2.0}


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    """A cost model fitted on the synthetic table: CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED and ADD on the Cortex-M4 with CMSIS-NN, calibrated on a
    convolution model and a matrix-vector one that run at the CPIs `CPI`."""
    rows, totals, held_out = syn.table(noise=0.02)
    tables = fit.fit_tables(rows, totals, held_out)
    records = {"net": [m.record for m in rows if m.model == "net"],
               "mlp": [syn.fc(0, 2048, 128), syn.fc(1, 128, 10)]}
    silicon = []
    for model, recs in records.items():
        split = class_instructions({"tables": tables}, Device("cortex-m4", 100), recs)
        silicon.append({"board": "b", "core": "cortex-m4", "mhz": 100.0, "kernels": "cmsis_nn",
                        "model": model, "published_ms": cycles(split, CPI) / 1e5,
                        "role": "calibrate", "source": "synthetic"})
    doc = {"format": FORMAT, "tflm_commit": "f" * 40, "tables": tables,
           "cores": fit.calibrate_cores(silicon, fit.silicon_splits(silicon, records, tables))}
    path = tmp_path_factory.mktemp("cost") / "cost_model.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_layers_and_totals(synthetic_file):
    doc = load_cost_model(synthetic_file)
    dev = Device(core="cortex-m4", mhz=80, active_mw=20.0)
    e = estimate(tiny_model(), dev, cost_model=synthetic_file)
    records = op_records(tiny_model())
    table = doc["tables"]["cmsis_nn/cortex-m4"]
    assert [(c.index, c.op, c.known) for c in e.layers] == [(r.op_index, r.op, True) for r in records]
    for c, r in zip(e.layers, records):
        fitted = OpFit.from_dict("FULLY_CONNECTED/int8", table["ops"]["FULLY_CONNECTED/int8"])
        assert c.instructions == pytest.approx(fitted.predict(r))
        assert op_class(r) == "stream" and c.cycles == pytest.approx(c.instructions * CPI["stream"], rel=1e-6)
        assert c.ms == pytest.approx(c.cycles / 80e3) and c.uj == pytest.approx(c.ms * 20.0)
        assert 0 < c.rel_error < 1
    overhead = table["overhead_per_op"] * len(records)
    assert e.total_instructions == pytest.approx(sum(c.instructions for c in e.layers) + overhead)
    # The interpreter's work between kernels runs at the compute CPI.
    assert e.total_cycles == pytest.approx(sum(c.cycles for c in e.layers) + overhead * CPI["compute"], rel=1e-6)
    assert e.total_ms == pytest.approx(e.total_cycles / 80e3)
    assert e.total_uj == pytest.approx(e.total_ms * 20.0)
    assert e.uj_rel_error > e.rel_error > 0
    assert "cmsis_nn/cortex-m4" in e.source and "synthetic" in e.source and "ffffffffffff" in e.source
    assert e.complete and e.to_dict()["estimated"] is True


def test_unknown_ops_are_flagged_and_excluded(synthetic_file):
    model = (DATA / "fuzz_cnn.tflite").read_bytes()
    e = estimate(model, Device(core="cortex-m4", mhz=100), cost_model=synthetic_file)
    assert e.unknown_ops == ("AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "SOFTMAX")
    unknown = [c for c in e.layers if not c.known]
    assert {c.op for c in unknown} == set(e.unknown_ops)
    assert all(c.instructions is None and c.ms is None and c.uj is None for c in unknown)
    known = [c for c in e.layers if c.known]
    overhead = load_cost_model(synthetic_file)["tables"]["cmsis_nn/cortex-m4"]["overhead_per_op"]
    assert e.total_instructions == pytest.approx(sum(c.instructions for c in known) + overhead * len(known))
    assert not e.complete and e.to_dict()["totals_exclude"] == list(e.unknown_ops)
    assert e.total_uj is None and e.uj_rel_error is None  # no active power given


def test_ops_of_other_subgraphs_are_named_not_dropped(synthetic_file):
    import flatbuffers

    from tflite_export import _flatbuffer as fb

    m = fb.unpack(tiny_model())
    m.subgraphs.append(copy.deepcopy(m.subgraphs[0]))
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    e = estimate(bytes(b.Output()), Device(core="cortex-m4", mhz=100), cost_model=synthetic_file)
    plain = estimate(tiny_model(), Device(core="cortex-m4", mhz=100), cost_model=synthetic_file)
    assert e.unknown_ops == ("FULLY_CONNECTED (subgraph 1)",)
    assert e.total_instructions == plain.total_instructions and not e.complete


def test_estimate_is_monotone_in_macs_within_an_op(synthetic_file):
    doc = load_cost_model(synthetic_file)
    fitted = OpFit.from_dict("CONV_2D/int8", doc["tables"]["cmsis_nn/cortex-m4"]["ops"]["CONV_2D/int8"])
    costs = [fitted.predict(syn.conv(0, 8, c, 16, 3)) for c in (1, 2, 4, 8, 16, 32)]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)


def test_clock_and_proxy_tables(synthetic_file):
    slow = estimate(tiny_model(), Device(core="cortex-m4", mhz=50), cost_model=synthetic_file)
    fast = estimate(tiny_model(), Device(core="cortex-m4", mhz=100), cost_model=synthetic_file)
    assert slow.total_ms == pytest.approx(2 * fast.total_ms)
    # The M7 has no table of its own here: it borrows the M4's, with a wider error.
    m7 = estimate(tiny_model(), Device(core="cortex-m7", mhz=100), cost_model=synthetic_file)
    assert m7.total_instructions == pytest.approx(fast.total_instructions)
    assert m7.total_cycles < fast.total_cycles and m7.rel_error > fast.rel_error


def test_no_table_for_the_core_is_an_error(synthetic_file):
    with pytest.raises(UnsupportedModelError, match="cortex-m55"):
        estimate(tiny_model(), Device(core="cortex-m55", mhz=400), cost_model=synthetic_file)
    with pytest.raises(UnsupportedModelError, match="reference"):
        estimate(tiny_model(), Device(core="cortex-m4", mhz=100, kernels="reference"),
                 cost_model=synthetic_file)


def test_inspect_and_reports_label_the_estimate(synthetic_file, monkeypatch):
    monkeypatch.setattr(estimate_module, "MODEL_FILE", Path(synthetic_file))
    model = (DATA / "fuzz_cnn.tflite").read_bytes()
    r = inspect(model, measure=False, device=Device(core="cortex-m4", mhz=120, active_mw=40.0,
                                                    name="board"))
    assert r.cost is not None and r.cost.device.name == "board"
    assert [layer.cost.known for layer in r.layers] == [c.known for c in r.cost.layers]
    d = json.loads(r.to_json())
    assert d["cost"]["estimated"] is True and d["cost"]["totals_exclude"] == list(r.cost.unknown_ops)
    assert d["layers"][0]["cost"]["cycles"] == pytest.approx(r.cost.layers[0].cycles)
    md = r.to_markdown()
    assert "| est. latency |" in md and "estimated" in md and "±" in md and "no data" in md
    assert "excludes AVERAGE_POOL_2D, MAX_POOL_2D, RESHAPE, SOFTMAX" in md
    assert "Estimated on board, not measured" in md
    assert inspect(model, measure=False).cost is None


def test_shipped_fits_are_monotone_in_macs():
    doc = load_cost_model()
    series = {  # growing MACs at a fixed spatial size, one series per kernel path
        "CONV_2D": [syn.conv(0, 8, c, 16, 3) for c in (1, 2, 4, 8, 16, 32)],
        "CONV_2D[1x1]": [syn.conv(0, 8, c, 16, 1) for c in (1, 2, 4, 8, 16, 32)],
        "DEPTHWISE_CONV_2D": [syn.conv(0, 8, c, 0, 3, "DEPTHWISE_CONV_2D") for c in (1, 4, 16, 64)],
        "FULLY_CONNECTED": [syn.fc(0, n, 16) for n in (8, 32, 128, 512)],
    }
    for name, table in doc["tables"].items():
        for key, entry in table["ops"].items():
            assert all(c >= 0 for c in entry["coef"]), (name, key)
            op = key.split("/")[0]
            if op in series and key.endswith("/int8"):
                fitted = OpFit.from_dict(key, entry)
                costs = [fitted.predict(r) for r in series[op]]
                assert all(a < b for a, b in zip(costs, costs[1:])), (name, key, costs)


#: The CMSIS-NN code paths the probes measure enough of for a fit of their own (model.op_keys).
CMSIS_NN_PATHS = {"CONV_2D[1x1]/int8", "CONV_2D[1x1s]/int8", "CONV_2D[cin<4]/int8",
                  "DEPTHWISE_CONV_2D[3x3]/int8", "DEPTHWISE_CONV_2D[mult]/int8"}


def test_shipped_tables_fit_every_code_path_and_meet_the_held_out_target():
    doc = load_cost_model()
    assert {"cmsis_nn/cortex-m7", "reference/cortex-m7"} <= set(doc["tables"])  # measured on the AN500
    for name, table in doc["tables"].items():
        assert CMSIS_NN_PATHS <= set(table["ops"]), name
        # issue 17's target: every held-out whole model within +-15% of the QEMU count
        errors = {m: e["rel_err"] for m, e in table["held_out_models"].items()}
        assert len(errors) >= 6 and all(abs(e) <= 0.15 for e in errors.values()), (name, errors)


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_every_preset_is_estimated_or_refused_by_what_the_model_ships(name):
    doc, device = load_cost_model(), DEVICES[name]
    tables = [f"{device.kernels}/{cpu}" for cpu in CORES[device.core].tables]
    if device.core in doc["cores"] and any(t in doc["tables"] for t in tables):
        e = estimate(tiny_model(), name)
        assert e.complete and e.total_cycles > 0 and 0 < e.rel_error < 1.5
        assert (e.total_uj is None) == (device.active_mw is None)
        cpi, records = doc["cores"][device.core]["cpi"], op_records(tiny_model())
        overhead = e.total_instructions - sum(c.instructions for c in e.layers)
        assert e.total_cycles == pytest.approx(
            sum(c.instructions * cpi[op_class(r)] for c, r in zip(e.layers, records)) + overhead * cpi["compute"])
    else:
        with pytest.raises(UnsupportedModelError, match=device.core):
            estimate(tiny_model(), name)
