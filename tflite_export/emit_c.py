"""C sources for a `.tflite` model: the byte array, the op resolver, the I/O header.

For a model called ``name`` (``"model"`` by default) four files are written:

* ``<name>_data.h`` / ``<name>_data.cc`` (``.c`` with ``language="c"``): the
  flatbuffer as ``alignas(16) const unsigned char g_<name>_data[]`` and its length
  ``g_<name>_data_len``, 12 bytes per line. The header declares both with C
  linkage, so C and C++ code can include it.
* ``<name>_ops.h`` (C++, includes TFLM): ``<name>_op_resolver_t``, a
  ``tflite::MicroMutableOpResolver<N>`` with ``N`` the number of distinct operators
  the model uses, and ``<name>_register_ops(resolver)`` that adds exactly them.
* ``<name>_io.h`` (C and C++): shapes, element and byte counts, scales and zero
  points of every input and output as ``<NAME>_INPUT<i>_*`` macros, the tensor
  arena size as ``<NAME>_TENSOR_ARENA_SIZE`` and as the enum constant
  ``kTensorArenaSize``, and ``static inline`` helpers ``<name>_quantize_input<i>``
  and ``<name>_dequantize_output<i>`` that compute exactly what
  `tflite_export.quantize` / `tflite_export.dequantize` compute.

Identifiers: ``name`` becomes a C identifier by replacing every run of characters
other than ASCII letters and digits with ``_``, stripping leading and trailing
``_`` (identifiers starting with ``_`` are reserved in C), and prefixing ``m_``
when it starts with a digit. A result that is a C or C++ keyword (``int``,
``class``...) is rejected with `EmitError` rather than silently renamed, since the
name also names the files. The same bytes and arguments always give the same text:
no dates, no paths, only the model's size and SHA-256.

The texts come from the Jinja2 templates in ``firmware_templates/c_sources``
(rendered like the firmware projects). Each function parses the model once
into a `ModelView` and hands it on; `render_c_sources` returns every file in
memory and `emit_c_sources` writes them with `tflite_export.atomic`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import firmware_templates
from tflite_export import _flatbuffer as fb
from tflite_export._c_text import (
    RESERVED_WORDS,
    _c_string,
    _comment,
    _float_literal,
    _header_comment,
    c_identifier,
)
from tflite_export.atomic import write_files
from tflite_export.errors import EmitError, UnsupportedModelError
from tflite_export.io_details import TensorIO, input_details, output_details
from tflite_export.tflm_ops import BUILTIN_RESOLVER_METHODS, CUSTOM_RESOLVER_METHODS

__all__ = [
    "LANGUAGES",
    "BYTES_PER_LINE",
    "RESERVED_WORDS",
    "c_identifier",
    "used_operators",
    "model_data_header",
    "model_data_source",
    "model_ops_header",
    "model_io_header",
    "render_c_sources",
    "emit_c_sources",
]

#: Languages of the emitted array source: ``"c++"`` writes ``.cc``, ``"c"`` writes ``.c``.
LANGUAGES = ("c++", "c")
#: Bytes of the model array per line of the source file.
BYTES_PER_LINE = 12

_HEX = [f"0x{b:02x}" for b in range(256)]
_C_TYPES = {
    "int8": ("int8_t", -128, 127),
    "uint8": ("uint8_t", 0, 255),
    "int16": ("int16_t", -32768, 32767),
    "int32": ("int32_t", None, None),
    "float32": ("float", None, None),
}


def _render(template: str, **context) -> str:
    return firmware_templates.environment().get_template(f"c_sources/{template}").render(context)


def _used(view: fb.ModelView) -> list[tuple[str, str | None, str | None]]:
    result, seen, missing = [], set(), []
    for op in sorted(view.operators, key=lambda o: o.opcode_index):
        if op.name == "CUSTOM":
            method = CUSTOM_RESOLVER_METHODS.get(op.custom_code)
        else:
            method = BUILTIN_RESOLVER_METHODS.get(op.name)
            if method is None:
                missing.append(op.name)
                continue
        key = (op.name, op.custom_code)
        if key not in seen:
            seen.add(key)
            result.append((op.name, op.custom_code, method))
    if missing:
        raise UnsupportedModelError(
            f"expected operators that TFLM has kernels for; the model uses {sorted(set(missing))}, "
            "which TFLM lacks. Replace those layers (see tflite_export.tflm_ops) and re-convert."
        )
    return result


def used_operators(model_bytes: "bytes | fb.ModelView") -> list[tuple[str, str | None, str | None]]:
    """The distinct operators the model's subgraphs use, in operator-code order.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`).

    Returns:
        ``(op_name, custom_code, resolver_method)`` per distinct operator;
        ``custom_code`` is None for builtins and ``resolver_method`` is None for a
        custom operator TFLM does not ship.

    Raises:
        ModelFormatError: the bytes are not a valid model.
        UnsupportedModelError: a builtin operator has no TFLM kernel.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> used_operators(tiny_model())
        [('FULLY_CONNECTED', None, 'AddFullyConnected')]
    """
    return _used(fb.checked_view(model_bytes))


def model_data_header(model_bytes: "bytes | fb.ModelView", *, name: str = "model") -> str:
    """Text of ``<name>_data.h``: declarations of the array and its length.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`).
        name: model name (see `c_identifier`). Default ``"model"``.

    Returns:
        The header text (C and C++ compatible).

    Raises:
        EmitError: bad name or model type.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> [l for l in model_data_header(tiny_model(), name="kws").splitlines() if "extern c" in l]
        ['extern const unsigned char g_kws_data[];', 'extern const unsigned int g_kws_data_len;']
    """
    data = fb.checked_view(model_bytes).data
    ident = c_identifier(name)
    return _render("model_data.h.j2", header=_header_comment(data, name, "Flatbuffer", "/*"),
                   guard=f"TINYCOMPRESS_{ident.upper()}_DATA_H_", ident=ident)


def model_data_source(
    model_bytes: "bytes | fb.ModelView", *, name: str = "model", language: str = "c++"
) -> str:
    """Text of ``<name>_data.cc`` (or ``.c``): the aligned byte array and its length.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`).
        name: model name (see `c_identifier`). Default ``"model"``.
        language: ``"c++"`` (default) or ``"c"`` (adds ``#include <stdalign.h>``).

    Returns:
        The source text, `BYTES_PER_LINE` bytes per line.

    Raises:
        EmitError: bad name, language or model type.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> src = model_data_source(tiny_model(), name="kws", language="c")
        >>> [line for line in src.splitlines() if "g_kws" in line][0]
        'alignas(16) const unsigned char g_kws_data[] = {'
    """
    _check_language(language)
    data = fb.checked_view(model_bytes).data
    rows = "\n".join(
        "    " + ", ".join(map(_HEX.__getitem__, data[i : i + BYTES_PER_LINE])) + ","
        for i in range(0, len(data), BYTES_PER_LINE)
    )
    return _render("model_data.c.j2", header=_header_comment(data, name, "Flatbuffer", "/*"),
                   ident=c_identifier(name), language=language, rows=rows, size=len(data))


def _resolver_entries(ops: list, ident: str) -> list[dict]:
    entries, k = [], 0
    for op, custom, method in ops:
        entry = {"label": op if custom is None else f"CUSTOM {_comment(custom)!r}", "method": method}
        if method is None:
            entry.update(fn=f"{ident}_custom_op{k}", custom_comment=repr(_comment(custom)),
                         c_string=_c_string(custom))
            k += 1
        entries.append(entry)
    return entries


def model_ops_header(
    model_bytes: "bytes | fb.ModelView", *, name: str = "model", allow_unresolved_custom: bool = False
) -> str:
    """Text of ``<name>_ops.h``: an op resolver sized to, and filled with, the model's ops.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`).
        name: model name (see `c_identifier`). Default ``"model"``.
        allow_unresolved_custom: for a custom operator TFLM does not ship, declare
            ``const TFLMRegistration* <name>_custom_op<k>();`` (marked TODO, for the
            user to define) and register it with ``AddCustom``. Default False: raise.

    Returns:
        The C++ header text; it includes TFLM's ``micro_mutable_op_resolver.h``.

    Raises:
        EmitError: a custom operator has no TFLM kernel and
            ``allow_unresolved_custom`` is False; bad name.
        UnsupportedModelError: a builtin operator has no TFLM kernel.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> text = model_ops_header(tiny_model())
        >>> "MicroMutableOpResolver<MODEL_OP_COUNT>" in text, "#define MODEL_OP_COUNT 1" in text
        (True, True)
    """
    view = fb.checked_view(model_bytes)
    ident = c_identifier(name)
    ops = _used(view)
    unresolved = [custom for op, custom, method in ops if method is None]
    if unresolved and not allow_unresolved_custom:
        raise EmitError(
            f"expected custom operators that TFLM ships ({sorted(CUSTOM_RESOLVER_METHODS)}); "
            f"the model uses {unresolved}, which TFLM lacks. Remove them from the model, or "
            "implement their kernels and pass allow_unresolved_custom=True to get a TODO "
            "registration to fill in."
        )
    if not ops:
        raise EmitError("expected a model with at least one operator. Received none; re-convert it.")
    return _render("model_ops.h.j2", header=_header_comment(view.data, name, "Op resolver", "//"),
                   guard=f"TINYCOMPRESS_{ident.upper()}_OPS_H_", ident=ident, MACRO=ident.upper(),
                   ops=_resolver_entries(ops, ident))


def _io_entry(t: TensorIO, ident: str, kind: str, i: int) -> dict:
    if t.dtype not in _C_TYPES:
        raise EmitError(
            f"expected model {kind}s of type {sorted(_C_TYPES)}; {kind} {i} is {t.dtype}. "
            "Convert the model with io_dtype='int8'."
        )
    ctype, lo, hi = _C_TYPES[t.dtype]
    elements = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
    itemsize = 4 if ctype == "float" else np.dtype(t.dtype).itemsize
    return {
        "kind": kind, "i": i, "macro": f"{ident.upper()}_{kind.upper()}{i}",
        "name_literal": repr(_comment(t.name)), "dtype": t.dtype,
        "shape": ", ".join(str(d) for d in t.shape), "rank": len(t.shape),
        "elements": elements, "bytes": elements * itemsize, "ctype": ctype,
        "quantized": t.quantized, "scale": _float_literal(t.scale) if t.quantized else None,
        "zero_point": t.zero_point, "lo": lo, "hi": hi,
    }


def model_io_header(model_bytes: "bytes | fb.ModelView", *, name: str = "model", arena_size: int) -> str:
    """Text of ``<name>_io.h``: I/O shapes, quantization, arena size and helpers.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`).
        name: model name (see `c_identifier`). Default ``"model"``.
        arena_size: tensor arena bytes (e.g. ``measure_arena(model).emitted_bytes``).

    Returns:
        The header text (C and C++ compatible; uses ``<stdint.h>`` and ``<math.h>``).

    Raises:
        EmitError: ``arena_size`` is not a positive int, an I/O tensor has an
            unsupported type, bad name.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> text = model_io_header(tiny_model(), arena_size=2048)
        >>> "enum { kTensorArenaSize = MODEL_TENSOR_ARENA_SIZE };" in text
        True
    """
    _check_arena_size(arena_size)
    view = fb.checked_view(model_bytes)
    ident = c_identifier(name)
    inputs, outputs = input_details(view), output_details(view)
    tensors = [_io_entry(t, ident, "input", i) for i, t in enumerate(inputs)]
    tensors += [_io_entry(t, ident, "output", i) for i, t in enumerate(outputs)]
    return _render(
        "model_io.h.j2", header=_header_comment(view.data, name, "Inputs, outputs and arena", "/*"),
        guard=f"TINYCOMPRESS_{ident.upper()}_IO_H_", ident=ident, MACRO=ident.upper(),
        arena_size=int(arena_size), input_count=len(inputs), output_count=len(outputs),
        tensors=tensors,
    )


def _check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise EmitError(
            f"expected language in {LANGUAGES}. Received language={language!r}. "
            "Use 'c++' for a .cc array source or 'c' for a .c one."
        )


def _check_arena_size(arena_size: int) -> None:
    if isinstance(arena_size, bool) or not isinstance(arena_size, (int, np.integer)) or arena_size <= 0:
        raise EmitError(
            f"expected arena_size as a positive int (bytes). Received arena_size={arena_size!r}. "
            "Measure it with tflite_export.measure_arena(model).emitted_bytes."
        )


def render_c_sources(
    model_bytes: "bytes | fb.ModelView",
    *,
    name: str = "model",
    arena_size: int,
    language: str = "c++",
    allow_unresolved_custom: bool = False,
) -> dict[str, str]:
    """Every file `emit_c_sources` writes, in memory: file name -> text.

    Args:
        model_bytes: `.tflite` flatbuffer bytes (or a `ModelView`), parsed once.
        name, arena_size, language, allow_unresolved_custom: see `emit_c_sources`.

    Returns:
        ``{"<ident>_data.h", "<ident>_data.cc|.c", "<ident>_ops.h", "<ident>_io.h"}``
        mapped to their texts, in that order.

    Raises:
        EmitError, UnsupportedModelError, ModelFormatError: see `emit_c_sources`.

    Example:
        >>> from tflite_export.testing import tiny_model
        >>> list(render_c_sources(tiny_model(), name="kws", arena_size=2048, language="c"))
        ['kws_data.h', 'kws_data.c', 'kws_ops.h', 'kws_io.h']
    """
    _check_language(language)
    _check_arena_size(arena_size)
    ident = c_identifier(name)
    view = fb.checked_view(model_bytes)
    return {
        f"{ident}_data.h": model_data_header(view, name=name),
        f"{ident}_data.{'cc' if language == 'c++' else 'c'}": model_data_source(
            view, name=name, language=language
        ),
        f"{ident}_ops.h": model_ops_header(
            view, name=name, allow_unresolved_custom=allow_unresolved_custom
        ),
        f"{ident}_io.h": model_io_header(view, name=name, arena_size=arena_size),
    }


def emit_c_sources(
    model_bytes: "bytes | fb.ModelView",
    out_dir: str | os.PathLike,
    *,
    name: str = "model",
    arena_size: int,
    language: str = "c++",
    allow_unresolved_custom: bool = False,
) -> list[Path]:
    """Write ``<name>_data.h``, ``<name>_data.cc|.c``, ``<name>_ops.h`` and ``<name>_io.h``.

    Every text is built before anything is written, so a refused model writes
    nothing; each file is replaced atomically.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
        out_dir: directory to write into (created if missing).
        name: model name (see `c_identifier`). Default ``"model"``.
        arena_size: tensor arena bytes for ``kTensorArenaSize``.
        language: ``"c++"`` (default, ``.cc``) or ``"c"`` (``.c``) for the array source.
        allow_unresolved_custom: see `model_ops_header`. Default False.

    Returns:
        The four paths, in the order above.

    Raises:
        EmitError: bad arguments or a custom op TFLM lacks (see `model_ops_header`).
        UnsupportedModelError: a builtin operator has no TFLM kernel.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> import tempfile
        >>> from tflite_export.testing import tiny_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     [p.name for p in emit_c_sources(tiny_model(), d, name="kws", arena_size=2048)]
        ['kws_data.h', 'kws_data.cc', 'kws_ops.h', 'kws_io.h']
    """
    texts = render_c_sources(model_bytes, name=name, arena_size=arena_size, language=language,
                             allow_unresolved_custom=allow_unresolved_custom)
    return write_files(Path(out_dir), texts)
