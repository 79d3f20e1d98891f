"""What `build` measured and generated, and what `write` / `export` wrote.

`BuildResult` holds everything in memory: the final `.tflite` bytes, the
measured report, arena and verification, the encodings (LUT compression
today), the generated C sources and firmware files, and the golden input the
firmware self-test runs. `ExportResult` adds where `write` put them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

__all__ = ["BuildResult", "ExportResult", "REPORT_FILES"]

#: Files `BuildResult.contents` adds next to the model and the C sources.
REPORT_FILES = ("model.tflite", "report.json", "report.md")


@dataclass(kw_only=True)
class BuildResult:
    """Everything `build` produced, in memory; nothing is written.

    Attributes:
        model: the final `.tflite` bytes (slimmed unless ``slim=False``,
            encoded when ``lut`` was asked).
        report: `tflite_export.ModelReport` of the final model, with the
            measured arena.
        arena: `tflite_export.ArenaMeasurement` (``kTensorArenaSize`` is
            ``arena.emitted_bytes``).
        verification: `tflite_export.VerifyReport` (TFLM vs LiteRT vs float).
        unslimmed_bytes: size of the converter's output before slimming.
        name: the model name the C identifiers derive from.
        sources: the C sources, file name -> bytes (see
            `tflite_export.emit_c.render_c_sources`).
        golden_inputs: the firmware self-test's input, one array per model
            input (the first verification sample, in the input dtype; the
            first two, stacked, when the model keeps state between
            ``Invoke`` calls, so the self-test checks the reset).
        firmware: the firmware project files, path under ``firmware/`` ->
            bytes, when a target was asked; else empty.
        target: the firmware target of ``firmware``, or None.
        layer_errors: per-layer int8 error rows (worst first) when requested.
        lut: `tflite_export.LutResult` when LUT compression was requested.
        encoding: `tflite_export.EncodeResult` when DECODE encoding
            (``encode=``) was requested.
    """

    model: bytes
    report: object
    arena: object
    verification: object
    unslimmed_bytes: int
    name: str = "model"
    sources: dict[str, bytes] = field(default_factory=dict)
    golden_inputs: list[np.ndarray] = field(default_factory=list)
    firmware: dict[str, bytes] = field(default_factory=dict)
    target: str | None = None
    layer_errors: list = field(default_factory=list)
    lut: object | None = None
    encoding: object | None = None

    def to_dict(self) -> dict:
        """JSON-ready summary: the model report plus the build's own figures."""
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
        d["encode"] = None if self.encoding is None else self.encoding.to_dict()
        return d

    def to_markdown(self) -> str:
        """The model report in Markdown, followed by the build's own sections."""
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
        if self.encoding is not None:
            lines += ["", self.encoding.to_markdown().rstrip()]
        if self.layer_errors:
            lines += ["", "## Per-layer int8 error (worst first)", "",
                      "| layer | op | tensor | rel. RMS error | max abs error |",
                      "|---|---|---|---|---|"]
            lines += [
                f"| {e.layer} | {e.op} | {e.tensor} | {e.relative_rms:.4f} | {e.max_abs:.4g} |"
                for e in self.layer_errors
            ]
        return "\n".join(lines) + "\n"

    def contents(self, firmware: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Every file of the output folder: relative path -> bytes.

        Args:
            firmware: firmware files to include instead of ``self.firmware``.
                Default None: ``self.firmware``.

        Returns:
            ``model.tflite``, the C sources, the firmware files and
            ``report.json`` / ``report.md``, sorted by path.
        """
        files = {"model.tflite": bytes(self.model), **self.sources,
                 **(self.firmware if firmware is None else firmware)}
        files["report.json"] = (json.dumps(self.to_dict(), indent=2, default=str) + "\n").encode()
        files["report.md"] = self.to_markdown().encode()
        return dict(sorted(files.items()))


@dataclass(kw_only=True)
class ExportResult(BuildResult):
    """What `write` (or `export`) wrote: a `BuildResult` plus its place on disk.

    Attributes:
        out_dir: the directory written.
        files: paths written, relative to ``out_dir`` (the marker file that
            identifies an export directory is not listed).
    """

    out_dir: Path
    files: list[str]

    @classmethod
    def of(cls, result: BuildResult, out_dir: Path, files: list[str], **changes) -> ExportResult:
        """An `ExportResult` with the fields of ``result`` (and ``changes``)."""
        values = {f.name: getattr(result, f.name) for f in fields(BuildResult)}
        return cls(**{**values, **changes}, out_dir=out_dir, files=files)
