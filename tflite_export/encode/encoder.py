"""Choose and apply one DECODE encoding per constant tensor, proven on TFLM.

Every encoded tensor saves flash and costs arena: TFLM's DECODE writes the
decoded tensor into the arena before its consumer runs. `encode` picks, per
tensor, the encoding with the smallest encoded size among those allowed
(LUT, prune, Huffman; TFLM can not chain two decoders, since a DECODE input
must be a constant), keeps the tensors whose encoding pays for its DECODE
bookkeeping, optionally drops tensors until the measured arena fits a budget,
and never returns a model larger than its input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tflite_export._samples import verification_inputs
from tflite_export.arena import measure_arena
from tflite_export.encode._rewrite import insert_decodes
from tflite_export.encode.candidates import ENCODINGS, EncodeCandidate, encode_candidates
from tflite_export.errors import TinyCompressError
from tflite_export.verify import verify_identical

__all__ = ["EncodeError", "EncodedTensor", "EncodeResult", "encode"]

logger = logging.getLogger(__name__)


class EncodeError(TinyCompressError, ValueError):
    """Tensors can not be encoded as asked."""


class ArenaBudgetError(EncodeError):
    """The model needs more arena than ``arena_budget`` before anything is encoded
    (encoding only adds arena: DECODE writes the decoded tensors there).

    Attributes:
        arena_bytes: the arena the unencoded model needs (host TFLM arena, or the
            emitted ``kTensorArenaSize`` when raised by `tinycompress.build`).
        budget: the budget asked for.
    """

    def __init__(self, arena_bytes: int, budget: int, *, figure: str = "TFLM arena",
                 parameter: str = "arena_budget") -> None:
        super().__init__(f"the model needs a {arena_bytes}-byte {figure} before encoding, "
                         f"over {parameter}={budget}. Raise the budget or shrink the model.")
        self.arena_bytes, self.budget = arena_bytes, budget


@dataclass(frozen=True)
class EncodedTensor:
    """One encoded tensor of an `EncodeResult`.

    Attributes:
        index: tensor index in subgraph 0.
        name: tensor name; for a slimmed model (names removed), the first operator
            reading it and the input's role, e.g. ``FULLY_CONNECTED 3 weights``.
        dtype: schema type name.
        encoding: ``"lut"``, ``"prune"`` or ``"huffman"``.
        nbytes: bytes before (also the decoded tensor's arena bytes).
        encoded_bytes: bytes after: encoded data plus decoder tables.
        host_arena_added: measured arena bytes added when only this tensor is
            encoded (None when not measured).
    """

    index: int
    name: str
    dtype: str
    encoding: str
    nbytes: int
    encoded_bytes: int
    host_arena_added: int | None = None


@dataclass(frozen=True)
class EncodeResult:
    """An encoded model and its measured flash/arena trade-off.

    Attributes:
        model_bytes: the encoded `.tflite` flatbuffer (the input when nothing
            paid off).
        tensors: one row per encoded tensor.
        flash_before: bytes of the input model.
        flash_after: bytes of the encoded model.
        host_arena_before: TFLM host arena of the input model.
        host_arena_after: TFLM host arena of the encoded model.
        verified_samples: samples on which TFLM outputs were bit-identical.
        host_arena_budget: the host-arena budget asked for, or None (`tinycompress.build`
            derives it from its ``kTensorArenaSize`` budget with `host_arena_limit`).
    """

    model_bytes: bytes
    tensors: list[EncodedTensor] = field(default_factory=list)
    flash_before: int = 0
    flash_after: int = 0
    host_arena_before: int = 0
    host_arena_after: int = 0
    verified_samples: int = 0
    host_arena_budget: int | None = None

    @property
    def flash_saved(self) -> int:
        """Flatbuffer bytes saved in total (measured)."""
        return self.flash_before - self.flash_after

    @property
    def host_arena_added(self) -> int:
        """Arena bytes added in total (measured on TFLM)."""
        return self.host_arena_after - self.host_arena_before

    def to_dict(self) -> dict:
        """JSON-ready summary (without the model bytes)."""
        return {"tensors": [asdict(t) for t in self.tensors],
                "flash_before": self.flash_before, "flash_after": self.flash_after,
                "flash_saved": self.flash_saved, "host_arena_before": self.host_arena_before,
                "host_arena_after": self.host_arena_after, "host_arena_added": self.host_arena_added,
                "host_arena_budget": self.host_arena_budget, "verified_samples": self.verified_samples}

    def to_markdown(self) -> str:
        """A Markdown table: each tensor's encoding, bytes before/after, host arena added; totals."""
        lines = ["| tensor | name | encoding | bytes before | bytes after | host arena added |",
                 "| ---: | --- | --- | ---: | ---: | ---: |"]
        for t in self.tensors:
            added = "-" if t.host_arena_added is None else t.host_arena_added
            lines.append(f"| {t.index} | `{t.name}` | {t.encoding} | {t.nbytes} | "
                         f"{t.encoded_bytes} | {added} |")
        lines.append(f"| total | flatbuffer | | {self.flash_before} | {self.flash_after} | "
                     f"{self.host_arena_added} |")
        return "\n".join(lines)


def _kinds(encodings) -> tuple[str, ...]:
    if isinstance(encodings, str):
        encodings = ENCODINGS if encodings == "auto" else (encodings,)
    kinds = tuple(encodings)
    bad = [k for k in kinds if k not in ENCODINGS]
    if bad or not kinds:
        raise EncodeError(f"expected encodings='auto' or some of {list(ENCODINGS)}. "
                          f"Received encodings={encodings!r}.")
    return kinds


def _choose(cands: list[EncodeCandidate], tensors, kinds, min_bytes: int) -> dict[int, str]:
    if isinstance(tensors, str):
        if tensors != "auto":
            raise EncodeError("expected tensors='auto', a list of tensor indices or a callable. "
                              f"Received tensors={tensors!r}.")
        best = {c.index: c.best(kinds) for c in cands if c.nbytes >= min_bytes}
        by = {c.index: c for c in cands}
        return {i: k for i, k in best.items() if k is not None and by[i].saving(k) > 0}
    if callable(tensors):
        return {c.index: c.best(kinds) for c in cands
                if c.best(kinds) is not None and tensors(c)}
    by = {c.index: c for c in cands}
    chosen = {}
    for i in list(tensors):
        c = by.get(int(i))
        if c is None or c.best(kinds) is None:
            raise EncodeError(
                f"tensor {int(i)} can not be encoded with {list(kinds)}: expected a constant "
                f"tensor that TFLM's decoders can write (one of "
                f"{sorted(c.index for c in cands if c.best(kinds))}). "
                "List them with tflite_export.encode.encode_candidates(model).")
        chosen[c.index] = c.best(kinds)
    return chosen


def _within_budget(model_bytes, chosen, by, budget: int, host_arena_before: int) -> dict[int, str]:
    """Add tensors by estimated saving while the measured arena fits ``budget``."""
    if host_arena_before > budget:
        raise ArenaBudgetError(host_arena_before, budget)
    kept: dict[int, str] = {}
    for i in sorted(chosen, key=lambda j: -by[j].saving(chosen[j])):
        trial = {**kept, i: chosen[i]}
        arena = measure_arena(_build(model_bytes, trial, by)).host_bytes
        if arena <= budget:
            kept = trial
        else:
            logger.info("tensor %d '%s' left unencoded: arena %d B over the %d B budget",
                        i, by[i].name, arena, budget)
    return kept


def _drop_unprofitable(model_bytes: bytes, chosen: dict[int, str], by) -> dict[int, str]:
    """Leave out, smallest estimated saving first, each tensor whose DECODE costs more flash in the
    encoded model than its encoding saves (the bookkeeping is not additive: the first DECODE also
    adds the custom operator code, so a tensor is judged with the others encoded)."""
    kept = dict(chosen)
    size = len(_build(model_bytes, kept, by))
    for i in sorted(chosen, key=lambda j: by[j].saving(chosen[j])):
        trial = {j: k for j, k in kept.items() if j != i}
        n = len(_build(model_bytes, trial, by)) if trial else len(model_bytes)
        if n <= size:
            logger.info("tensor %d '%s' left unencoded: %d B smaller without it", i, by[i].name,
                        size - n)
            kept, size = trial, n
    return kept


def _build(model_bytes: bytes, chosen: dict[int, str], by) -> bytes:
    return insert_decodes(model_bytes, {i: by[i].encodings[k] for i, k in chosen.items()})


def encode(
    model_bytes: bytes,
    *,
    encodings: str | Sequence[str] = "auto",
    tensors: str | Sequence[int] | Callable[[EncodeCandidate], bool] = "auto",
    arena_budget: int | None = None,
    min_bytes: int = 256,
    verify_samples: int = 16,
    seed: int = 0,
    verify_data=None,
    measure_each: bool = True,
) -> EncodeResult:
    """Encode constant tensors for TFLM's DECODE, verify bit-exactness, report flash and arena.

    Args:
        model_bytes: full-integer `.tflite` flatbuffer bytes.
        encodings: allowed encodings: ``"auto"`` (default: LUT, prune and
            Huffman), one of them, or a list. Each tensor gets the allowed one
            with the smallest encoded size.
        tensors: ``"auto"`` (default): every tensor of at least ``min_bytes``
            whose encoding saves more than its DECODE bookkeeping, less any
            tensor the encoded model is smaller without (measured); the input
            is returned unchanged when the encoded model is not smaller. A list of
            tensor indices: exactly those. A callable taking an
            `EncodeCandidate` and returning True to encode it.
        arena_budget: largest TFLM host arena (bytes, as `measure_arena`
            reports) allowed; tensors with the best estimated saving are encoded
            first, and any whose decoded copy would push the measured arena over
            the budget stays unencoded. Default None: no limit.
        min_bytes: smallest tensor ``"auto"`` encodes. Default 256.
        verify_samples: seeded random samples compared bit for bit on TFLM. Default 16.
        seed: seed of those samples. Default 0.
        verify_data: float samples to compare on instead (a list per input for
            multi-input models). Default None.
        measure_each: measure each tensor's arena cost alone (one TFLM run
            each), giving `EncodedTensor.host_arena_added`. Default True.

    Returns:
        An `EncodeResult`.

    Raises:
        EncodeError: unknown encodings or ``tensors``, a listed tensor no
            decoder can write; `ArenaBudgetError` (a subclass) for a model over
            ``arena_budget`` before encoding.
        VerificationError: the encoded model's TFLM outputs differ.
        RuntimeCheckError: TFLM could not run a model.

    Example:
        >>> import tflite_export
        >>> tiny = tflite_export.testing.tiny_model()
        >>> r = tflite_export.encode(tiny, min_bytes=1, verify_samples=2)
        >>> r.tensors, r.model_bytes == tiny  # too small to pay off
        ([], True)
    """
    kinds = _kinds(encodings)
    cands = encode_candidates(model_bytes, kinds)
    by = {c.index: c for c in cands}
    chosen = _choose(cands, tensors, kinds, min_bytes)
    host_arena_before = measure_arena(model_bytes).host_bytes
    if arena_budget is not None and chosen:
        chosen = _within_budget(model_bytes, chosen, by, int(arena_budget), host_arena_before)
    if isinstance(tensors, str) and chosen:
        chosen = _drop_unprofitable(model_bytes, chosen, by)
    out = _build(model_bytes, chosen, by)
    if not chosen or (isinstance(tensors, str) and len(out) >= len(model_bytes)):
        if chosen:
            logger.info("encoding %d tensor(s) would grow the model from %d to %d bytes "
                        "(DECODE bookkeeping); the model is unchanged", len(chosen),
                        len(model_bytes), len(out))
        return EncodeResult(bytes(model_bytes), [], len(model_bytes), len(model_bytes),
                            host_arena_before, host_arena_before, 0, arena_budget)
    x = verification_inputs(model_bytes, verify_data, verify_samples, seed)
    n = verify_identical(model_bytes, out, x, what="DECODE-encoded")
    rows = []
    for i, kind in chosen.items():
        added = None
        if measure_each:
            alone = out if len(chosen) == 1 else _build(model_bytes, {i: kind}, by)
            added = measure_arena(alone).host_bytes - host_arena_before
        c = by[i]
        rows.append(EncodedTensor(i, c.name, c.dtype, kind, c.nbytes, c.encoded_bytes(kind), added))
    return EncodeResult(out, rows, len(model_bytes), len(out), host_arena_before,
                        measure_arena(out).host_bytes, n, arena_budget)
