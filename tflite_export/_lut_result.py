"""What `tflite_export.lut.compress_luts` returns: per-tensor rows and totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["LutTensor", "LutResult"]


@dataclass(frozen=True)
class LutTensor:
    """One compressed tensor in a `LutResult`.

    Attributes are those of `LutCandidate`, plus ``host_arena_added``: the arena
    bytes TFLM needs more when only this tensor is compressed (None when not
    measured).
    """

    index: int
    name: str
    bits: int
    tables: int
    nbytes: int
    encoded_bytes: int
    table_bytes: int
    flash_saved: int
    decoded_bytes: int
    host_arena_added: int | None = None


@dataclass(frozen=True)
class LutResult:
    """A LUT-compressed model and its flash/RAM trade-off.

    Attributes:
        model_bytes: the compressed `.tflite` flatbuffer.
        tensors: one row per compressed tensor.
        flash_before: bytes of the uncompressed model.
        flash_after: bytes of the compressed model.
        host_arena_before: TFLM arena of the uncompressed model (host bytes).
        host_arena_after: TFLM arena of the compressed model (host bytes).
        verified_samples: samples on which TFLM outputs were bit-identical.
    """

    model_bytes: bytes
    tensors: list[LutTensor] = field(default_factory=list)
    flash_before: int = 0
    flash_after: int = 0
    host_arena_before: int = 0
    host_arena_after: int = 0
    verified_samples: int = 0

    @property
    def flash_saved(self) -> int:
        """Bytes of flash saved in total (measured on the flatbuffers)."""
        return self.flash_before - self.flash_after

    @property
    def host_arena_added(self) -> int:
        """Bytes of arena added in total (measured on TFLM)."""
        return self.host_arena_after - self.host_arena_before

    @property
    def decoded_bytes(self) -> int:
        """Sum of the DECODE outputs' sizes; the measured `host_arena_added` is
        usually lower, since TFLM's planner can reuse one decoded buffer's
        space for another tensor."""
        return sum(t.decoded_bytes for t in self.tensors)

    def to_dict(self) -> dict:
        """JSON-ready summary (without the model bytes)."""
        return {
            "tensors": [asdict(t) for t in self.tensors],
            "flash_before": self.flash_before,
            "flash_after": self.flash_after,
            "flash_saved": self.flash_saved,
            "host_arena_before": self.host_arena_before,
            "host_arena_after": self.host_arena_after,
            "host_arena_added": self.host_arena_added,
            "decoded_bytes": self.decoded_bytes,
            "verified_samples": self.verified_samples,
        }

    def to_markdown(self) -> str:
        """A Markdown table of the per-tensor flash/RAM trade-off and totals."""
        lines = [
            "| tensor | name | bits | tables | bytes | flash saved | decoded bytes "
            "| host arena added |",
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for t in self.tensors:
            added = "-" if t.host_arena_added is None else t.host_arena_added
            lines.append(
                f"| {t.index} | `{t.name}` | {t.bits} | {t.tables} | {t.nbytes} | "
                f"{t.flash_saved} | {t.decoded_bytes} | {added} |"
            )
        lines.append(
            f"| total | flatbuffer {self.flash_before} -> {self.flash_after} B, host arena "
            f"{self.host_arena_before} -> {self.host_arena_after} B | | | | {self.flash_saved} | "
            f"{self.decoded_bytes} | {self.host_arena_added} |"
        )
        return "\n".join(lines)
