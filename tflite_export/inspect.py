"""Inspect a `.tflite` model: flash, weights, MACs, arena, per-operator details.

Reads the flatbuffer with numpy only; the one native step, measuring the tensor
arena, runs TFLM in a child process (`tflite_export.measure_arena`) and can be
skipped with ``measure=False``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export._ops_cost import (
    DECODE_CUSTOM_CODE,
    OUT_CHANNEL_AXIS,
    SHAPE_INPUTS,
    WEIGHT_INPUTS,
    macs,
)
from tflite_export.io_details import input_details, output_details
from tflite_export.report import LayerReport, ModelReport
from tflite_export.tflm_ops import is_supported
from tflite_export.validate import validate

if TYPE_CHECKING:
    from tflite_export.cost.devices import Device

__all__ = ["inspect"]


@dataclass(frozen=True)
class _Tensor:
    shape: tuple[int, ...]
    type: int
    buffer: int
    nbytes: int
    quantization: object | None

    @property
    def dtype(self) -> str:
        dtype = fb.numpy_dtype(self.type)
        return dtype.name if dtype is not None else fb.tensor_type_name(self.type).lower()

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _text(value) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _buffer_bytes(m, data: bytes) -> list[bytes]:
    out = []
    for buf in m.buffers or []:
        if buf is not None and buf.data is not None and len(buf.data):
            out.append(bytes(np.asarray(buf.data, dtype=np.uint8)))
        elif buf is not None and buf.offset > 1:
            out.append(bytes(data[buf.offset:buf.offset + buf.size]))
        else:
            out.append(b"")
    return out


def _op_label(code) -> tuple[str, str]:
    name = fb.op_name(code)
    custom = _text(code.customCode)
    return name, (f"CUSTOM:{custom}" if name == "CUSTOM" else name)


def _values(t: _Tensor, raw: bytes) -> np.ndarray | None:
    dtype = fb.numpy_dtype(t.type)
    if not raw or dtype is None or len(raw) != t.size * dtype.itemsize:
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(t.shape)


def _zero_level(t: _Tensor) -> np.ndarray | int:
    q = t.quantization
    zp = [] if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint]
    if len(zp) <= 1:
        return zp[0] if zp else 0
    shape = [1] * len(t.shape)
    shape[int(q.quantizedDimension)] = len(zp)
    return np.asarray(zp).reshape(shape)


def _weight_zeros(t: _Tensor, raw: bytes, axis: int) -> tuple[int, int] | None:
    """Zero elements and all-zero output channels of constant weights."""
    values = _values(t, raw)
    if values is None or values.size == 0 or not 0 <= axis < values.ndim:
        return None
    zero = values == _zero_level(t)
    per_channel = np.moveaxis(zero, axis, 0).reshape(values.shape[axis], -1)
    return int(zero.sum()), int(per_channel.all(axis=1).sum())


def _layer_report(m, s: int, k: int, op, tensors, raw, weight_buffers: set[int],
                  param_tensors: dict[tuple[int, int], int]):
    """One operator's `LayerReport`, and (zero kernel elements, kernel elements) or None.

    Adds the op's weight buffers to ``weight_buffers`` and its parameter
    tensors to ``param_tensors`` (shared tensors are counted once by the caller).
    """
    name, label = _op_label(m.operatorCodes[op.opcodeIndex])
    ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
    outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
    in_shapes = tuple(tensors[i].shape if i >= 0 else None for i in ins)
    out_shapes = tuple(tensors[i].shape for i in outs)
    weight_pos = WEIGHT_INPUTS.get(name, ())
    shape_pos = SHAPE_INPUTS.get(name, ())
    is_decode = label == f"CUSTOM:{DECODE_CUSTOM_CODE}"
    params = param_bytes = 0
    for pos, i in enumerate(ins):
        if i < 0 or pos in shape_pos:
            continue
        t = tensors[i]
        if t.nbytes:
            param_bytes += t.nbytes
            weight_buffers.add(t.buffer)
        if (t.nbytes and not is_decode) or pos in weight_pos:
            params += t.size
            param_tensors[(s, i)] = t.size
    weight_shape = out_ch = sparsity = zero_ch = counted = None
    per_channel = False
    if weight_pos and len(ins) > weight_pos[0] and ins[weight_pos[0]] >= 0:
        w = tensors[ins[weight_pos[0]]]
        axis = OUT_CHANNEL_AXIS[name]
        weight_shape = w.shape
        out_ch = w.shape[axis] if axis < len(w.shape) else None
        q = w.quantization
        per_channel = q is not None and q.scale is not None and len(q.scale) > 1
        zeros = _weight_zeros(w, raw[w.buffer], axis)
        if zeros is not None:
            sparsity, zero_ch = zeros[0] / w.size, zeros[1]
            counted = (zeros[0], w.size)
    layer = LayerReport(
        index=k,
        subgraph=s,
        op=label,
        input_shapes=in_shapes,
        input_dtypes=tuple(tensors[i].dtype if i >= 0 else None for i in ins),
        output_shapes=out_shapes,
        output_dtypes=tuple(tensors[i].dtype for i in outs),
        params=params,
        param_bytes=param_bytes,
        macs=macs(name, in_shapes, out_shapes, op.builtinOptions),
        weight_shape=weight_shape,
        out_channels=out_ch,
        sparsity=sparsity,
        zero_channels=zero_ch,
        per_channel=per_channel,
        tflm_supported=is_supported(name, label.partition(":")[2] or None),
    )
    return layer, counted


def _with_cost(report: ModelReport, data: bytes, device: str | Device) -> ModelReport:
    """``report`` with the cost estimate on ``device`` (per layer of subgraph 0 and total)."""
    from tflite_export.cost.estimator import estimate

    cost = estimate(data, device)
    per_op = {c.index: c for c in cost.layers}
    layers = tuple(replace(layer, cost=per_op.get(layer.index)) if layer.subgraph == 0 else layer
                   for layer in report.layers)
    return replace(report, layers=layers, cost=cost)


def inspect(model: bytes, *, measure: bool = True, device: str | Device | None = None) -> ModelReport:
    """Report what a model costs on a device and whether TFLM can run it.

    The model is validated first. Weights are the constant inputs of operators
    other than shape, axis and padding arguments (see
    `tflite_export._ops_cost.SHAPE_INPUTS`); MACs are counted per operator as
    documented in `tflite_export._ops_cost` (convolutions, depthwise and
    transposed convolutions, fully connected, batch matmul, pooling, mean/sum
    and element-wise arithmetic; activations and data movement count 0).

    Args:
        model: `.tflite` flatbuffer bytes.
        measure: run TFLM in a child process to measure the tensor arena.
            Default True; False leaves ``arena_bytes`` None and needs no
            native code.
        device: a device preset name (``"nrf52840"``, ``"stm32l4r5"``...; see
            `tflite_export.cost.DEVICES`) or a `tflite_export.cost.Device`:
            add the estimated cycles, ms and µJ per layer and in total, each
            with its relative error (`tflite_export.cost.estimate`). Default
            None: no estimate.

    Returns:
        A `ModelReport`.

    Raises:
        ModelFormatError: the model is malformed.
        RuntimeCheckError: ``measure=True`` and TFLM could not run the model.
        DeviceError: ``device`` is not a preset name or a `Device`.

    Example:
        >>> import tflite_export
        >>> r = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False)
        >>> r.ops, r.macs, r.params, r.weight_bytes
        (('FULLY_CONNECTED',), 56, 56, 56)
        >>> r = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False,
        ...                           device="stm32l4r5")
        >>> r.cost.total_ms > 0, r.layers[0].cost.known
        (True, True)
    """
    validate(model)
    data = bytes(model)
    m = fb.unpack(data)
    raw = _buffer_bytes(m, data)
    layers: list[LayerReport] = []
    weight_buffers: set[int] = set()
    param_tensors: dict[tuple[int, int], int] = {}
    kernel_zeros = kernel_elements = 0
    for s, sg in enumerate(m.subgraphs):
        tensors = [
            _Tensor(tuple(int(d) for d in (t.shape if t.shape is not None else [])),
                    int(t.type), int(t.buffer), len(raw[t.buffer]), t.quantization)
            for t in sg.tensors or []
        ]
        for k, op in enumerate(sg.operators or []):
            layer, zeros = _layer_report(m, s, k, op, tensors, raw, weight_buffers, param_tensors)
            layers.append(layer)
            if zeros is not None:
                kernel_zeros += zeros[0]
                kernel_elements += zeros[1]
    counts = Counter(layer.op for layer in layers)
    ops = tuple(dict.fromkeys(layer.op for layer in layers))
    unsupported = tuple(dict.fromkeys(layer.op for layer in layers if not layer.tflm_supported))
    weight_bytes = sum(len(raw[b]) for b in weight_buffers)
    arena = None
    if measure:
        from tflite_export.arena import measure_arena

        arena = measure_arena(data)
    report = ModelReport(
        flash_bytes=len(data),
        weight_bytes=weight_bytes,
        overhead_bytes=len(data) - weight_bytes,
        params=sum(param_tensors.values()),
        macs=sum(layer.macs for layer in layers),
        arena_bytes=None if arena is None else arena.host_bytes,
        arena_emitted_bytes=None if arena is None else arena.emitted_bytes,
        ops=ops,
        op_counts=dict(counts),
        layers=tuple(layers),
        inputs=tuple(input_details(data)),
        outputs=tuple(output_details(data)),
        tflm_supported=not unsupported,
        unsupported_ops=unsupported,
        weight_sparsity=kernel_zeros / kernel_elements if kernel_elements else 0.0,
    )
    return report if device is None else _with_cost(report, data, device)
