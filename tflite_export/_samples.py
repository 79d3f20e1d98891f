"""Seeded random input samples for proving two models give identical outputs."""

from __future__ import annotations

import numpy as np

from tflite_export.io_details import dequantize, input_details

__all__ = ["seeded_inputs", "verification_inputs"]


def seeded_inputs(model_bytes: bytes, samples: int, seed: int) -> list[np.ndarray]:
    """Float samples covering each input's whole integer range, one array per input."""
    rng = np.random.default_rng(seed)
    xs = []
    for k, d in enumerate(input_details(model_bytes)):
        dtype = np.dtype(d.dtype)
        shape = (samples,) + tuple(max(1, int(s)) for s in d.shape[1:])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            q = rng.integers(info.min, info.max + 1, size=shape).astype(dtype)
            xs.append(dequantize(q, model_bytes, k) if d.quantized else q.astype(np.float32))
        else:
            xs.append(rng.normal(size=shape).astype(np.float32))
    return xs


def verification_inputs(model_bytes: bytes, verify_data, samples: int, seed: int):
    """``verify_data`` if given, else seeded samples; a bare array for one input."""
    x = verify_data if verify_data is not None else seeded_inputs(model_bytes, samples, seed)
    if isinstance(x, list) and len(x) == 1:
        x = x[0]
    return x
