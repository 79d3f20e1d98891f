"""Probe models for fitting: int8 models whose every operator reads only the model input(s).

Each probe is one input (or two, for ADD and MUL) feeding many independent branches of one
layer each, every branch a model output. Under the rig's per-operator profiler each branch is
a single-op measurement (an operator's work depends on its own shapes and options only), so one
firmware build measures a dozen operators. The probes are converted with
`tinycompress.convert` in one process (the converter child is reused), and cached as
``<name>.tflite`` files.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# (name, input shape without batch, branches); a branch is (layer class name, kwargs).
_CONV_INPUTS = {
    "s16c8": (16, 16, 8), "s32c3": (32, 32, 3), "s8c32": (8, 8, 32), "s24c16": (24, 24, 16),
    "s12c64": (12, 12, 64), "s49x10c1": (49, 10, 1), "s25x5c64": (25, 5, 64), "s4c128": (4, 4, 128),
}


def _conv_branches(shape) -> list[tuple[str, dict]]:
    h, w, c = shape
    small = h * w * c <= 4096
    branches = [
        ("Conv2D", dict(filters=16, kernel_size=3, padding="same")),
        ("Conv2D", dict(filters=8, kernel_size=1)),
        ("Conv2D", dict(filters=32, kernel_size=1)),
        ("Conv2D", dict(filters=16, kernel_size=3, strides=2, padding="same", activation="relu")),
        ("Conv2D", dict(filters=8, kernel_size=min(5, h, w), padding="valid")),
        ("DepthwiseConv2D", dict(kernel_size=3, padding="same")),
        ("DepthwiseConv2D", dict(kernel_size=3, strides=2, padding="same", activation="relu")),
        ("AveragePooling2D", dict(pool_size=2)),
        ("MaxPooling2D", dict(pool_size=2)),
        ("GlobalAveragePooling2D", {}),
    ]
    if small:
        branches += [("Conv2D", dict(filters=64, kernel_size=3, padding="same")),
                     ("DepthwiseConv2D", dict(kernel_size=min(5, h, w), depth_multiplier=2))]
    if h >= 8 and w >= 8:
        branches += [("AveragePooling2D", dict(pool_size=(h // 2, w // 2)))]
    return branches


_VECTOR_INPUTS = {"v64": 64, "v256": 256, "v1024": 1024, "v640": 640}


def _vector_branches(n: int) -> list[tuple[str, dict]]:
    return [
        ("Dense", dict(units=10)), ("Dense", dict(units=64, activation="relu")),
        ("Dense", dict(units=128)), ("Dense", dict(units=n // 2)),
        ("Softmax", {}), ("Activation", dict(activation="sigmoid")),
        ("Activation", dict(activation="tanh")), ("Reshape", dict(target_shape=(n // 4, 4))),
    ]


_BINARY_INPUTS = {"b16c8": (16, 16, 8), "b8c32": (8, 8, 32), "b32c16": (32, 32, 16), "b256": (256,),
                  "b4096": (4096,)}

# Code paths the general probes above sample too sparsely: CONV_2D on 1-3 input channels (the
# first layer of KWS, LeNet, image models: im2col patches shorter than one vector) and
# DEPTHWISE_CONV_2D with kernels other than 3x3 or a channel multiplier, on channel counts off
# the 4/16-lane grid (with pooling, strided 1x1 and 3x3 CONV_2D on the same inputs).
_FIRST_CONVS = [
    ("Conv2D", dict(filters=64, kernel_size=(10, 4), strides=2, padding="same")),
    ("Conv2D", dict(filters=6, kernel_size=5, padding="same", activation="relu")),
    ("Conv2D", dict(filters=20, kernel_size=5, padding="valid")),
    ("Conv2D", dict(filters=16, kernel_size=3, strides=2, padding="same")),
    ("Conv2D", dict(filters=24, kernel_size=3, padding="same")),
    ("Conv2D", dict(filters=10, kernel_size=(10, 4), padding="valid")),
    ("Conv2D", dict(filters=40, kernel_size=7, strides=2, padding="same")),
    ("Conv2D", dict(filters=13, kernel_size=(1, 5), strides=(1, 2), padding="same")),
]
_FIRST_CONV_INPUTS = {"f49x10c1": (49, 10, 1), "f28c1": (28, 28, 1), "f24x20c2": (24, 20, 2),
                      "f20c3": (20, 20, 3), "f32x12c3": (32, 12, 3)}
_CHANNEL_BRANCHES = [
    ("DepthwiseConv2D", dict(kernel_size=5, padding="same")),
    ("DepthwiseConv2D", dict(kernel_size=(3, 1), padding="same")),
    ("DepthwiseConv2D", dict(kernel_size=(1, 3), padding="same", activation="relu")),
    ("DepthwiseConv2D", dict(kernel_size=7, padding="same")),
    ("DepthwiseConv2D", dict(kernel_size=5, strides=2, padding="valid")),
    ("DepthwiseConv2D", dict(kernel_size=3, padding="same")),
    ("DepthwiseConv2D", dict(kernel_size=3, padding="same", depth_multiplier=2)),
    ("DepthwiseConv2D", dict(kernel_size=(5, 3), strides=2, padding="same", depth_multiplier=3)),
    ("AveragePooling2D", dict(pool_size=2)),
    ("MaxPooling2D", dict(pool_size=3, strides=2, padding="same")),
    ("Conv2D", dict(filters=16, kernel_size=1, strides=2)),
    ("Conv2D", dict(filters=36, kernel_size=1, strides=2, activation="relu")),
    ("Conv2D", dict(filters=8, kernel_size=3, padding="same")),
    ("Conv2D", dict(filters=24, kernel_size=3, strides=2, padding="same")),
]
_CHANNEL_INPUTS = {"d16c6": (16, 16, 6), "d12c20": (12, 12, 20), "d10c37": (10, 10, 37),
                     "d8c50": (8, 8, 50), "d6c130": (6, 6, 130), "d14x6c24": (14, 6, 24)}
# 1x1 convolutions at stride 2 (CMSIS-NN's per-output-row path) and 1, on output widths that
# do and do not fill groups of 4 pixels; classifier heads (SOFTMAX, FULLY_CONNECTED) on 10-100.
_POINTWISE = [
    ("Conv2D", dict(filters=16, kernel_size=1, strides=2)),
    ("Conv2D", dict(filters=64, kernel_size=1, strides=2)),
    ("Conv2D", dict(filters=10, kernel_size=1, strides=2, activation="relu")),
    ("Conv2D", dict(filters=24, kernel_size=1)),
]
_POINTWISE_INPUTS = {"p16c16": (16, 16, 16), "p8c64": (8, 8, 64), "p32c8": (32, 32, 8),
                     "p10x6c48": (10, 6, 48), "p12x7c32": (12, 7, 32)}
_HEADS = [("Softmax", {}), ("Dense", dict(units=12)), ("Dense", dict(units=100, activation="relu")),
          ("Activation", dict(activation="sigmoid"))]
_HEAD_INPUTS = {"h10": 10, "h12": 12, "h35": 35, "h100": 100}


def probe_specs() -> dict[str, tuple[list[tuple[int, ...]], list[tuple[str, dict]]]]:
    """Probe name -> (input shapes without batch, branches)."""
    specs = {}
    for name, shape in _CONV_INPUTS.items():
        specs[f"probe_{name}"] = ([shape], _conv_branches(shape))
    for name, n in _VECTOR_INPUTS.items():
        specs[f"probe_{name}"] = ([(n,)], _vector_branches(n))
    for name, shape in _BINARY_INPUTS.items():
        specs[f"probe_{name}"] = ([shape, shape], [("Add", {}), ("Multiply", {})])
    for name, shape in _FIRST_CONV_INPUTS.items():
        specs[f"probe_{name}"] = ([shape], _FIRST_CONVS)
    for name, shape in _CHANNEL_INPUTS.items():
        specs[f"probe_{name}"] = ([shape], _CHANNEL_BRANCHES)
    for name, shape in _POINTWISE_INPUTS.items():
        specs[f"probe_{name}"] = ([shape], _POINTWISE)
    for name, n in _HEAD_INPUTS.items():
        specs[f"probe_{name}"] = ([(n,)], _HEADS)
    return specs


def _keras_model(inputs, branches, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    xs = [keras.Input(s, batch_size=1) for s in inputs]
    outs = []
    for cls, kwargs in branches:
        layer = getattr(keras.layers, cls)(**kwargs)
        outs.append(layer(xs) if cls in ("Add", "Multiply") else layer(xs[0]))
    return keras.Model(xs, outs)


def build_probes(out_dir: Path, names: list[str] | None = None, seed: int = 0) -> dict[str, Path]:
    """Convert the probes (all, or ``names``) missing from ``out_dir``; name -> .tflite path."""
    from tinycompress import convert

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (inputs, branches) in probe_specs().items():
        if names is not None and name not in names:
            continue
        path = out_dir / f"{name}.tflite"
        if not path.exists():
            model = _keras_model(inputs, branches, seed)
            # one generator per probe: a probe converts the same alone or among the others
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            data = [rng.normal(size=(64, *s)).astype("float32") for s in inputs]
            tflite = convert(model, data if len(data) > 1 else data[0])
            path.write_bytes(tflite)
            logger.info("converted %s: %d bytes", name, len(tflite))
        paths[name] = path
    return paths


#: Held-out whole models: the MLPerf Tiny int8 reference models (read from ``MLPERF_TINY_DIR``,
#: a folder holding the files of github.com/mlcommons/tiny ``benchmark/training/*/trained_models``)
#: and the models our benchmarks export (converted here from their untrained architectures:
#: an int8 kernel's instruction count depends on shapes, not on weight values).
MLPERF_FILES = {
    "mlperf_ad": "ad01_int8.tflite",
    "mlperf_kws": "kws_ref_model.tflite",
    "mlperf_ic": "pretrainedResnet_quant.tflite",
    "mlperf_vww": "vww_96_int8.tflite",
}


def mlperf_models(folder: Path) -> dict[str, Path]:
    """The MLPerf Tiny models present in ``folder``; name -> path."""
    return {name: folder / f for name, f in MLPERF_FILES.items() if (folder / f).is_file()}


def bench_models(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Convert (once) the architectures bench/export.py and bench/qat.py export; name -> path."""
    import sys

    import keras

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _models import caffe_lenet5
    from _qat_models import build
    from tinycompress import convert

    builders = {"bench_lenet5_caffe": caffe_lenet5,
                "bench_mobilenet_tiny": lambda: build("mobilenet_tiny", keras, 8),
                "bench_lenet5": lambda: build("lenet5", keras, 8)}
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = {}
    for name, make in builders.items():
        path = out_dir / f"{name}.tflite"
        if not path.exists():
            keras.utils.set_random_seed(seed)
            path.write_bytes(convert(make(), rng.uniform(0, 1, (100, 28, 28, 1)).astype("float32")))
        paths[name] = path
    return paths
