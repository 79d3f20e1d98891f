"""Cost of running a model on a named microcontroller.

The measured table (records, rows, read/write) comes from the rig; the device
catalogue (`Device`, `get_device`) and the fitted cost model (`estimate`) build
on it. Every figure `estimate` returns is an estimate with its relative error
and the source it was fitted and calibrated on.

Example:
    >>> from tflite_export.cost import estimate
    >>> from tflite_export.testing import tiny_model
    >>> e = estimate(tiny_model(), "nrf52840")
    >>> e.device.name, len(e.layers), e.unknown_ops
    ('nrf52840', 2, ())
"""

# --- measured table (helper rig: tflite_export/cost/records.py) ---
from tflite_export.cost.records import (
    MeasuredOp,
    ModelTotal,
    OpRecord,
    held_out_models,
    op_records,
    read_model_table,
    read_table,
    write_model_table,
    write_table,
)

_RECORDS_ALL = [
    "OpRecord", "MeasuredOp", "ModelTotal", "op_records", "read_table", "write_table",
    "read_model_table", "write_model_table", "held_out_models",
]
# --- end measured table ---

from tflite_export.cost.devices import (
    CORES,
    DEVICES,
    KERNEL_LIBRARIES,
    Core,
    Device,
    DeviceError,
    get_device,
)
from tflite_export.cost.estimator import CostEstimate, LayerCost, estimate, load_cost_model

__all__ = [
    *_RECORDS_ALL,
    "Core", "Device", "DeviceError", "CORES", "DEVICES", "KERNEL_LIBRARIES", "get_device",
    "estimate", "CostEstimate", "LayerCost", "load_cost_model",
]
