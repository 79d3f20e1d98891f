"""Export a Keras model as a verified int8 TFLM model, C sources and a report.

One call runs the deployment half of the pipeline:
load -> convert (full integer) -> slim -> verify on TFLM and LiteRT -> measure
the arena -> emit C sources (and a firmware project) -> write the report.
Everything is written into a temporary directory next to ``out_dir`` and
renamed into place at the end, so a failure leaves nothing half-written and an
existing ``out_dir`` is only replaced when ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import tflite_export
from tflite_export.verify import DEFAULT_MAX_LSB
from tinycompress.convert import convert
from tinycompress.data import prepare_samples
from tinycompress.errors import ExportError
from tinycompress.loading import LoadedModel, load_model

__all__ = ["ExportResult", "export", "DEFAULT_VERIFY_SAMPLES"]

#: Samples run through TFLM, LiteRT and the float model by default.
DEFAULT_VERIFY_SAMPLES = 32


@dataclass
class ExportResult:
    """What `export` wrote and measured.

    Attributes:
        out_dir: the directory written.
        model: the final `.tflite` bytes (slimmed unless ``slim=False``).
        files: paths written, relative to ``out_dir``.
        report: `tflite_export.ModelReport` of the final model.
        arena: `tflite_export.ArenaMeasurement` (``kTensorArenaSize`` is
            ``arena.emitted_bytes``).
        verification: `tflite_export.VerifyReport` (TFLM vs LiteRT vs float).
        unslimmed_bytes: size of the converter's output before slimming.
        layer_errors: per-layer int8 error rows (worst first) when requested.
        lut: `tflite_export.LutResult` when LUT compression was requested.
    """

    out_dir: Path
    model: bytes
    files: list[str]
    report: object
    arena: object
    verification: object
    unslimmed_bytes: int
    layer_errors: list = field(default_factory=list)
    lut: object | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary: the model report plus export-specific figures."""
        d = self.report.to_dict()
        d["arena"] = self.arena.to_dict()
        d["verification"] = self.verification.to_dict()
        d["slim"] = {
            "unslimmed_bytes": self.unslimmed_bytes,
            "slim_bytes": len(self.model),
            "saved_bytes": self.unslimmed_bytes - len(self.model),
        }
        d["layer_errors"] = [e.to_dict() for e in self.layer_errors]
        d["lut"] = None if self.lut is None else self.lut.to_dict()
        return d

    def to_markdown(self) -> str:
        """The model report in Markdown, followed by export-specific sections."""
        v, a = self.verification, self.arena
        lines = [
            self.report.to_markdown().rstrip(),
            "",
            "## Arena",
            "",
            f"- measured on the host TFLM: {a.host_bytes} B "
            f"(head {a.head_bytes} B, tail {a.tail_bytes} B)",
            f"- CMSIS-NN scratch bound: {a.scratch_bound_bytes} B, margin {a.margin_bytes} B",
            f"- **kTensorArenaSize = {a.emitted_bytes} B**",
            f"- {a.note}",
            "",
            v.to_markdown().rstrip(),
        ]
        lines += [
            "",
            "## Slimming",
            "",
            f"- converter output {self.unslimmed_bytes} B -> {len(self.model)} B "
            f"(saved {self.unslimmed_bytes - len(self.model)} B, verified bit-exact on TFLM)",
        ]
        if self.lut is not None:
            lines += ["", self.lut.to_markdown().rstrip()]
        if self.layer_errors:
            lines += ["", "## Per-layer int8 error (worst first)", "",
                      "| layer | op | tensor | rel. RMS error | max abs error |",
                      "|---|---|---|---|---|"]
            lines += [
                f"| {e.layer} | {e.op} | {e.tensor} | {e.relative_rms:.4f} | {e.max_abs:.4g} |"
                for e in self.layer_errors
            ]
        return "\n".join(lines) + "\n"


def _stack(samples, n: int) -> list[np.ndarray]:
    chosen = samples[:n]
    return [np.concatenate([s[i] for s in chosen]) for i in range(len(chosen[0]))]


def _commit(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not overwrite:
            raise ExportError(
                f"output directory {str(out_dir)!r} already exists; choose another or pass "
                "overwrite=True (CLI: --overwrite)."
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "previous")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def export(
    model,
    representative_data,
    out_dir: str | Path,
    *,
    name: str = "model",
    io_dtype: str | None = None,
    mode: str = "int8",
    per_channel_dense: bool = False,
    slim: bool = True,
    verify_samples: int = DEFAULT_VERIFY_SAMPLES,
    verify_max_lsb: int = DEFAULT_MAX_LSB,
    layer_errors: bool = False,
    lut: bool | str | list[int] | Callable = False,
    language: str = "c++",
    target: str | None = None,
    overwrite: bool = False,
    allow_unsafe: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Convert, verify, measure and write a model for TFLM.

    Args:
        model: a Keras 3 / tf_keras model or a path (see `load_model`).
        representative_data: calibration samples (see `convert`); the first
            ``verify_samples`` are also used for verification.
        out_dir: directory to create.
        name: model name; C identifiers derive from it. Default "model".
        io_dtype: input/output dtype (see `convert`). Default int8.
        mode: ``"int8"`` or ``"int16x8"``. Default "int8".
        per_channel_dense: per-channel Dense weights. Default False.
        slim: remove bytes TFLM does not read (verified bit-exact). Default True.
        verify_samples: samples compared on TFLM/LiteRT/float. Default 32.
        verify_max_lsb: TFLM/LiteRT difference tolerated per requantized tensor,
            in LSBs (the runtimes round differently; see `tflite_export.verify`).
            Default 1.
        layer_errors: compare every intermediate tensor with the float model
            and list the worst layers. Default False.
        lut: LUT-compress constant tensors with few distinct values (clustered
            weights) with TFLM's compression module: True or ``"auto"`` for every
            tensor that shrinks, or the ``tensors`` argument of
            `tflite_export.compress_luts` (indices or a predicate). The result is
            verified bit-identical on TFLM; the report lists flash saved and
            arena added per tensor (DECODE expands tensors into the arena).
            Default False.
        language: ``"c++"`` (``model_data.cc``) or ``"c"``. Default "c++".
        target: also write a firmware project (``cmake``, ``cortex-m``,
            ``arduino``, ``zephyr``, ``esp-idf``) under ``firmware/``. Default None.
        overwrite: replace an existing ``out_dir``. Default False.
        allow_unsafe: load saved models with Lambda/foreign layers. Default False.
        progress: called with a short message before each step. Default None.

    Returns:
        An `ExportResult`.

    Raises:
        ExportError: ``out_dir`` exists (without ``overwrite``) or is unusable.
        TinyCompressError: any stage refused the model or data; nothing is written.
    """
    step = progress or (lambda _msg: None)
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not overwrite:
        raise ExportError(
            f"output directory {str(out_dir)!r} already exists; choose another or pass "
            "overwrite=True (CLI: --overwrite)."
        )
    if verify_samples < 1:
        raise ValueError(f"expected verify_samples >= 1. Received: verify_samples={verify_samples}.")
    step("loading model")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, allow_unsafe=allow_unsafe)
    samples = prepare_samples(representative_data, loaded.input_shapes)
    x_verify = _stack(samples, verify_samples)
    step("converting to full-integer TFLite")
    converted = convert(
        loaded, samples, io_dtype=io_dtype, mode=mode, per_channel_dense=per_channel_dense
    )
    final = converted
    if slim:
        step("slimming and checking bit-exactness on TFLM")
        final = tflite_export.slim(converted).model
        tflite_export.verify_identical(converted, final, x_verify, what="slimmed")
    lut_result = None
    if lut is not False and lut is not None:
        step("LUT-compressing clustered tensors and checking bit-exactness on TFLM")
        lut_result = tflite_export.compress_luts(
            final,
            tensors="auto" if lut is True else lut,
            verify_data=x_verify if len(x_verify) > 1 else x_verify[0],
        )
        final = lut_result.model_bytes
    step("verifying on TFLM and LiteRT")
    float_out = loaded.predict(x_verify)
    verification = tflite_export.verify(
        final, x_verify, float_outputs=float_out, litert_model=converted,
        max_lsb=verify_max_lsb,
    )
    step("measuring the tensor arena")
    arena = tflite_export.measure_arena(final)
    report = dataclasses.replace(
        tflite_export.inspect(final, measure=False),
        arena_bytes=arena.host_bytes,
        arena_emitted_bytes=arena.emitted_bytes,
    )
    errors = []
    if layer_errors:
        from tinycompress.layer_error import layer_errors as _layer_errors

        step("comparing every layer with the float model")
        errors = _layer_errors(loaded, converted, x_verify)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        step("writing model, C sources and report")
        (tmp / "model.tflite").write_bytes(final)
        tflite_export.emit_c_sources(
            final, tmp, name=name, arena_size=arena.emitted_bytes, language=language
        )
        if target is not None:
            step(f"writing the {target} firmware project")
            x_golden = [a[:1] for a in x_verify]
            golden_in = tflite_export.quantize(x_golden[0], final)
            golden_out = tflite_export.run_tflm(final, golden_in)
            tflite_export.write_firmware_project(
                final,
                tmp / "firmware",
                target,
                name=name,
                golden_input=golden_in[0],
                golden_output=np.asarray(golden_out)[0],
                arena_size=arena.emitted_bytes,
            )
        result = ExportResult(
            out_dir=out_dir,
            model=final,
            files=[],
            report=report,
            arena=arena,
            verification=verification,
            unslimmed_bytes=len(converted),
            layer_errors=errors,
            lut=lut_result,
        )
        (tmp / "report.json").write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        (tmp / "report.md").write_text(result.to_markdown())
        result.files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        _commit(tmp, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
