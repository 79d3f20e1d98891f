"""TFLM libraries for the rig: TFLM's own ``microlite`` build, restricted to the kernels it measures.

A full TFLM library takes 30-45 minutes per flavour on a shared 2-core machine; the rig's
models use a dozen operators. `build_library` runs TFLM's Makefile with the same flags as
the firmware project's Makefile (`tflite_export.firmware`, ``cortex-m`` target) but with
``MICROLITE_CC_KERNEL_SRCS`` set to the kernel files of those operators (the CMSIS-NN
versions where TFLM specializes them), into ``<gen_cache>/<flavour>-rigops/``. The firmware
links against that library through its ``TFLM_GEN`` variable; an operator outside `KERNEL_FILES`
fails to link, it is never silently absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from latency_rig.qemu import board, run

#: Kernel sources (tensorflow/lite/micro/kernels/) of the operators the rig measures.
KERNEL_FILES = (
    "activations.cc", "activations_common.cc", "add.cc", "add_common.cc", "conv.cc",
    "conv_common.cc", "depthwise_conv.cc", "depthwise_conv_common.cc", "dequantize.cc",
    "dequantize_common.cc", "fully_connected.cc", "fully_connected_common.cc", "kernel_util.cc",
    "logistic.cc", "logistic_common.cc", "micro_tensor_utils.cc", "mul.cc", "mul_common.cc",
    "pad.cc", "pad_common.cc", "pooling.cc", "pooling_common.cc", "quantize.cc",
    "quantize_common.cc", "reduce.cc", "reduce_common.cc", "reshape.cc", "reshape_common.cc",
    "softmax.cc", "softmax_common.cc", "tanh.cc",
)
_KERNELS_DIR = "tensorflow/lite/micro/kernels"


def gen_dir(gen_cache: Path, cpu: str, kernels: str) -> Path:
    """The flavour's build folder under the cache."""
    arch = board(cpu).tflm_arch
    return gen_cache / f"{arch}-{kernels}-rigops"


def kernel_sources(tflm_dir: Path, kernels: str) -> list[str]:
    """`KERNEL_FILES`, each replaced by its ``kernels/cmsis_nn/`` version when CMSIS-NN has one."""
    out = []
    for name in KERNEL_FILES:
        special = tflm_dir / _KERNELS_DIR / "cmsis_nn" / name
        out.append(f"{_KERNELS_DIR}/cmsis_nn/{name}" if kernels == "cmsis_nn" and special.exists()
                   else f"{_KERNELS_DIR}/{name}")
    return out


def build_library(tflm_dir: Path, gen_cache: Path, cpu: str, kernels: str,
                  timeout: float = 7200) -> Path:
    """Build (once) the restricted library; returns the ``TFLM_GEN`` folder for the firmware."""
    gen = gen_dir(gen_cache, cpu, kernels)
    lib = gen / "lib" / "libtensorflow-microlite.a"
    if lib.exists():
        return gen
    gcc = shutil.which("arm-none-eabi-g++")
    run(["make", "-C", str(tflm_dir), "-f", "tensorflow/lite/micro/tools/make/Makefile", "-j2",
         "TARGET=cortex_m_generic", f"TARGET_ARCH={board(cpu).tflm_arch}",
         f"OPTIMIZED_KERNEL_DIR={'cmsis_nn' if kernels == 'cmsis_nn' else ''}",
         "OPTIMIZE_KERNELS_FOR=KERNELS_OPTIMIZED_FOR_SPEED",
         f"TARGET_TOOLCHAIN_ROOT={Path(gcc).parent}/", f"GENDIR={gen}/",
         "MICROLITE_CC_KERNEL_SRCS=" + " ".join(kernel_sources(tflm_dir, kernels)), "microlite"],
        timeout)
    return gen
