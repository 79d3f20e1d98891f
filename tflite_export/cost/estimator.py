"""Estimated instructions, cycles, milliseconds and energy of a model on a device.

`estimate` looks every operator up in the shipped cost model
(``tflite_export/data/cost/cost_model.json``, fitted by
``python -m tflite_export.cost.fit`` on instructions counted under QEMU), adds
the interpreter's per-operator work, and converts with the device: each
operator's instructions times the core's cycles per instruction (CPI) of its
class (`tflite_export.cost.cycles`: matrix-vector FULLY_CONNECTED layers stream
their weights from flash, everything else computes on the arena; both CPIs
calibrated on published silicon latencies), ``ms = cycles / (MHz * 1000)``,
``uJ = ms * active mW``.
Everything is an estimate and says so: each figure carries a relative error
(``rel_error``) and the estimate names what it was fitted and calibrated on
(``source``). An operator the model has no data for is flagged
(``known=False``, listed in ``unknown_ops``) and left out of the totals, which
say so; it never counts as zero silently. Operators of subgraphs other than the
main one (control-flow bodies) are not estimated and are listed the same way.

Example:
    >>> from tflite_export.testing import tiny_model
    >>> e = estimate(tiny_model(), "stm32l4r5")
    >>> [layer.op for layer in e.layers], e.unknown_ops
    (['FULLY_CONNECTED', 'FULLY_CONNECTED'], ())
    >>> e.total_ms > 0 and 0 < e.rel_error < 1
    True
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from tflite_export import _flatbuffer as fb
from tflite_export.cost.cycles import CLASSES, op_class
from tflite_export.cost.devices import CORES, Device, get_device
from tflite_export.cost.model import OpFit, op_keys
from tflite_export.cost.records import OpRecord, op_records
from tflite_export.errors import ModelFormatError, UnsupportedModelError

__all__ = [
    "LayerCost", "CostEstimate", "estimate", "load_cost_model", "class_instructions", "DATA_DIR",
    "MODEL_FILE", "FORMAT",
]

#: Package data of the cost model: the rig's tables, silicon.csv and the fitted model.
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "cost"
#: The fitted cost model `estimate` reads (written by ``python -m tflite_export.cost.fit``).
MODEL_FILE = DATA_DIR / "cost_model.json"

#: Version of the cost model document (2: one CPI per operator class, `tflite_export.cost.cycles`).
FORMAT = 2
#: Relative error added (in quadrature) when a core borrows another CPU's instruction table.
PROXY_TABLE_ERROR = 0.25


@dataclass(frozen=True)
class LayerCost:
    """Estimated cost of one operator (subgraph 0).

    Attributes:
        index: operator index.
        op: operator name.
        instructions, cycles, ms: estimates, None when not ``known``.
        uj: energy estimate, None when not ``known`` or the device's power is unknown.
        rel_error: relative uncertainty of ``cycles``/``ms`` (None when not known).
        uj_rel_error: relative uncertainty of ``uj`` (adds the power's), or None.
        known: the cost model has data for this op, dtype and device.
    """

    index: int
    op: str
    instructions: float | None
    cycles: float | None
    ms: float | None
    uj: float | None
    rel_error: float | None
    uj_rel_error: float | None
    known: bool


@dataclass(frozen=True)
class CostEstimate:
    """Estimated cost of one inference on one device.

    Attributes:
        device: the `Device`.
        layers: one `LayerCost` per operator, in execution order.
        total_instructions, total_cycles, total_ms: sums over the known layers
            plus the interpreter's per-op work (unknown layers excluded).
        total_uj: energy, or None when the device's active power is unknown.
        rel_error: relative uncertainty of the cycle/ms totals (held-out
            whole-model error of the instruction table and the core's CPI error
            per class weighted by the class's share of the cycles, in quadrature).
        uj_rel_error: relative uncertainty of ``total_uj`` (adds the power's), or None.
        unknown_ops: operators without data, excluded from the totals.
        source: what the estimate was fitted and calibrated on.
    """

    device: Device
    layers: tuple[LayerCost, ...]
    total_instructions: float
    total_cycles: float
    total_ms: float
    total_uj: float | None
    rel_error: float
    uj_rel_error: float | None
    unknown_ops: tuple[str, ...]
    source: str

    @property
    def complete(self) -> bool:
        """Every operator is covered (the totals exclude nothing)."""
        return not self.unknown_ops

    def to_dict(self) -> dict:
        """JSON-ready dictionary, labelled ``"estimated": True``."""
        d = asdict(self)
        d["device"] = self.device.to_dict()
        d["estimated"] = True
        d["totals_exclude"] = list(self.unknown_ops)
        return d


def load_cost_model(path: str | None = None) -> dict:
    """The fitted cost model (JSON document), read once per file.

    Args:
        path: a JSON file `tflite_export.cost.fit` wrote. Default None: the shipped one.

    Returns:
        The parsed document (shared: do not modify it).

    Raises:
        ModelFormatError: the file is missing or not a cost model.
    """
    return _load(str(Path(path) if path is not None else MODEL_FILE))


@functools.lru_cache(maxsize=4)
def _load(file: str) -> dict:
    try:
        doc = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFormatError(
            f"cannot read the cost model {file!r}: {e}. Regenerate it with "
            "`python -m tflite_export.cost.fit`.") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "tables" not in doc:
        raise ModelFormatError(f"expected a cost model (format {FORMAT}) in {file!r}. Regenerate it with "
                               "`python -m tflite_export.cost.fit`.")
    return doc


def _tables_for(doc: dict, device: Device) -> list[tuple[str, bool]]:
    """Candidate table names for the device, best first, each with 'is a proxy'."""
    names = (f"{device.kernels}/{cpu}" for cpu in CORES[device.core].tables)
    return [(name, n > 0) for n, name in enumerate(names) if name in doc["tables"]]


def _lookup(doc: dict, tables: list[tuple[str, bool]], record: OpRecord):
    """(table, is a proxy, OpFit, JSON entry) of the best table and most specific key, or None."""
    for name, proxy in tables:
        ops = doc["tables"][name]["ops"]
        key = next((k for k in op_keys(record) if k in ops), None)
        if key is not None:
            return name, proxy, OpFit.from_dict(key, ops[key]), ops[key]
    return None


def _layer(record: OpRecord, found, cpi: float, cpi_err: float, device: Device) -> LayerCost:
    if found is None:
        return LayerCost(record.op_index, record.op, None, None, None, None, None, None, False)
    _, proxy, fit, entry = found
    instructions = fit.predict(record)
    op_err = entry.get("held_out_rel_rms") or entry["fit_rel_rms"] * 2
    err = math.hypot(op_err, cpi_err, PROXY_TABLE_ERROR if proxy else 0.0)
    ms = instructions * cpi / (device.mhz * 1e3)
    uj = None if device.active_mw is None else ms * device.active_mw
    uj_err = None if uj is None else round(math.hypot(err, device.power_rel_error), 4)
    return LayerCost(record.op_index, record.op, instructions, instructions * cpi, ms, uj,
                     round(err, 4), uj_err, True)


def class_instructions(doc: dict, device: Device, records: list[OpRecord]) -> dict[str, float] | None:
    """Estimated instructions of one whole inference, split by cycle-model class.

    The calibration in `tflite_export.cost.fit` uses it, so that a calibrated
    result is reproduced by `estimate` exactly.

    Args:
        doc: a cost model document (only its ``tables`` are read).
        device: gives the core (its tables) and the kernel library.
        records: every operator of the model's subgraph 0.

    Returns:
        ``{class: instructions}`` (`tflite_export.cost.cycles.CLASSES`; the
        interpreter's per-op work counts as ``compute``), or None when the
        tables miss an operator.
    """
    tables = _tables_for(doc, device)
    found = [_lookup(doc, tables, r) for r in records]
    if not tables or any(f is None for f in found):
        return None
    out = dict.fromkeys(CLASSES, 0.0)
    for r, f in zip(records, found):
        out[op_class(r)] += f[2].predict(r)
    out["compute"] += doc["tables"][tables[0][0]]["overhead_per_op"] * len(records)
    return out


def estimate(model: bytes, device: str | Device, *, cost_model: str | None = None) -> CostEstimate:
    """Estimate per-layer and total instructions, cycles, ms and µJ of one inference.

    Args:
        model: `.tflite` flatbuffer bytes.
        device: a preset name of `tflite_export.cost.DEVICES` or a `Device`.
        cost_model: path of another fitted cost model JSON. Default None: the shipped one.

    Returns:
        A `CostEstimate`.

    Raises:
        DeviceError: unknown device name.
        ModelFormatError: the model or the cost model is malformed.
        UnsupportedModelError: the cost model has no instruction table or
            CPI for the device's core and kernel library.
    """
    dev = get_device(device)
    doc = load_cost_model(cost_model)
    tables = _tables_for(doc, dev)
    core = doc.get("cores", {}).get(dev.core)
    if not tables or core is None:
        raise UnsupportedModelError(
            f"the cost model has no {'instruction table' if not tables else 'CPI'} for "
            f"{dev.core} with {dev.kernels} kernels (tables: {sorted(doc['tables'])}, cores: "
            f"{sorted(doc.get('cores', {}))}). Pick another device or refit with a measured table.")
    records = op_records(model)
    # Ops of other subgraphs (control-flow bodies) are not estimated: named, never dropped silently.
    nested = [f"{op.name} (subgraph {op.subgraph})" for op in fb.ModelView(bytes(model)).operators
              if op.subgraph != 0]
    found = [_lookup(doc, tables, r) for r in records]
    cpi = core["cpi"]
    layers = tuple(_layer(r, f, cpi[op_class(r)], core["rel_error"][op_class(r)], dev)
                   for r, f in zip(records, found))
    known = [layer for layer in layers if layer.known]
    main = doc["tables"][tables[0][0]]
    overhead = main["overhead_per_op"] * len(known)
    instructions = sum(layer.instructions for layer in known) + overhead
    # The interpreter's own work between kernels is compute-class code.
    cycles = sum(layer.cycles for layer in known) + overhead * cpi["compute"]
    ms = cycles / (dev.mhz * 1e3)
    proxy = any(f is not None and f[1] for f in found)
    # The CPI error of the total: each class's error weighted by its share of the cycles.
    compute_cycles = overhead * cpi["compute"] + sum(
        layer.cycles for layer, r in zip(layers, records) if layer.known and op_class(r) == "compute")
    cpi_err = (compute_cycles * core["rel_error"]["compute"]
               + (cycles - compute_cycles) * core["rel_error"]["stream"]) / cycles if cycles else 0.0
    err = math.hypot(main["rel_error"], cpi_err, PROXY_TABLE_ERROR if proxy else 0.0)
    uj = None if dev.active_mw is None else ms * dev.active_mw
    uj_err = None if uj is None else math.hypot(err, dev.power_rel_error)
    used = sorted({f[0] for f in found if f is not None}) or [tables[0][0]]
    source = (f"QEMU -icount instruction tables {', '.join(used)} (TFLM {doc['tflm_commit'][:12]}) x "
              f"CPI {cpi['compute']} (compute) / {cpi['stream']} (stream: matrix-vector "
              f"FULLY_CONNECTED) for {dev.core} ({core['method']}"
              + (f": {'; '.join(core['calibrated_on'])}" if core["calibrated_on"] else "") + ")")
    return CostEstimate(
        device=dev, layers=layers, total_instructions=instructions, total_cycles=cycles,
        total_ms=ms, total_uj=uj, rel_error=round(err, 4),
        uj_rel_error=None if uj_err is None else round(uj_err, 4),
        unknown_ops=tuple(dict.fromkeys([layer.op for layer in layers if not layer.known] + nested)),
        source=source,
    )
