"""Build a verified int8 TFLM model, its C sources and report, in memory.

`build` runs the deployment half of the pipeline as stages, each a function of
the previous stage's output: load -> convert (full integer) -> slim -> encode
(LUT compression today) -> verify on TFLM and LiteRT -> measure the arena ->
emit C sources (and a firmware project) -> report. It writes nothing and
returns a `BuildResult`; `tinycompress.write` puts one on disk, and
`tinycompress.export` does both.

Cost of one call: see ``build_s`` in ``bench/export.py`` (the demo model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

import tflite_export
from tflite_export import _flatbuffer as fb
from tflite_export.emit_c import LANGUAGES, c_identifier, render_c_sources
from tflite_export.encode import ArenaBudgetError
from tflite_export.firmware import TARGETS, render_project
from tflite_export.progress import Progress, report
from tflite_export.verify import DEFAULT_MAX_LSB
from tinycompress.convert import convert, resolve_io_dtype
from tinycompress.data import prepare_samples
from tinycompress.errors import ArgumentError
from tinycompress.loading import LoadedModel, load_model
from tinycompress.result import BuildResult

__all__ = ["build", "check_build_arguments", "check_target", "render_firmware", "DEFAULT_VERIFY_SAMPLES"]

#: Samples run through TFLM, LiteRT and the float model by default.
DEFAULT_VERIFY_SAMPLES = 32


def check_build_arguments(*, name: str, mode: str, io_dtype: str | None, language: str,
                          target: str | None, verify_samples: int, device=None) -> None:
    """Refuse bad `build` arguments before any work (seconds of conversion) starts.

    Args:
        name, mode, io_dtype, language, target, verify_samples, device: as in
            `build` (``device`` defaults to None).

    Raises:
        ArgumentError: a value `build` does not accept, named with the accepted ones.
        EmitError: ``name`` gives no valid C identifier.
        DeviceError: ``device`` is not a preset name or a `tflite_export.Device`.
    """
    if device is not None:
        tflite_export.get_device(device)
    c_identifier(name)
    resolve_io_dtype(mode, io_dtype)
    if language not in LANGUAGES:
        raise ArgumentError(f"expected language in {LANGUAGES}. Received: language={language!r}.")
    check_target(target)
    if isinstance(verify_samples, bool) or not isinstance(verify_samples, int) or verify_samples < 1:
        raise ArgumentError(
            f"expected verify_samples as an int >= 1. Received: verify_samples={verify_samples!r}."
        )


def check_target(target: str | None) -> None:
    """Raise `ArgumentError` unless ``target`` is None or one of `tflite_export.TARGETS`."""
    if target is not None and target not in TARGETS:
        raise ArgumentError(f"expected target in {TARGETS} or None. Received: target={target!r}.")


def _stack(samples, n: int) -> list[np.ndarray]:
    chosen = samples[:n]
    return [np.concatenate([s[i] for s in chosen]) for i in range(len(chosen[0]))]


def _slim(converted: bytes, x_verify: list[np.ndarray]) -> bytes:
    """Slim stage: drop what TFLM never reads, then prove TFLM's outputs unchanged."""
    slimmed = tflite_export.slim(converted).model
    tflite_export.verify_identical(converted, slimmed, x_verify, what="slimmed")
    return slimmed


def _encode(model: bytes, lut, x_verify: list[np.ndarray], progress: Progress | None = None):
    """Encode stage: LUT-compress clustered tensors (verified bit-identical on TFLM).

    Returns:
        ``(final model bytes, LutResult or None)``.
    """
    if lut is False or lut is None:
        return model, None
    result = tflite_export.compress_luts(
        model,
        tensors="auto" if lut is True else lut,
        verify_data=x_verify if len(x_verify) > 1 else x_verify[0],
        progress=progress,
    )
    return result.model_bytes, result


def _encode_tensors(model: bytes, encode, x_verify: list[np.ndarray], arena_budget: int | None,
                    min_bytes: int):
    """Encode stage: DECODE-encode constant tensors (LUT, prune, Huffman), verified on TFLM.
    ``arena_budget`` bounds the emitted ``kTensorArenaSize``; the encoder checks the host
    arena, so it is given the budget less the kernel scratch bound and margin.

    Returns:
        ``(final model bytes, EncodeResult or None)``.

    Raises:
        ArenaBudgetError: the unencoded model's ``kTensorArenaSize`` is over ``arena_budget``.
    """
    if encode is False or encode is None:
        return model, None
    host_limit = None if arena_budget is None else tflite_export.host_arena_limit(model, arena_budget)
    try:
        result = tflite_export.encode(
            model,
            encodings="auto" if encode is True else encode,
            arena_budget=host_limit,
            min_bytes=min_bytes,
            verify_data=x_verify if len(x_verify) > 1 else x_verify[0],
        )
    except ArenaBudgetError as e:  # e has the measured host arena; add back what the limit took off
        overhead = arena_budget // 16 * 16 - host_limit  # kernel scratch bound + margin
        raise ArenaBudgetError(-(-(e.arena_bytes + overhead) // 16) * 16, arena_budget,
                               figure="kTensorArenaSize", parameter="encode_arena_budget") from None
    return result.model_bytes, result


def _measure(model: bytes, progress: Progress | None = None, device=None):
    """Measure stage: the host TFLM arena and the model report that includes it
    (with the cost estimate on ``device`` unless None)."""
    arena = tflite_export.measure_arena(model, progress=progress)
    report = dataclasses.replace(
        tflite_export.inspect(model, measure=False, device=device),
        arena_bytes=arena.host_bytes,
        arena_emitted_bytes=arena.emitted_bytes,
    )
    return arena, report


def _keeps_state(model: bytes) -> bool:
    """Whether some tensor is a variable (LSTM state), carried from one ``Invoke`` to the next."""
    return any(t.isVariable for sg in fb.unpack(model).subgraphs for t in sg.tensors)


def _golden_inputs(model: bytes, x_verify: list[np.ndarray]) -> list[np.ndarray]:
    """The first verification sample of every input, in the model's input dtype; the first two
    (stacked) for a model that keeps state, so the self-test checks the reset between them."""
    n = 2 if _keeps_state(model) else 1
    return [tflite_export.quantize(x[:n], model, index=i) for i, x in enumerate(x_verify)]


def render_firmware(result: BuildResult, target: str) -> dict[str, bytes]:
    """The firmware project of a built model, paths under ``firmware/`` -> bytes.

    Args:
        result: a `BuildResult`.
        target: one of `tflite_export.TARGETS`.

    Returns:
        The project's files; the golden outputs are the host TFLM's outputs
        for ``result.golden_inputs`` (every input and output of the model).

    Raises:
        EmitError: the target's TFLM cannot run the model (see
            `tflite_export.write_firmware_project`).
    """
    files = render_project(result.model, target, name=result.name, golden_input=result.golden_inputs,
                           arena_size=result.arena.emitted_bytes)
    return {f"firmware/{path}": text.encode() for path, text in files.items()}


def build(
    model,
    representative_data,
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
    encode: bool | str | Sequence[str] = False,
    encode_arena_budget: int | None = None,
    encode_min_bytes: int = 256,
    language: str = "c++",
    target: str | None = None,
    device=None,
    allow_unsafe: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Convert, slim, encode, verify, measure and render a model for TFLM; write nothing.

    Args:
        model: a Keras 3 / tf_keras model, a `LoadedModel` or a path (see `load_model`).
        representative_data: calibration samples (see `convert`); the first
            ``verify_samples`` are also used for verification.
        name: model name; C identifiers derive from it. Default "model".
        io_dtype: input/output dtype (see `convert`). Default None (int8).
        mode: ``"int8"`` or ``"int16x8"``. Default "int8".
        per_channel_dense: per-channel Dense weights. Default False.
        slim: remove bytes TFLM does not read (verified bit-exact). Default True.
        verify_samples: samples compared on TFLM/LiteRT/float. Default 32.
        verify_max_lsb: TFLM/LiteRT difference tolerated per requantized tensor,
            in LSBs (see `tflite_export.verify`). Default 1.
        layer_errors: compare every intermediate tensor with the float model
            and list the worst layers. Default False.
        lut: LUT-compress constant tensors with few distinct values: True or
            ``"auto"`` for every tensor that shrinks, or the ``tensors`` argument
            of `tflite_export.compress_luts`. Verified bit-identical on TFLM.
            Default False.
        encode: encode constant tensors for TFLM's DECODE (Deep Compression on
            the device): True or ``"auto"`` chooses per tensor among LUT, prune
            (sparse bitmask) and Huffman the encoding with the smallest flash;
            ``"lut"``, ``"prune"``, ``"huffman"`` or a list restricts the
            choice (see `tflite_export.encode`). Decoded tensors live in the
            arena. Verified bit-identical on TFLM; never grows the model.
            Exclusive with ``lut``. Default False.
        encode_arena_budget: with ``encode``: the largest ``kTensorArenaSize``
            (bytes, as emitted: host arena, kernel scratch bound and margin) the
            encodings may bring the model to; tensors whose decoded copy would
            exceed it stay unencoded. Default None.
        encode_min_bytes: with ``encode``: smallest tensor encoded. Default 256.
        language: ``"c++"`` (``<name>_data.cc``) or ``"c"``. Default "c++".
        target: also render a firmware project (see `tflite_export.TARGETS`)
            whose self-test runs every input and checks every output. Default None.
        device: also estimate per-layer and total cycles, ms and µJ on this
            microcontroller: a preset name (``"nrf52840"``, ``"stm32l4r5"``...;
            `tflite_export.DEVICES`) or a `tflite_export.Device`. The estimate
            lands in ``report.cost`` and the reports, labelled with its error
            and source. Default None.
        allow_unsafe: load saved models with Lambda/foreign layers. Default False.
        progress: a `tflite_export.Progress` callback: each stage is announced as
            ``progress(message, 0, 0)`` and the arena, LUT and verification
            stages report their steps (``tflite_export.print_progress`` prints
            them). Default None.

    Returns:
        A `BuildResult`.

    Raises:
        ArgumentError: a bad argument value (checked before any work).
        ArenaBudgetError: with ``encode``, the model's ``kTensorArenaSize`` is over
            ``encode_arena_budget`` before anything is encoded.
        TinyCompressError: a stage refused the model or data.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
        >>> r = build(m, x, verify_samples=4)
        >>> sorted(r.sources), r.report.flash_bytes == len(r.model)
        (['model_data.cc', 'model_data.h', 'model_io.h', 'model_ops.h'], True)
    """
    check_build_arguments(name=name, mode=mode, io_dtype=io_dtype, language=language,
                          target=target, verify_samples=verify_samples, device=device)
    if encode not in (False, None) and lut not in (False, None):
        raise ArgumentError("lut and encode are exclusive: encode=... includes LUT; drop lut.")

    def step(message: str) -> None:
        report(progress, message, 0, 0)

    step("loading model")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, allow_unsafe=allow_unsafe)
    samples = prepare_samples(representative_data, loaded.input_shapes)
    x_verify = _stack(samples, verify_samples)
    step("converting to full-integer TFLite")
    converted = convert(loaded, samples, io_dtype=io_dtype, mode=mode,
                        per_channel_dense=per_channel_dense)
    if slim:
        step("slimming and checking bit-exactness on TFLM")
    slimmed = _slim(converted, x_verify) if slim else converted
    if lut is not False and lut is not None:
        step("LUT-compressing clustered tensors and checking bit-exactness on TFLM")
    final, lut_result = _encode(slimmed, lut, x_verify, progress)
    if encode not in (False, None):
        step("encoding constant tensors for TFLM's DECODE and checking bit-exactness")
    final, encoding = _encode_tensors(final, encode, x_verify, encode_arena_budget, encode_min_bytes)
    step("verifying on TFLM and LiteRT")
    verification = tflite_export.verify(final, x_verify, float_outputs=loaded.predict(x_verify),
                                        litert_model=converted, max_lsb=verify_max_lsb,
                                        progress=progress)
    step("measuring the tensor arena")
    arena, model_report = _measure(final, progress, device)
    errors = []
    if layer_errors:
        from tinycompress.layer_error import layer_errors as _layer_errors

        step("comparing every layer with the float model")
        errors = _layer_errors(loaded, converted, x_verify)
    step("rendering C sources")
    sources = render_c_sources(final, name=name, arena_size=arena.emitted_bytes, language=language)
    result = BuildResult(model=final, report=model_report, arena=arena, verification=verification,
                         unslimmed_bytes=len(converted), name=name,
                         sources={k: v.encode() for k, v in sources.items()},
                         golden_inputs=_golden_inputs(final, x_verify),
                         layer_errors=errors, lut=lut_result, encoding=encoding)
    if target is not None:
        step(f"rendering the {target} firmware project")
        result.firmware, result.target = render_firmware(result, target), target
    return result
