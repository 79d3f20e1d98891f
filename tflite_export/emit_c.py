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
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from tflite_export import _flatbuffer as fb
from tflite_export.errors import EmitError, UnsupportedModelError
from tflite_export.io_details import TensorIO, input_details, output_details
from tflite_export.tflm_ops import BUILTIN_RESOLVER_METHODS, CUSTOM_RESOLVER_METHODS
from tflite_export.validate import validate

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
    "emit_c_sources",
]

#: Languages of the emitted array source: ``"c++"`` writes ``.cc``, ``"c"`` writes ``.c``.
LANGUAGES = ("c++", "c")
#: Bytes of the model array per line of the source file.
BYTES_PER_LINE = 12

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto "
    "if inline int long register restrict return short signed sizeof static struct switch "
    "typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex "
    "_Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool "
    "constexpr false nullptr static_assert thread_local true typeof typeof_unqual".split()
)
_CXX_KEYWORDS = frozenset(
    "and and_eq asm bitand bitor catch char8_t char16_t char32_t class compl concept "
    "const_cast consteval constinit co_await co_return co_yield decltype delete "
    "dynamic_cast explicit export friend mutable namespace new noexcept not not_eq "
    "operator or or_eq private protected public reinterpret_cast requires static_cast "
    "template this throw try typeid typename using virtual wchar_t xor xor_eq".split()
)
#: Words rejected as model names: keywords of C23 and C++20.
RESERVED_WORDS = _C_KEYWORDS | _CXX_KEYWORDS

_HEX = [f"0x{b:02x}" for b in range(256)]
_C_TYPES = {
    "int8": ("int8_t", -128, 127),
    "uint8": ("uint8_t", 0, 255),
    "int16": ("int16_t", -32768, 32767),
    "int32": ("int32_t", None, None),
    "float32": ("float", None, None),
}


def c_identifier(name: str) -> str:
    """Turn a model name into the C identifier used in file and symbol names.

    Args:
        name: any model name, e.g. ``"kws-v2"``.

    Returns:
        The identifier: runs of non-alphanumeric ASCII characters become ``_``,
        leading/trailing ``_`` are stripped, a leading digit gets an ``m_`` prefix.

    Raises:
        EmitError: ``name`` is not a string, has no letter or digit, or is a C/C++
            keyword.

    Example:
        >>> c_identifier("kws-v2.1"), c_identifier("3d net")
        ('kws_v2_1', 'm_3d_net')
    """
    if not isinstance(name, str):
        raise EmitError(f"expected the model name as a str. Received name={name!r}.")
    ident = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if not ident:
        raise EmitError(
            "expected a model name with at least one ASCII letter or digit. "
            f"Received name={name!r}. Pass e.g. name='model'."
        )
    if ident[0].isdigit():
        ident = "m_" + ident
    if ident in RESERVED_WORDS:
        raise EmitError(
            f"the model name {name!r} gives the C identifier {ident!r}, a C/C++ keyword. "
            f"Pass another name, e.g. name='{ident}_model'."
        )
    return ident


def _comment(text: str) -> str:
    """Make arbitrary text safe inside a C comment (no ``*/``, printable ASCII)."""
    return re.sub(r"[^A-Za-z0-9 _.:;,=+\-\[\]()/#@]", "?", text)


def _c_string(text: str) -> str:
    out = []
    for ch in text.encode():
        c = chr(ch)
        out.append(c if (32 <= ch < 127 and c not in '"\\?') else f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def _float_literal(x: float) -> str:
    """Shortest literal that parses back to the same float32, with an ``f`` suffix."""
    text = np.format_float_scientific(np.float32(x), unique=True, exp_digits=2)
    mantissa, exponent = text.split("e")
    if "." not in mantissa:
        mantissa += ".0"
    elif mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}e{exponent}f"


def _checked_model(model_bytes: bytes) -> bytes:
    if not isinstance(model_bytes, (bytes, bytearray, memoryview)):
        raise EmitError(
            f"expected the model as .tflite bytes. Received {type(model_bytes).__name__}. "
            "Read the file with Path(...).read_bytes()."
        )
    data = bytes(model_bytes)
    validate(data)
    return data


def _header_comment(data: bytes, name: str, what: str, style: str) -> str:
    digest = hashlib.sha256(data).hexdigest()
    lines = [
        f"{what} of model {_comment(name)!r}, generated by tinycompress. Do not edit.",
        f"Model: {len(data)} bytes, sha256 {digest}.",
    ]
    if style == "//":
        return "\n".join("// " + line for line in lines) + "\n"
    return "/* " + "\n * ".join(lines) + " */\n"


def used_operators(model_bytes: bytes) -> list[tuple[str, str | None, str | None]]:
    """The distinct operators the model's subgraphs use, in operator-code order.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.

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
    model = fb.unpack(_checked_model(model_bytes))
    used = sorted(
        {int(op.opcodeIndex) for sg in model.subgraphs for op in (sg.operators or [])}
    )
    result, seen, missing = [], set(), []
    for index in used:
        opcode = model.operatorCodes[index]
        op = fb.op_name(opcode)
        custom = None
        if op == "CUSTOM":
            raw = opcode.customCode or b""
            custom = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            method = CUSTOM_RESOLVER_METHODS.get(custom)
        else:
            method = BUILTIN_RESOLVER_METHODS.get(op)
            if method is None:
                missing.append(op)
                continue
        key = (op, custom)
        if key not in seen:
            seen.add(key)
            result.append((op, custom, method))
    if missing:
        raise UnsupportedModelError(
            f"expected operators that TFLM has kernels for; the model uses {sorted(set(missing))}, "
            "which TFLM lacks. Replace those layers (see tflite_export.tflm_ops) and re-convert."
        )
    return result


def model_data_header(model_bytes: bytes, *, name: str = "model") -> str:
    """Text of ``<name>_data.h``: declarations of the array and its length.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
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
    data = _checked_model(model_bytes)
    ident = c_identifier(name)
    guard = f"TINYCOMPRESS_{ident.upper()}_DATA_H_"
    return (
        _header_comment(data, name, "Flatbuffer", "/*")
        + f"#ifndef {guard}\n#define {guard}\n\n"
        + "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        + "/* 16-byte aligned in the source file, as TFLM requires. */\n"
        + f"extern const unsigned char g_{ident}_data[];\n"
        + f"extern const unsigned int g_{ident}_data_len;\n\n"
        + "#ifdef __cplusplus\n}  /* extern \"C\" */\n#endif\n\n"
        + f"#endif  /* {guard} */\n"
    )


def model_data_source(model_bytes: bytes, *, name: str = "model", language: str = "c++") -> str:
    """Text of ``<name>_data.cc`` (or ``.c``): the aligned byte array and its length.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
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
    data = _checked_model(model_bytes)
    ident = c_identifier(name)
    rows = [
        "    " + ", ".join(map(_HEX.__getitem__, data[i : i + BYTES_PER_LINE])) + ","
        for i in range(0, len(data), BYTES_PER_LINE)
    ]
    include_align = "#include <stdalign.h>\n\n" if language == "c" else ""
    return (
        _header_comment(data, name, "Flatbuffer", "/*")
        + f"#include \"{ident}_data.h\"\n\n"
        + include_align
        + f"alignas(16) const unsigned char g_{ident}_data[] = {{\n"
        + "\n".join(rows)
        + "\n};\n"
        + f"const unsigned int g_{ident}_data_len = {len(data)}u;\n"
    )


def model_ops_header(
    model_bytes: bytes, *, name: str = "model", allow_unresolved_custom: bool = False
) -> str:
    """Text of ``<name>_ops.h``: an op resolver sized to, and filled with, the model's ops.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
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
    data = _checked_model(model_bytes)
    ident = c_identifier(name)
    macro = ident.upper()
    ops = used_operators(data)
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
    guard = f"TINYCOMPRESS_{macro}_OPS_H_"
    listing, declarations, calls = [], [], []
    k = 0
    for op, custom, method in ops:
        label = op if custom is None else f"CUSTOM {_comment(custom)!r}"
        if method is not None:
            listing.append(f"//   {label} -> {method}")
            calls.append(f"  if (resolver.{method}() != kTfLiteOk) return kTfLiteError;")
            continue
        fn = f"{ident}_custom_op{k}"
        k += 1
        listing.append(f"//   {label} -> UNRESOLVED: TODO define {fn}()")
        declarations.append(
            f"// TODO(user): custom operator {_comment(custom)!r} has no TFLM kernel. Define\n"
            f"// {fn}() in your firmware to return its registration.\n"
            f"const TFLMRegistration* {fn}();\n"
        )
        calls.append(
            f"  if (resolver.AddCustom({_c_string(custom)}, {fn}()) != kTfLiteOk) "
            "return kTfLiteError;  // TODO(user)"
        )
    return (
        _header_comment(data, name, "Op resolver", "//")
        + f"// Registers exactly the operators the model uses ({len(ops)}):\n"
        + "\n".join(listing)
        + f"\n#ifndef {guard}\n#define {guard}\n\n"
        + '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        + f"#define {macro}_OP_COUNT {len(ops)}\n\n"
        + f"typedef tflite::MicroMutableOpResolver<{macro}_OP_COUNT> {ident}_op_resolver_t;\n\n"
        + "".join(d + "\n" for d in declarations)
        + f"inline TfLiteStatus {ident}_register_ops({ident}_op_resolver_t& resolver) {{\n"
        + "\n".join(calls)
        + "\n  return kTfLiteOk;\n}\n\n"
        + f"#endif  // {guard}\n"
    )


def _io_block(t: TensorIO, ident: str, kind: str, i: int) -> str:
    macro = f"{ident.upper()}_{kind.upper()}{i}"
    if t.dtype not in _C_TYPES:
        raise EmitError(
            f"expected model {kind}s of type {sorted(_C_TYPES)}; {kind} {i} is {t.dtype}. "
            "Convert the model with io_dtype='int8'."
        )
    ctype, lo, hi = _C_TYPES[t.dtype]
    elements = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
    itemsize = 4 if ctype == "float" else np.dtype(t.dtype).itemsize
    shape = ", ".join(str(d) for d in t.shape)
    lines = [
        f"/* {kind.capitalize()} {i} {_comment(t.name)!r}: {t.dtype} [{shape}]. */",
        f"#define {macro}_RANK {len(t.shape)}",
        f"#define {macro}_SHAPE {{{shape}}}",
        f"#define {macro}_ELEMENTS {elements}",
        f"#define {macro}_BYTES {elements * itemsize}",
        f"typedef {ctype} {ident}_{kind}{i}_t;",
    ]
    if not t.quantized:
        lines.append(f"/* {kind} {i} is not quantized: no scale or zero point. */")
        return "\n".join(lines) + "\n"
    lines += [
        f"#define {macro}_SCALE {_float_literal(t.scale)}",
        f"#define {macro}_ZERO_POINT {t.zero_point}",
    ]
    if lo is None:
        lines.append(f"/* no helper for {t.dtype}: float cannot hold its range exactly. */")
        return "\n".join(lines) + "\n"
    if kind == "input":
        lines.append(
            f"/* round-half-to-even(x / scale) + zero_point, saturated; NaN -> {lo}. */\n"
            f"static inline {ctype} {ident}_quantize_input{i}(float x) {{\n"
            f"  float v = rintf(x / {macro}_SCALE) + (float){macro}_ZERO_POINT;\n"
            f"  if (!(v >= {lo}.0f)) v = {lo}.0f;\n"
            f"  if (v > {hi}.0f) v = {hi}.0f;\n"
            f"  return ({ctype})v;\n}}"
        )
    else:
        lines.append(
            "/* (q - zero_point) * scale. */\n"
            f"static inline float {ident}_dequantize_output{i}({ctype} q) {{\n"
            f"  return ((float)q - (float){macro}_ZERO_POINT) * {macro}_SCALE;\n}}"
        )
    return "\n".join(lines) + "\n"


def model_io_header(model_bytes: bytes, *, name: str = "model", arena_size: int) -> str:
    """Text of ``<name>_io.h``: I/O shapes, quantization, arena size and helpers.

    Args:
        model_bytes: `.tflite` flatbuffer bytes.
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
    data = _checked_model(model_bytes)
    ident = c_identifier(name)
    macro = ident.upper()
    guard = f"TINYCOMPRESS_{macro}_IO_H_"
    inputs, outputs = input_details(data), output_details(data)
    blocks = [_io_block(t, ident, "input", i) for i, t in enumerate(inputs)]
    blocks += [_io_block(t, ident, "output", i) for i, t in enumerate(outputs)]
    return (
        _header_comment(data, name, "Inputs, outputs and arena", "/*")
        + f"#ifndef {guard}\n#define {guard}\n\n"
        + "#include <math.h>\n#include <stdint.h>\n\n"
        + "/* Bytes of tensor arena the model needs (allocate it 16-byte aligned). */\n"
        + f"#define {macro}_TENSOR_ARENA_SIZE {int(arena_size)}\n"
        + f"enum {{ kTensorArenaSize = {macro}_TENSOR_ARENA_SIZE }};\n\n"
        + f"#define {macro}_INPUT_COUNT {len(inputs)}\n"
        + f"#define {macro}_OUTPUT_COUNT {len(outputs)}\n\n"
        + "\n".join(blocks)
        + f"\n#endif  /* {guard} */\n"
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


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit_c_sources(
    model_bytes: bytes,
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
    _check_language(language)
    _check_arena_size(arena_size)
    ident = c_identifier(name)
    texts = {
        f"{ident}_data.h": model_data_header(model_bytes, name=name),
        f"{ident}_data.{'cc' if language == 'c++' else 'c'}": model_data_source(
            model_bytes, name=name, language=language
        ),
        f"{ident}_ops.h": model_ops_header(
            model_bytes, name=name, allow_unresolved_custom=allow_unresolved_custom
        ),
        f"{ident}_io.h": model_io_header(model_bytes, name=name, arena_size=arena_size),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, text in texts.items():
        path = out / filename
        _write_atomic(path, text)
        paths.append(path)
    return paths
