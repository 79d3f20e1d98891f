"""Operator records and the measured-instructions table the cost model is fitted on.

An `OpRecord` is one operator's work as the cost model sees it: its builtin
name, input and output shapes and dtypes, the builtin options that change the
kernel's work, and its MACs (counted as `tflite_export.inspect` counts them).
`op_records` reads them from `.tflite` bytes with numpy only.

A `MeasuredOp` is one record measured on the rig (``bench/latency_rig``): the
instructions QEMU executed for that operator's ``Invoke`` on one core with one
kernel library. `read_table` / `write_table` read and write the table, a CSV
file with ``#`` comment lines for its metadata (``key: value``)::

    # tflm_commit: 90b983c2...
    model,op_index,op,kernels,cpu,input_shapes,input_dtypes,output_shapes,...
    conv_k3_s1_c8,0,CONV_2D,cmsis_nn,cortex-m4,"[[1,16,16,8],[8,3,3,8],[8]]",...

Shapes, dtypes and options are compact JSON. The metadata key ``held_out``
lists (comma-separated) the models measured only to check the fit, never to fit
(`held_out_models`). Whole-model totals (a full ``Invoke``, interpreter overhead
included) live in a second file of `ModelTotal` rows (`read_model_table`,
`write_model_table`).

Example:
    >>> from tflite_export.testing import tiny_model
    >>> first = op_records(tiny_model())[0]
    >>> first.op, first.input_shapes, first.macs, first.options["fused_activation"]
    ('FULLY_CONNECTED', ((1, 4), (8, 4), None), 32, 'RELU')
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tflite_export import _flatbuffer as fb
from tflite_export._ops_cost import macs as _macs
from tflite_export.atomic import write_files
from tflite_export.errors import ModelFormatError
from tflite_export.validate import validate

__all__ = [
    "OpRecord", "MeasuredOp", "ModelTotal", "op_records", "read_table", "write_table",
    "read_model_table", "write_model_table", "held_out_models", "KERNELS", "TABLE_COLUMNS",
    "MODEL_TABLE_COLUMNS",
]

#: Kernel libraries the rig measures (TFLM ``OPTIMIZED_KERNEL_DIR``; reference = none).
KERNELS = ("reference", "cmsis_nn")

TABLE_COLUMNS = ("model", "op_index", "op", "kernels", "cpu", "input_shapes", "input_dtypes",
                 "output_shapes", "output_dtypes", "options", "macs", "instructions")
MODEL_TABLE_COLUMNS = ("model", "kernels", "cpu", "ops", "instructions")

# Builtin option fields -> record option names; other scalar fields get snake_case names.
_RENAME = {
    "strideH": "stride_h", "strideW": "stride_w",
    "dilationHFactor": "dilation_h", "dilationWFactor": "dilation_w",
    "filterHeight": "filter_h", "filterWidth": "filter_w",
    "fusedActivationFunction": "fused_activation",
}
# Fields that do not change a kernel's work (types of other tensors, shape copies).
_SKIP = {"quantizedBiasType", "newShape", "quantSpec", "potScaleInt16", "asymmetricQuantizeInputs"}
_ENUMS = {
    "padding": {v: k for k, v in vars(fb.schema.Padding).items() if not k.startswith("_")},
    "fusedActivationFunction": {
        v: k for k, v in vars(fb.schema.ActivationFunctionType).items() if not k.startswith("_")
    },
}


@dataclass(frozen=True)
class OpRecord:
    """One operator's work, as the cost model sees it.

    Attributes:
        op_index: operator index in subgraph 0.
        op: TFLite builtin name, e.g. ``"CONV_2D"`` (``"CUSTOM:<code>"`` for custom ops).
        input_shapes: shape per input position, None for an omitted optional input.
        input_dtypes: dtype name per input (``"int8"``...), None for an omitted input.
        output_shapes: shape per output.
        output_dtypes: dtype name per output.
        options: JSON-able builtin options that change the kernel's work
            (``stride_h``, ``padding`` ``"SAME"``/``"VALID"``, ``fused_activation``,
            ``filter_h``...; only what the op has).
        macs: multiply-accumulates (`tflite_export._ops_cost.macs`).
    """

    op_index: int
    op: str
    input_shapes: tuple[tuple[int, ...] | None, ...]
    input_dtypes: tuple[str | None, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    output_dtypes: tuple[str, ...]
    options: dict = field(hash=False, compare=True)
    macs: int


@dataclass(frozen=True)
class MeasuredOp:
    """One operator measured on the rig.

    Attributes:
        model: name of the measured model (a row of the model table).
        kernels: ``"reference"`` or ``"cmsis_nn"``.
        cpu: gcc ``-mcpu`` name, e.g. ``"cortex-m4"``.
        record: the operator.
        instructions: instructions QEMU executed for the operator's ``Invoke``.
    """

    model: str
    kernels: str
    cpu: str
    record: OpRecord
    instructions: int


@dataclass(frozen=True)
class ModelTotal:
    """One whole ``Invoke`` measured on the rig (interpreter overhead included).

    Attributes:
        model: model name.
        kernels: ``"reference"`` or ``"cmsis_nn"``.
        cpu: gcc ``-mcpu`` name.
        ops: operators in subgraph 0.
        instructions: instructions of the full ``Invoke``.
    """

    model: str
    kernels: str
    cpu: str
    ops: int
    instructions: int


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _options(builtin_options) -> dict:
    out = {}
    for key, value in sorted((vars(builtin_options) if builtin_options is not None else {}).items()):
        if key in _SKIP or not isinstance(value, (bool, int, float)):
            continue
        if key in _ENUMS:
            value = _ENUMS[key].get(value, f"UNKNOWN_{value}")
        out[_RENAME.get(key, _snake(key))] = value
    return out


def _dtype(t: fb.TensorView) -> str:
    return t.dtype.name if t.dtype is not None else t.type_name.lower()


def op_records(model: bytes) -> list[OpRecord]:
    """The operators of subgraph 0 as `OpRecord`s, in execution order.

    Args:
        model: `.tflite` flatbuffer bytes.

    Returns:
        One record per operator.

    Raises:
        ModelFormatError: the bytes are not a valid model.
    """
    validate(model)
    view = fb.ModelView(bytes(model))
    raw_ops = view.model.subgraphs[0].operators or []
    records = []
    for op, raw in zip((o for o in view.operators if o.subgraph == 0), raw_ops):
        name = f"CUSTOM:{op.custom_code}" if op.name == "CUSTOM" else op.name
        ins = [view.tensors[i] if i >= 0 else None for i in op.inputs]
        outs = [view.tensors[i] for i in op.outputs]
        in_shapes = tuple(None if t is None else t.shape for t in ins)
        out_shapes = tuple(t.shape for t in outs)
        records.append(OpRecord(
            op_index=op.index,
            op=name,
            input_shapes=in_shapes,
            input_dtypes=tuple(None if t is None else _dtype(t) for t in ins),
            output_shapes=out_shapes,
            output_dtypes=tuple(_dtype(t) for t in outs),
            options=_options(raw.builtinOptions),
            macs=_macs(op.name, in_shapes, out_shapes, raw.builtinOptions),
        ))
    return records


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _shapes(text: str) -> tuple:
    return tuple(None if s is None else tuple(int(d) for d in s) for s in json.loads(text))


def _header(meta: Mapping[str, str]) -> str:
    lines = []
    for key, value in meta.items():
        key, value = str(key), str(value)
        if not re.fullmatch(r"[A-Za-z0-9_]+", key) or "\n" in value:
            raise ModelFormatError(
                f"expected table metadata keys of letters, digits and '_' and one-line values. "
                f"Received {key!r}: {value!r}."
            )
        lines.append(f"# {key}: {value}\n")
    return "".join(lines)


def _write_csv(path, meta: Mapping[str, str], columns, rows: Iterable[tuple]) -> None:
    buf = io.StringIO()
    buf.write(_header(meta))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    path = Path(path)
    write_files(path.parent, {path.name: buf.getvalue()})


def _read_csv(path, columns) -> tuple[dict[str, str], list[dict[str, str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ModelFormatError(f"cannot read the measured table {str(path)!r}: {e.strerror}.") from e
    meta, body = {}, []
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            key, sep, value = line[1:].strip().partition(":")
            if sep:
                meta[key.strip()] = value.strip()
        else:
            body.append(line)
    reader = csv.DictReader(body)
    if tuple(reader.fieldnames or ()) != tuple(columns):
        raise ModelFormatError(
            f"expected the columns {','.join(columns)} in {str(path)!r}. Received "
            f"{','.join(reader.fieldnames or ())}. Regenerate it with bench/latency_rig."
        )
    return meta, list(reader)


def write_table(path: str | os.PathLike, meta: Mapping[str, str], rows: Iterable[MeasuredOp]) -> None:
    """Write the measured operator table, replacing ``path`` by one rename.

    Args:
        path: the CSV file.
        meta: header metadata (``tflm_commit``, ``qemu``, ``gcc``, ``generated``,
            ``command``, ``held_out``...), one line each.
        rows: the measured operators.

    Raises:
        ModelFormatError: a metadata key is not an identifier or a value spans lines.
    """
    _write_csv(path, meta, TABLE_COLUMNS, (
        (m.model, m.record.op_index, m.record.op, m.kernels, m.cpu,
         _json(m.record.input_shapes), _json(m.record.input_dtypes),
         _json(m.record.output_shapes), _json(m.record.output_dtypes),
         _json(m.record.options), m.record.macs, m.instructions)
        for m in rows
    ))


def read_table(path: str | os.PathLike) -> tuple[dict[str, str], list[MeasuredOp]]:
    """Read a table `write_table` wrote.

    Args:
        path: the CSV file.

    Returns:
        (header metadata, rows in file order).

    Raises:
        ModelFormatError: the file is missing, has other columns or a bad row.
    """
    meta, rows = _read_csv(path, TABLE_COLUMNS)
    out = []
    for n, r in enumerate(rows, start=1):
        try:
            record = OpRecord(
                op_index=int(r["op_index"]), op=r["op"],
                input_shapes=_shapes(r["input_shapes"]),
                input_dtypes=tuple(json.loads(r["input_dtypes"])),
                output_shapes=_shapes(r["output_shapes"]),
                output_dtypes=tuple(json.loads(r["output_dtypes"])),
                options=json.loads(r["options"]), macs=int(r["macs"]),
            )
            out.append(MeasuredOp(r["model"], r["kernels"], r["cpu"], record, int(r["instructions"])))
        except (ValueError, TypeError) as e:
            raise ModelFormatError(f"bad row {n} in {str(path)!r}: {e}. Regenerate the table.") from e
    return meta, out


def write_model_table(path: str | os.PathLike, meta: Mapping[str, str],
                      rows: Iterable[ModelTotal]) -> None:
    """Write whole-model totals (``model,kernels,cpu,ops,instructions``) atomically.

    Args:
        path: the CSV file.
        meta: header metadata, as for `write_table`.
        rows: the totals.
    """
    _write_csv(path, meta, MODEL_TABLE_COLUMNS,
               ((t.model, t.kernels, t.cpu, t.ops, t.instructions) for t in rows))


def read_model_table(path: str | os.PathLike) -> tuple[dict[str, str], list[ModelTotal]]:
    """Read a table `write_model_table` wrote.

    Args:
        path: the CSV file.

    Returns:
        (header metadata, rows in file order).

    Raises:
        ModelFormatError: the file is missing, has other columns or a bad row.
    """
    meta, rows = _read_csv(path, MODEL_TABLE_COLUMNS)
    try:
        return meta, [ModelTotal(r["model"], r["kernels"], r["cpu"], int(r["ops"]),
                                 int(r["instructions"])) for r in rows]
    except (ValueError, TypeError) as e:
        raise ModelFormatError(f"bad row in {str(path)!r}: {e}. Regenerate the table.") from e


def held_out_models(meta: Mapping[str, str]) -> frozenset[str]:
    """Models a table measured only to check the fit (metadata ``held_out``).

    Args:
        meta: the header metadata `read_table` returned.

    Returns:
        Their names; empty when the table holds none.
    """
    return frozenset(m.strip() for m in meta.get("held_out", "").split(",") if m.strip())
