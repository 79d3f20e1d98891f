"""C sources: compiled for real with host gcc/g++ and arm-none-eabi-gcc, run on the host."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from tflite_export import _flatbuffer as fb
from tflite_export.emit_c import (
    BYTES_PER_LINE,
    c_identifier,
    emit_c_sources,
    model_data_source,
    model_io_header,
    model_ops_header,
    used_operators,
)
from tflite_export.errors import EmitError, UnsupportedModelError
from tflite_export.io_details import dequantize, input_details, output_details, quantize
from tflite_export.testing import tiny_model
from tflite_export.tflm_ops import BUILTIN_RESOLVER_METHODS, CUSTOM_RESOLVER_METHODS

WARN = ["-Wall", "-Wextra", "-Werror"]
ARM = ["-mcpu=cortex-m4", "-mthumb", "-O2"]
CNN_OPS = ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is required (apt-get install gcc g++ gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return path


def _sh(*cmd, cwd=None) -> str:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _with_opcode(model: bytes, index: int, builtin: int, custom: bytes | None = None) -> bytes:
    m = fb.unpack(model)
    m.operatorCodes[index].builtinCode = builtin
    m.operatorCodes[index].deprecatedBuiltinCode = min(builtin, 127)
    m.operatorCodes[index].customCode = custom
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


@pytest.fixture(scope="module")
def cnn(converted) -> bytes:
    return converted("cnn")


def _aligned_symbol(obj: Path, symbol: str) -> tuple[int, int, int]:
    """(symbol value, symbol size, section alignment) of a symbol in an object file."""
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name(symbol)[0]
        section = elf.get_section(sym["st_shndx"])
        return sym["st_value"], sym["st_size"], section["sh_addralign"]


# --- identifiers and arguments ----------------------------------------------


@pytest.mark.parametrize(
    "name, ident",
    [("model", "model"), ("kws-v2.1", "kws_v2_1"), ("__x__", "x"), ("3d net", "m_3d_net"),
     ("Ünïcode net", "n_code_net"), ("int_", "int")],
)
def test_identifier_sanitizing(name, ident):
    if ident == "int":
        with pytest.raises(EmitError, match="keyword.*int_model"):
            c_identifier(name)
    else:
        assert c_identifier(name) == ident


@pytest.mark.parametrize("name", ["int", "class", "while", "namespace", "bool", "---", "", 3])
def test_bad_names_rejected(name):
    with pytest.raises(EmitError, match="Received|keyword"):
        c_identifier(name)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"arena_size": 0}, "positive int"), ({"arena_size": -5}, "positive int"),
     ({"arena_size": True}, "positive int"), ({"arena_size": 10.0}, "positive int"),
     ({"arena_size": 100, "language": "rust"}, "language"),
     ({"arena_size": 100, "name": "delete"}, "keyword")],
)
def test_bad_arguments_write_nothing(tmp_path, kwargs, match):
    with pytest.raises(EmitError, match=match):
        emit_c_sources(tiny_model(), tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_deterministic_and_free_of_paths(tmp_path, cnn):
    a = emit_c_sources(cnn, tmp_path / "a", name="cnn", arena_size=4096)
    b = emit_c_sources(cnn, tmp_path / "b", name="cnn", arena_size=4096)
    assert [p.name for p in a] == ["cnn_data.h", "cnn_data.cc", "cnn_ops.h", "cnn_io.h"]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
        assert str(tmp_path) not in pa.read_text()
        assert "/tmp" not in pa.read_text() and "/work" not in pa.read_text()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in a)


def test_array_text_layout(cnn):
    text = model_data_source(cnn, name="cnn")
    rows = [line for line in text.splitlines() if line.startswith("    0x")]
    assert all(len(r.split(",")) - 1 == BYTES_PER_LINE for r in rows[:-1])
    assert 1 <= len(rows[-1].split(",")) - 1 <= BYTES_PER_LINE
    values = bytes(int(v, 16) for r in rows for v in re.findall(r"0x([0-9a-f]{2})", r))
    assert values == cnn
    assert f"g_cnn_data_len = {len(cnn)}u;" in text


# --- op resolver --------------------------------------------------------------


def test_ops_header_registers_each_op_once(cnn):
    assert [op for op, _, _ in used_operators(cnn)] == CNN_OPS
    text = model_ops_header(cnn, name="cnn")
    assert f"#define CNN_OP_COUNT {len(CNN_OPS)}" in text
    assert "tflite::MicroMutableOpResolver<CNN_OP_COUNT>" in text
    calls = re.findall(r"resolver\.(\w+)\(", text)
    assert sorted(calls) == sorted(BUILTIN_RESOLVER_METHODS[op] for op in CNN_OPS)
    assert len(set(calls)) == len(calls)


def test_tflm_custom_op_uses_its_method():
    model = _with_opcode(tiny_model(), 0, fb.schema.BuiltinOperator.CUSTOM, b"TFLM_DECODE")
    text = model_ops_header(model)
    assert "resolver.AddDecode()" in text and "#define MODEL_OP_COUNT 1" in text
    assert "TODO" not in text


def test_unknown_custom_op_is_refused_or_marked(tmp_path):
    model = _with_opcode(tiny_model(), 0, fb.schema.BuiltinOperator.CUSTOM, b'My"Op')
    with pytest.raises(EmitError, match="My\"Op.*allow_unresolved_custom=True"):
        emit_c_sources(model, tmp_path / "out", arena_size=1024)
    assert not (tmp_path / "out").exists()
    text = model_ops_header(model, allow_unresolved_custom=True)
    assert "#define MODEL_OP_COUNT 1" in text
    assert "const TFLMRegistration* model_custom_op0();" in text
    assert 'resolver.AddCustom("My\\042Op", model_custom_op0()) != kTfLiteOk) return kTfLiteError;  // TODO(user)' in text


def test_builtin_without_tflm_kernel_is_refused(tmp_path):
    missing = next(v for k, v in vars(fb.schema.BuiltinOperator).items()
                   if not k.startswith("_") and k not in BUILTIN_RESOLVER_METHODS and k != "CUSTOM")
    model = _with_opcode(tiny_model(), 0, missing)
    with pytest.raises(UnsupportedModelError, match="TFLM lacks"):
        emit_c_sources(model, tmp_path / "out", arena_size=1024)
    assert not (tmp_path / "out").exists()


def _stub_resolver(root: Path) -> None:
    """A fake TFLM resolver header: records each Add* call, refuses duplicates and overflow."""
    methods = sorted(set(BUILTIN_RESOLVER_METHODS.values()) | set(CUSTOM_RESOLVER_METHODS.values()))
    body = "\n".join(f'  TfLiteStatus {m}() {{ return Record("{m}"); }}' for m in methods)
    header = root / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    header.parent.mkdir(parents=True)
    header.write_text(f"""#pragma once
#include <cstring>
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;
struct TFLMRegistration {{ int id; }};
namespace tflite {{
template <unsigned N>
class MicroMutableOpResolver {{
 public:
  static constexpr unsigned kCapacity = N;
  const char* names[N];
  unsigned count = 0;
{body}
  TfLiteStatus AddCustom(const char* name, const TFLMRegistration*) {{ return Record(name); }}
 private:
  TfLiteStatus Record(const char* name) {{
    if (count == N) return kTfLiteError;
    for (unsigned i = 0; i < count; ++i) if (std::strcmp(names[i], name) == 0) return kTfLiteError;
    names[count++] = name;
    return kTfLiteOk;
  }}
}};
}}  // namespace tflite
""")


@pytest.mark.slow
def test_ops_header_compiles_against_stub_resolver(tmp_path, cnn):
    gxx, arm_gxx = _need("g++"), _need("arm-none-eabi-g++")
    emit_c_sources(cnn, tmp_path, name="cnn", arena_size=4096)
    _stub_resolver(tmp_path / "stub")
    (tmp_path / "main.cc").write_text("""#include <cstdio>
#include "cnn_ops.h"
int main() {
  cnn_op_resolver_t resolver;
  if (cnn_register_ops(resolver) != kTfLiteOk) return 2;
  if (resolver.count != cnn_op_resolver_t::kCapacity) return 3;
  for (unsigned i = 0; i < resolver.count; ++i) std::printf("%s\\n", resolver.names[i]);
  return 0;
}
""")
    exe = tmp_path / "ops"
    _sh(gxx, *WARN, "-std=c++17", "-I", tmp_path, "-I", tmp_path / "stub", tmp_path / "main.cc", "-o", exe)
    assert _sh(exe).split() == [BUILTIN_RESOLVER_METHODS[op] for op in CNN_OPS]
    _sh(arm_gxx, *WARN, *ARM, "-std=c++17", "-fno-exceptions", "-I", tmp_path, "-I", tmp_path / "stub",
        "-c", tmp_path / "main.cc", "-o", tmp_path / "ops_arm.o")


# --- array and I/O helpers compiled and run -------------------------------------

_DUMP_MAIN = """#include <stdio.h>
#include <stdlib.h>
#include "cnn_data.h"
#include "cnn_io.h"

static unsigned char arena[kTensorArenaSize];

int main(int argc, char** argv) {
  FILE* f;
  int i;
  if (argc < 2) return 2;
  f = fopen(argv[1], "wb");
  if (f == NULL || fwrite(g_cnn_data, 1, g_cnn_data_len, f) != g_cnn_data_len) return 3;
  fclose(f);
  if (sizeof(arena) != CNN_TENSOR_ARENA_SIZE || ((size_t)g_cnn_data & 15u) != 0) return 4;
  for (i = 2; i < argc; ++i) printf("%d\\n", (int)cnn_quantize_input0(strtof(argv[i], NULL)));
  for (i = -128; i < 128; ++i) printf("%a\\n", (double)cnn_dequantize_output0((int8_t)i));
  return 0;
}
"""


@pytest.mark.slow
@pytest.mark.parametrize("language, compiler, std", [("c", "gcc", "-std=c11"), ("c++", "g++", "-std=c++17")])
def test_host_program_round_trips_array_and_quantizes_like_numpy(tmp_path, cnn, language, compiler, std):
    cc = _need(compiler)
    paths = emit_c_sources(cnn, tmp_path, name="cnn", arena_size=4096, language=language)
    main = tmp_path / ("main.c" if language == "c" else "main.cc")
    main.write_text(_DUMP_MAIN)
    exe = tmp_path / "dump"
    _sh(cc, *WARN, std, "-O2", "-I", tmp_path, main, paths[1], "-o", exe, "-lm")
    scale = input_details(cnn)[0].scale
    rng = np.random.default_rng(0)
    xs = np.concatenate([
        rng.uniform(-0.2, 1.2, 40), [0.0, -1e9, 1e9, 0.5, 1.0, -0.5],
        (np.arange(-4, 4) + 0.5) * scale,  # ties or near-ties of x / scale
    ]).astype(np.float32)
    out = _sh(exe, tmp_path / "copy.tflite", *[float(x).hex() for x in xs]).split()
    assert (tmp_path / "copy.tflite").read_bytes() == cnn
    q = np.array([int(v) for v in out[: len(xs)]], dtype=np.int8)
    np.testing.assert_array_equal(q, quantize(xs, cnn))
    deq = np.array([float.fromhex(v) for v in out[len(xs):]], dtype=np.float32)
    ref = dequantize(np.arange(-128, 128, dtype=np.int8), cnn)
    assert deq.tobytes() == ref.tobytes()


def test_io_header_values(cnn):
    text = model_io_header(cnn, name="cnn", arena_size=4096)
    i, o = input_details(cnn)[0], output_details(cnn)[0]
    assert "#define CNN_TENSOR_ARENA_SIZE 4096" in text
    assert "#define CNN_INPUT0_SHAPE {1, 12, 12, 1}" in text
    assert "#define CNN_INPUT0_ELEMENTS 144" in text and "#define CNN_OUTPUT0_BYTES 10" in text
    scale = float(re.search(r"CNN_INPUT0_SCALE (\S+)f", text).group(1))
    assert np.float32(scale) == np.float32(i.scale)
    assert f"#define CNN_OUTPUT0_ZERO_POINT {o.zero_point}" in text


@pytest.mark.slow
@pytest.mark.parametrize("language, compiler, std", [("c", "arm-none-eabi-gcc", "-std=c11"),
                                                    ("c++", "arm-none-eabi-g++", "-std=c++17"),
                                                    ("c", "gcc", "-std=c11"),
                                                    ("c++", "g++", "-std=c++17")])
def test_array_is_16_byte_aligned_in_object(tmp_path, cnn, language, compiler, std):
    cc = _need(compiler)
    paths = emit_c_sources(cnn, tmp_path, name="cnn", arena_size=4096, language=language)
    flags = ARM if compiler.startswith("arm") else ["-O2"]
    obj = tmp_path / "data.o"
    _sh(cc, *WARN, *flags, std, "-I", tmp_path, "-c", paths[1], "-o", obj)
    value, size, align = _aligned_symbol(obj, "g_cnn_data")
    assert value % 16 == 0 and align >= 16 and size == len(cnn)
    # the I/O header compiles on its own for the target too
    (tmp_path / "io_user.c").write_text(
        '#include "cnn_io.h"\nint8_t q(float x);\nint8_t q(float x) { return cnn_quantize_input0(x); }\n'
    )
    src = tmp_path / ("io_user.c" if language == "c" else "io_user.cc")
    if language == "c++":
        src.write_text((tmp_path / "io_user.c").read_text())
    _sh(cc, *WARN, *flags, std, "-I", tmp_path, "-c", src, "-o", tmp_path / "io.o")
