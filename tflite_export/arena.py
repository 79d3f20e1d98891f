"""Measure the tensor arena TFLM really allocates, and size it for a device.

TFLM's recording allocator reports the head (planned tensor buffers) and tail
(persistent data) it holds after the model is set up and run once; planning
also needs temporary head space, so the arena TFLM really requires is found by
bisection: the smallest size with which the interpreter sets up and runs the
model, exact to the byte. That figure comes from the host build of TFLM
(64-bit pointers), whose bookkeeping structs are larger than on a 32-bit MCU, so
it is an upper bound for the reference kernels on a 32-bit target. Optimized
kernels (CMSIS-NN on Cortex-M) additionally ask for scratch buffers that the
host's reference kernels do not; `kernel_scratch_bound` adds a conservative bound
for those. The emitted ``kTensorArenaSize`` is

    align16(required host bytes + kernel scratch bound + margin)

where margin is `ARENA_MARGIN_BYTES`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.errors import RuntimeCheckError
from tflite_export.io_details import input_details
from tflite_export.progress import Progress
from tflite_export.runtime import _default_arena, call_worker, check_host_memory
from tflite_export.validate import validate

__all__ = [
    "ARENA_MARGIN_BYTES",
    "ArenaMeasurement",
    "measure_arena",
    "arena_fits",
    "kernel_scratch_bound",
    "host_arena_limit",
]

#: Bytes added on top of the measured arena (alignment of a user's buffer,
#: minor differences between TFLM releases).
ARENA_MARGIN_BYTES = 256

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")


@dataclass(frozen=True)
class ArenaMeasurement:
    """Arena bytes of one model.

    Attributes:
        host_bytes: smallest arena with which TFLM sets up and runs the model
            on this host (found by bisection).
        head_bytes: non-persistent part after setup (tensor buffers planned by
            TFLM), as TFLM's recording allocator reports it.
        tail_bytes: persistent part (bookkeeping, kernel data, quantization).
        scratch_bound_bytes: upper bound of optimized-kernel scratch buffers.
        margin_bytes: fixed safety margin.
        emitted_bytes: the ``kTensorArenaSize`` to put in firmware.
    """

    host_bytes: int
    head_bytes: int
    tail_bytes: int
    scratch_bound_bytes: int
    margin_bytes: int
    emitted_bytes: int

    note: str = (
        "Measured with the host TFLM build (64-bit pointers), whose bookkeeping "
        "exceeds a 32-bit MCU's; the emitted size adds a bound for CMSIS-NN "
        "scratch buffers and a fixed margin, so it is safe for 32-bit targets."
    )

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the fields."""
        return asdict(self)


#: Invokes a measurement runs: one setup, about 24 bisection steps, margin.
_MEASURE_RUNS = 32
#: Channels CMSIS-NN's MVE depthwise kernel gathers per im2col column (its ``CH_IN_BLOCK_MVE``).
_MVE_CHANNEL_BLOCK = 124


def _zero_inputs(model: bytes, arena_size: int) -> list[np.ndarray]:
    """One sample of zero points per input, refused before allocation when it
    cannot fit the host arena."""
    details = input_details(model)
    shapes = [tuple(max(1, s) for s in d.shape) or (1,) for d in details]
    need = sum(int(np.prod(sh, dtype=np.int64)) * np.dtype(d.dtype).itemsize
               for sh, d in zip(shapes, details))
    check_host_memory(model, need, arena_size)
    return [np.full(sh, d.zero_point, dtype=np.dtype(d.dtype)) for sh, d in zip(shapes, details)]


def kernel_scratch_bound(model: bytes) -> int:
    """Upper bound of the scratch buffer CMSIS-NN kernels may request.

    Scratch buffers live only while their operator runs, so the largest one
    bounds what they add to the arena. Convolutions use an im2col buffer of at
    most two columns of int16 (``4 * in_channels * kh * kw`` bytes); a depthwise
    convolution on the Cortex-M55's MVE kernel takes four columns of a block of
    at least 124 channels (``4 * max(channels, 124) * kh * kw`` bytes), plus its
    filter when it has one input channel (then run as a convolution); average
    pooling uses ``4 * channels`` bytes.

    Args:
        model: `.tflite` flatbuffer bytes.

    Returns:
        Bytes, rounded up to 16.

    Raises:
        ModelFormatError: the model is malformed.

    Example:
        >>> import tflite_export
        >>> tflite_export.kernel_scratch_bound(tflite_export.testing.tiny_model())
        0
    """
    validate(model)
    m = fb.unpack(model)
    largest = 0
    for sg in m.subgraphs or []:
        for op in sg.operators or []:
            name = fb.op_name(m.operatorCodes[op.opcodeIndex])
            ins = [sg.tensors[i] for i in op.inputs if i >= 0]
            # validate() guarantees 4-D input and filter for these operators.
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                extra = 0
                channels, window = int(ins[0].shape[-1]), int(ins[1].shape[1]) * int(ins[1].shape[2])
                if name == "DEPTHWISE_CONV_2D":  # CMSIS-NN's MVE channel block (CH_IN_BLOCK_MVE)
                    extra = window * int(ins[1].shape[-1]) if channels == 1 else 0
                    channels = max(channels, _MVE_CHANNEL_BLOCK)
                largest = max(largest, 4 * channels * window + extra)
            elif name == "AVERAGE_POOL_2D":
                largest = max(largest, 4 * int(ins[0].shape[-1]))
    return (largest + 15) // 16 * 16


def measure_arena(
    model: bytes,
    *,
    timeout_s: float | None = None,
    arena_size: int | None = None,
    progress: Progress | None = None,
) -> ArenaMeasurement:
    """Measure the arena TFLM allocates to set up and run a model once.

    Args:
        model: `.tflite` flatbuffer bytes.
        timeout_s: seconds before the child interpreter is killed. Default
            None: estimated from the model's work (`tflite_export.runtime.time_limit`).
        arena_size: largest arena tried, and the limit for the model's inputs.
            Default None: 8 MiB plus 4 bytes per model byte.
        progress: called as ``progress("measuring the tensor arena", done,
            total)`` over the bisection steps (see `tflite_export.progress`).
            Default None.

    Returns:
        An `ArenaMeasurement` with the host figure and the emitted size.

    Raises:
        ModelFormatError: the model is malformed.
        UnsupportedModelError: the model's inputs alone exceed ``arena_size``.
        RuntimeCheckError: TFLM could not run the model.

    Example:
        >>> import tflite_export
        >>> a = tflite_export.measure_arena(tflite_export.testing.tiny_model())
        >>> a.host_bytes > 0 and a.emitted_bytes % 16 == 0 and a.emitted_bytes > a.host_bytes
        True
    """
    validate(model)
    arena = int(arena_size or _default_arena(model))
    _, meta, stderr = call_worker(model, "tflm_arena", _zero_inputs(model, arena),
                                  arena_size=arena, timeout_s=timeout_s, runs=_MEASURE_RUNS,
                                  on_progress=None if progress is None else (
                                      lambda done, total: progress("measuring the tensor arena",
                                                                   done, total)))
    found = [r.search(stderr) for r in (_TOTAL, _HEAD, _TAIL)]
    if not all(found):
        raise RuntimeCheckError(
            "TFLM's recording allocator printed no arena totals; the tflite-micro "
            "package may be too old. Upgrade tflite-micro. Its output was:\n" + stderr[-2000:]
        )
    _, head, tail = (int(f.group(1)) for f in found)
    required = int(meta.get("required", 0))
    scratch = kernel_scratch_bound(model)
    emitted = _emitted(required, scratch)
    return ArenaMeasurement(
        host_bytes=required,
        head_bytes=head,
        tail_bytes=tail,
        scratch_bound_bytes=scratch,
        margin_bytes=ARENA_MARGIN_BYTES,
        emitted_bytes=emitted,
    )


def _emitted(host_bytes: int, scratch_bytes: int) -> int:
    """The ``kTensorArenaSize`` emitted for a host arena and a kernel scratch bound."""
    return (host_bytes + scratch_bytes + ARENA_MARGIN_BYTES + 15) // 16 * 16


def host_arena_limit(model: bytes, emitted_budget: int) -> int:
    """The largest host arena (as `measure_arena` reports it) whose emitted
    ``kTensorArenaSize`` stays within ``emitted_budget``: the budget less the
    model's kernel scratch bound and `ARENA_MARGIN_BYTES`, at 16-byte alignment.
    Encoding constant tensors changes the host arena, not the scratch bound, so
    this converts a firmware's arena budget into the one `tflite_export.encode` checks.

    Args:
        model: `.tflite` flatbuffer bytes.
        emitted_budget: the largest ``kTensorArenaSize`` allowed (bytes).

    Returns:
        The host-arena limit in bytes (negative when the scratch bound and
        margin alone exceed the budget).

    Example:
        >>> import tflite_export
        >>> tiny = tflite_export.testing.tiny_model()
        >>> a = tflite_export.measure_arena(tiny)
        >>> tflite_export.host_arena_limit(tiny, a.emitted_bytes) >= a.host_bytes
        True
        >>> tflite_export.host_arena_limit(tiny, a.emitted_bytes - 16) < a.host_bytes
        True
    """
    return int(emitted_budget) // 16 * 16 - kernel_scratch_bound(model) - ARENA_MARGIN_BYTES


def arena_fits(
    model: bytes, sizes: list[int], *, timeout_s: float | None = None
) -> list[bool]:
    """Whether TFLM can set up and run the model with each arena size.

    Args:
        model: `.tflite` flatbuffer bytes.
        sizes: arena sizes in bytes to try.
        timeout_s: seconds before the child interpreter is killed. Default
            None (see `measure_arena`).

    Returns:
        One bool per size.
    """
    validate(model)
    sizes = [int(s) for s in sizes]
    inputs = _zero_inputs(model, max([*sizes, _default_arena(model)]))
    _, meta, _ = call_worker(model, "tflm_arena_ok", inputs, sizes=sizes,
                             timeout_s=timeout_s, runs=len(sizes) + 1)
    return [bool(v) for v in meta["ok"]]
