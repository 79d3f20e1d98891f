"""tflite_export: the bytes side of tinycompress.

Takes `.tflite` flatbuffer bytes and returns bytes or dataclasses, without
TensorFlow: validate and inspect a model, run it on the real TFLM interpreter
and on LiteRT, measure its tensor arena, slim it, emit C sources and firmware
projects, and report what the device pays (flash, arena, MACs) and what it is
estimated to take on a named microcontroller (cycles, ms, µJ; `tflite_export.cost`).
"""

from tflite_export.arena import ArenaMeasurement, arena_fits, host_arena_limit, kernel_scratch_bound, measure_arena
from tflite_export.checks import check_deployable, find_problems
from tflite_export.encode import EncodeError, EncodeResult, EncodedTensor, encode, encode_candidates
from tflite_export.lut import LutCandidate, LutError, LutResult, LutTensor, compress_luts, lut_candidates
from tflite_export.firmware import BOARDS, TARGETS, write_firmware_project
from tflite_export.cost import CostEstimate, Device, DEVICES, LayerCost, estimate, get_device
from tflite_export.errors import (
    DeviceError,
    EmitError,
    InputError,
    ModelFormatError,
    RuntimeCheckError,
    TinyCompressError,
    UnsupportedModelError,
    VerificationError,
)
from tflite_export.emit_c import c_identifier, emit_c_sources
from tflite_export.inspect import inspect
from tflite_export.report import LayerReport, ModelReport, print_report, render_table
from tflite_export.io_details import TensorIO, dequantize, input_details, output_details, quantize
from tflite_export.runtime import evaluate_accuracy, run_litert, run_tflm, tflm_tensors
from tflite_export.slim import SlimResult, slim
from tflite_export.progress import Progress, print_progress
from tflite_export.validate import validate
from tflite_export.verify import (
    OpCheck,
    OutputCheck,
    VerifyReport,
    output_tasks,
    output_tolerances,
    verify,
    verify_identical,
)
from tflite_export import testing

__all__ = [
    "validate",
    "inspect",
    "ModelReport",
    "LayerReport",
    "render_table",
    "print_report",
    "emit_c_sources",
    "c_identifier",
    "write_firmware_project",
    "encode",
    "encode_candidates",
    "EncodeResult",
    "EncodedTensor",
    "EncodeError",
    "compress_luts",
    "lut_candidates",
    "LutResult",
    "LutTensor",
    "LutCandidate",
    "LutError",
    "BOARDS",
    "TARGETS",
    "check_deployable",
    "find_problems",
    "run_tflm",
    "run_litert",
    "tflm_tensors",
    "evaluate_accuracy",
    "quantize",
    "dequantize",
    "input_details",
    "output_details",
    "TensorIO",
    "measure_arena",
    "arena_fits",
    "kernel_scratch_bound",
    "host_arena_limit",
    "ArenaMeasurement",
    "slim",
    "SlimResult",
    "verify",
    "verify_identical",
    "output_tolerances",
    "VerifyReport",
    "OpCheck",
    "OutputCheck",
    "output_tasks",
    "testing",
    "Progress",
    "print_progress",
    "TinyCompressError",
    "ModelFormatError",
    "UnsupportedModelError",
    "RuntimeCheckError",
    "VerificationError",
    "EmitError",
    "InputError",
    "DeviceError",
    "estimate",
    "CostEstimate",
    "LayerCost",
    "Device",
    "DEVICES",
    "get_device",
]
