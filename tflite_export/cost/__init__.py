"""Cost of running a model on a named microcontroller.

The measured table (records, rows, read/write) comes from the rig; the device
catalogue and the fitted cost model build on it.
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

__all__ = [*_RECORDS_ALL]
