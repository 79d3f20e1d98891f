"""Firmware projects: rendering, golden data, compile/link checks, and (with TFLM_DIR) real builds.

Real builds: ``TFLM_DIR=/path/to/tflite-micro TFLM_GEN_CACHE=/path/to/cache pytest -m tflm_source
tests/tflite_export/test_firmware.py``; TFLM_GEN_CACHE (optional) keeps TFLM's compiled library
between runs, which otherwise takes many minutes per flavour (host, Cortex-M4, Cortex-M4 with
compression).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

import firmware_templates
from tflite_export.emit_c import used_operators
from tflite_export.errors import EmitError
from tflite_export.firmware import (
    TARGETS,
    _LAYOUT,
    render_project,
    resolve_board,
    write_firmware_project,
)
from tflite_export.io_details import quantize
from tflite_export.runtime import run_tflm
from tflite_export.testing import tiny_model

WARN = ["-Wall", "-Wextra", "-Werror"]
ARM = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"]
GOLDEN_IN = np.array([10, -20, 30, 5], np.int8)


def _sh(*cmd, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is required (apt-get install gcc g++ gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    return path


def _golden_values(text: str, array: str) -> list[int]:
    body = re.search(re.escape(array) + r"\[[^]]*\] = \{(.*?)\};", text, re.S).group(1)
    return [int(v) for v in re.findall(r"-?\d+", body)]


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_renders_completely_and_deterministically(tmp_path, target):
    a = render_project(tiny_model(), target, name="kws", golden_input=GOLDEN_IN, arena_size=2048)
    b = render_project(tiny_model(), target, name="kws", golden_input=GOLDEN_IN, arena_size=2048)
    assert a == b
    used = set(_LAYOUT[target][2]) | {"common/golden.h.j2", "common/golden.c.j2"}
    assert {f"{target}/{t}" for t in firmware_templates.template_files(target)} <= used
    for path, text in a.items():
        assert not re.search(r"\{\{|\{%|\{#|%\}", text), f"unrendered placeholder in {path}"
        assert "/tmp" not in text and "/work" not in text and str(Path.home()) not in text
    assert any(p.endswith("README.md") for p in a)
    sources = "\n".join(t for p, t in a.items() if p.endswith((".cc", ".ino")))
    assert "USER CODE: sensor input" in sources and "USER CODE: output handling" in sources
    assert "tinycompress self-test: PASS" in sources and "arena_used_bytes()" in sources
    out = write_firmware_project(tiny_model(), tmp_path / "fw", target, name="kws",
                                 golden_input=GOLDEN_IN, arena_size=2048)
    written = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert written == a
    assert [p.name for p in tmp_path.iterdir()] == ["fw"]  # no temporary folder left


def test_arduino_sketch_folder_matches_ino_name():
    files = render_project(tiny_model(), "arduino", name="kws", golden_input=GOLDEN_IN, arena_size=2048)
    assert "kws_selftest/kws_selftest.ino" in files and "kws_selftest/kws_data.c" in files
    assert "tflite-micro-arduino-examples" in files["README.md"]


def test_golden_arrays_match_host_tflm(converted):
    model = converted("cnn")
    x = quantize(np.random.default_rng(1).random((1, 12, 12, 1), dtype=np.float32), model)
    files = render_project(model, "cortex-m", golden_input=x[0], arena_size=8192)
    golden = files["src/model_golden.c"]
    assert _golden_values(golden, "g_model_golden_input0") == x.reshape(-1).tolist()
    expected = np.asarray(run_tflm(model, x)).reshape(-1).tolist()
    assert _golden_values(golden, "g_model_golden_output0") == expected
    # a wrong expected output is refused
    with pytest.raises(EmitError, match="host TFLM output"):
        render_project(model, "cortex-m", golden_input=x[0], golden_output=np.zeros(10, np.int8) + 99,
                       arena_size=8192)


def test_several_golden_samples_each_run_from_a_reset_interpreter(converted):
    model = converted("cnn")
    x = quantize(np.random.default_rng(3).random((3, 12, 12, 1), dtype=np.float32), model)
    files = render_project(model, "cortex-m", golden_input=x, arena_size=8192)
    assert "#define MODEL_GOLDEN_SAMPLES 3\n" in files["src/model_golden.h"]
    golden = files["src/model_golden.c"]
    assert _golden_values(golden, "g_model_golden_input0") == x.reshape(-1).tolist()
    assert _golden_values(golden, "g_model_golden_output0") == np.asarray(run_tflm(model, x)).reshape(-1).tolist()
    for target in TARGETS:  # every target's self-test resets before each sample and each user run
        sources = "\n".join(t for p, t in render_project(tiny_model(), target, golden_input=GOLDEN_IN,
                                                           arena_size=2048).items() if p.endswith((".cc", ".ino")))
        check = sources[sources.index("static bool tc_check_sample"):sources.index("static bool tc_self_test")]
        assert check.index("interpreter->Reset()") < check.index("memcpy(") < check.index("->Invoke()")
        assert "for (int s = 0; s < MODEL_GOLDEN_SAMPLES; ++s)" in sources
        run = sources[sources.index("static bool tc_run_once"):]
        assert run.index("interpreter->Reset()") < run.index("tc_fill_inputs(interpreter)")


@pytest.mark.slow
@pytest.mark.parametrize("compiler, flags", [("gcc", ["-O2"]), ("arm-none-eabi-gcc", ARM)])
def test_sources_without_tflm_compile(tmp_path, compiler, flags):
    cc = _need(compiler)
    out = write_firmware_project(tiny_model(), tmp_path / "fw", "arduino", name="kws",
                                 golden_input=GOLDEN_IN, arena_size=2048)
    src = out / "kws_selftest"
    for c in ("kws_data.c", "kws_golden.c"):
        _sh(cc, *WARN, *flags, "-std=c11", "-I", src, "-c", src / c, "-o", tmp_path / (c + ".o"))
    if compiler.startswith("arm"):
        cm = write_firmware_project(tiny_model(), tmp_path / "cm", "cortex-m", name="kws",
                                    golden_input=GOLDEN_IN, arena_size=2048)
        for c in ("startup.c", "semihost.c"):
            _sh(cc, *WARN, *flags, "-std=c11", "-I", cm / "src", "-c", cm / "src" / c, "-o", tmp_path / (c + ".o"))


_BOARDS = [
    "mps2-an386",
    {"name": "stm32f746", "cpu": "cortex-m7", "flash_origin": 0x08000000, "flash_size": 1 << 20,
     "ram_origin": 0x20000000, "ram_size": 320 * 1024, "stack_size": 8192},
]


@pytest.mark.slow
@pytest.mark.parametrize("board", _BOARDS, ids=["mps2-an386", "custom-m7"])
def test_startup_and_linker_script_link_to_the_board_memory_map(tmp_path, board):
    cc = _need("arm-none-eabi-gcc")
    b = resolve_board(board)
    out = write_firmware_project(tiny_model(), tmp_path / "fw", "cortex-m", golden_input=GOLDEN_IN,
                                 arena_size=2048, board=board)
    (tmp_path / "hello.c").write_text(
        '#include "semihost.h"\nint main(void);\nint main(void) { semihost_write("hello from startup\\n"); return 0; }\n'
    )
    arch = ["-mcpu=" + b.cpu, "-mthumb", "-mfloat-abi=hard", "-mfpu=auto", "-O2"]
    elf = tmp_path / "hello.elf"
    _sh(cc, *WARN, *arch, "-std=c11", "-I", out / "src", out / "src/startup.c", out / "src/semihost.c",
        tmp_path / "hello.c", "-T", out / "linker.ld", "-nostartfiles", "-Wl,--gc-sections",
        "--specs=nano.specs", "--specs=nosys.specs", "-o", elf)
    flash = range(b.flash_origin, b.flash_origin + b.flash_size)
    ram = range(b.ram_origin, b.ram_origin + b.ram_size)
    with open(elf, "rb") as f:
        e = ELFFile(f)
        vectors = e.get_section_by_name(".isr_vector")
        assert vectors["sh_addr"] == b.flash_origin
        initial_sp, reset = np.frombuffer(vectors.data()[:8], "<u4")
        assert initial_sp == b.ram_origin + b.ram_size and reset - 1 in flash
        for s in e.iter_sections():
            if s["sh_flags"] & 2 and s["sh_size"]:  # SHF_ALLOC
                region = ram if s.name in (".data", ".bss", ".heap") else flash
                assert s["sh_addr"] in region and s["sh_addr"] + s["sh_size"] - 1 in region, s.name
        for seg in e.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                assert seg["p_paddr"] in flash  # everything loaded lies in flash
    qemu = shutil.which("qemu-system-arm")
    if qemu and b.qemu_machine:
        run = _sh(qemu, "-M", b.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
                  "-semihosting", "-kernel", elf, timeout=60)
        assert "hello from startup" in run.stdout + run.stderr  # QEMU's semihosting console is stderr


@pytest.mark.parametrize(
    "kwargs, match",
    [({"target": "stm32cube"}, "expected target"),
     ({"board": "nucleo"}, "board preset"),
     ({"board": {"cpu": "cortex-m4", "flash_origin": 0, "flash_size": 1024}}, "misses fields"),
     ({"board": {"cpu": "cortex-m0", "flash_origin": 0, "flash_size": 1024, "ram_origin": 4096,
                 "ram_size": 1024}}, "cpu"),
     ({"board": {"cpu": "cortex-m4", "flash_origin": 0, "flash_size": 8192, "ram_origin": 4096,
                 "ram_size": 1024}}, "overlapping"),
     ({"golden_input": np.zeros(4, np.float32)}, "quantize"),
     ({"golden_input": np.zeros(5, np.int8)}, "5"),
     ({"arena_size": 0}, "arena_size")],
)
def test_bad_arguments_write_nothing(tmp_path, kwargs, match):
    args = {"target": "cortex-m", "golden_input": GOLDEN_IN, "arena_size": 2048, **kwargs}
    target = args.pop("target")
    with pytest.raises(EmitError, match=match):
        write_firmware_project(tiny_model(), tmp_path / "fw", target, **args)
    assert list(tmp_path.iterdir()) == []


def test_output_inside_a_package_is_refused():
    inside = Path(firmware_templates.__file__).parent / "fw"
    with pytest.raises(EmitError, match="outside the installed packages"):
        write_firmware_project(tiny_model(), inside, "cmake", golden_input=GOLDEN_IN, arena_size=2048)
    assert not inside.exists()


def test_existing_folder_needs_overwrite(tmp_path):
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "old.txt").write_text("x")
    with pytest.raises(EmitError, match="overwrite=True"):
        write_firmware_project(tiny_model(), tmp_path / "fw", "zephyr", golden_input=GOLDEN_IN, arena_size=2048)
    out = write_firmware_project(tiny_model(), tmp_path / "fw", "zephyr", golden_input=GOLDEN_IN,
                                 arena_size=2048, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "prj.conf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]


def test_compressed_model_sets_flag_or_is_refused(tmp_path):
    cm = render_project(tiny_model(), "cortex-m", golden_input=GOLDEN_IN, arena_size=2048, compressed=True)
    # TFLM's own flags (CMSIS_NN, ...) are kept: ADDITIONAL_DEFINES replaces them in TFLM's make
    tflm_defines = "-DCMSIS_NN -DKERNELS_OPTIMIZED_FOR_SPEED -DUSE_TFLM_COMPRESSION"
    assert f"TFLM_DEFINES := {tflm_defines}\n" in cm["Makefile"]
    assert 'ADDITIONAL_DEFINES="$(TFLM_DEFINES)"' in cm["Makefile"]
    assert "DEFINES := -DTF_LITE_STATIC_MEMORY $(TFLM_DEFINES)\n" in cm["Makefile"]
    cmake = render_project(tiny_model(), "cmake", golden_input=GOLDEN_IN, arena_size=2048, compressed=True)
    tflm_cmake = cmake["cmake/tflm.cmake"]
    assert f'"ADDITIONAL_DEFINES={tflm_defines}"' in tflm_cmake and "USE_TFLM_COMPRESSION=1" in tflm_cmake
    assert "list(APPEND TFLM_DEFINES USE_TFLM_COMPRESSION)" in tflm_cmake
    plain = render_project(tiny_model(), "cortex-m", golden_input=GOLDEN_IN, arena_size=2048)
    assert "USE_TFLM_COMPRESSION" not in plain["Makefile"]
    for target in ("arduino", "zephyr", "esp-idf"):
        with pytest.raises(EmitError, match="lacks.*compression"):
            write_firmware_project(tiny_model(), tmp_path / target, target, golden_input=GOLDEN_IN,
                                   arena_size=2048, compressed=True)
    assert list(tmp_path.iterdir()) == []


# --- real builds against a TFLM source tree ---------------------------------------------

# TFLM_DIR: a tensorflow/tflite-micro checkout with its third-party downloads in place.
# TFLM_GEN_CACHE (optional): a folder where TFLM's objects and library are kept between runs,
# one subfolder per build flavour; without it every run builds TFLM from scratch in tmp_path.
TFLM_DIR = os.environ.get("TFLM_DIR")
TFLM_GEN_CACHE = os.environ.get("TFLM_GEN_CACHE")
needs_tflm = pytest.mark.skipif(
    not TFLM_DIR, reason="TFLM_DIR is unset: set it to a tensorflow/tflite-micro checkout (with its "
    "third-party downloads) to build and run the cmake and cortex-m projects"
)


def _gen_dir(tmp_path: Path, flavour: str) -> Path:
    """Where TFLM's build of `flavour` goes: under TFLM_GEN_CACHE when set, else in tmp_path."""
    return Path(TFLM_GEN_CACHE or tmp_path / "tflm-gen") / flavour


def _cnn_project(converted, tmp_path, target):
    model = converted("cnn")
    x = quantize(np.random.default_rng(2).random((1, 12, 12, 1), dtype=np.float32), model)
    from tflite_export.arena import measure_arena

    arena = measure_arena(model).emitted_bytes
    return write_firmware_project(model, tmp_path / target, target, name="cnn", golden_input=x[0],
                                  arena_size=arena)


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
@pytest.mark.parametrize("target, compiler, flags", [
    ("cmake", "g++", []),
    ("cortex-m", "arm-none-eabi-g++", ARM + ["-fno-threadsafe-statics"]),
])
def test_main_compiles_against_tflm_headers(tmp_path, target, compiler, flags):
    cxx = _need(compiler)
    out = write_firmware_project(tiny_model(), tmp_path / target, target, golden_input=GOLDEN_IN, arena_size=2048)
    dl = Path(TFLM_DIR) / "tensorflow/lite/micro/tools/make/downloads"
    system = [f"-isystem{d}" for d in (TFLM_DIR, dl / "flatbuffers/include", dl / "gemmlowp", dl / "ruy")]
    _sh(cxx, *WARN, *flags, "-std=c++17", "-fno-rtti", "-fno-exceptions", "-DTF_LITE_STATIC_MEMORY",
        *system, "-I", out / "src", "-c", out / "src/main.cc", "-o", tmp_path / "main.o")


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
def test_cmake_host_project_passes(tmp_path, converted):
    out = _cnn_project(converted, tmp_path, "cmake")
    _sh("cmake", "-S", out, "-B", out / "build", f"-DTFLM_DIR={TFLM_DIR}", "-DTFLM_JOBS=2",
        f"-DTFLM_GEN_DIR={_gen_dir(tmp_path, 'host')}")
    _sh("cmake", "--build", out / "build", "-j2", timeout=1800)
    run = _sh(out / "build" / "cnn_selftest", timeout=60)
    log = run.stdout + run.stderr
    assert "tinycompress self-test: PASS" in log, log


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
def test_cortex_m_project_passes_under_qemu(tmp_path, converted):
    _need("qemu-system-arm")
    out = _cnn_project(converted, tmp_path, "cortex-m")
    make = ["make", "-C", out, f"TFLM_DIR={TFLM_DIR}", f"TFLM_GEN={_gen_dir(tmp_path, 'cortex-m4+fp')}/"]
    build = _sh(*make, "-j2", timeout=1800)
    assert re.search(r"text\s+data\s+bss", build.stdout)
    run = _sh(*make, "-s", "run", timeout=120)
    log = run.stdout + run.stderr
    assert "tinycompress self-test: PASS" in log, log


@pytest.fixture(scope="module")
def lut_model():
    """(compressed model bytes, golden int8 input): a 3-bit clustered CNN whose dense kernel is
    LUT-compressed (TFLM DECODE op)."""
    import keras

    import tinycompress
    from tflite_export.lut import compress_luts
    from tinycompress.clustering import cluster_weights, strip_clustering

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(24, activation="relu", name="fc"),
        keras.layers.Dense(4),
    ])
    x = np.random.default_rng(1).normal(size=(100, 8, 8, 1)).astype("float32")
    plain = tinycompress.convert(strip_clustering(cluster_weights(model, bits=3)), x)
    packed = compress_luts(plain, measure_each=False)
    assert packed.tensors and packed.verified_samples > 0
    return packed.model_bytes, quantize(x[:1], packed.model_bytes)[0]


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
def test_lut_compressed_cortex_m_project_passes_under_qemu(tmp_path, lut_model):
    _need("qemu-system-arm")
    from tflite_export.arena import measure_arena

    model, x = lut_model
    out = write_firmware_project(model, tmp_path / "lut", "cortex-m", name="lut", golden_input=x,
                                 arena_size=measure_arena(model).emitted_bytes)
    assert "AddDecode" in (out / "src/lut_ops.h").read_text()
    assert "-DUSE_TFLM_COMPRESSION\n" in (out / "Makefile").read_text()  # found in the model
    make = ["make", "-C", out, f"TFLM_DIR={TFLM_DIR}",
            f"TFLM_GEN={_gen_dir(tmp_path, 'cortex-m4+fp-compression')}/"]
    _sh(*make, "-j2", timeout=1800)
    run = _sh(*make, "-s", "run", timeout=120)
    log = run.stdout + run.stderr
    assert "tinycompress self-test: PASS" in log, log


def _build_and_run(out: Path, target: str, flavour: str, tmp_path: Path) -> str:
    """Build a cortex-m (QEMU) or cmake (host) project against TFLM_DIR; the self-test's log."""
    if target == "cortex-m":
        _need("qemu-system-arm")
        make = ["make", "-C", out, f"TFLM_DIR={TFLM_DIR}", f"TFLM_GEN={_gen_dir(tmp_path, 'cortex-m4+fp' + flavour)}/"]
        _sh(*make, "-j2", timeout=3600)
        run = subprocess.run([str(c) for c in (*make, "-s", "run")], capture_output=True, text=True, timeout=300)
    else:
        _sh("cmake", "-S", out, "-B", out / "build", f"-DTFLM_DIR={TFLM_DIR}", "-DTFLM_JOBS=2",
            f"-DTFLM_GEN_DIR={_gen_dir(tmp_path, 'host' + flavour)}")
        _sh("cmake", "--build", out / "build", "-j2", timeout=3600)
        run = subprocess.run([str(next((out / "build").glob("*_selftest")))], capture_output=True, text=True,
                             timeout=300)
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def encoded_models(sparse_and_clustered_keras):
    """encoding -> (DECODE-encoded model bytes, two golden int8 samples): a conv net with a
    95%-sparse Dense kernel and a 4-value Dense kernel whose every tensor the decoder can write
    (per-channel conv kernel, Dense kernels, and for prune the int32 biases) is encoded."""
    import tinycompress
    from tflite_export.encode import encode

    model, x = sparse_and_clustered_keras(128)
    plain = tinycompress.convert(model, x)
    models = {}
    for encoding in ("prune", "huffman"):  # every tensor the decoder can write, paying or not
        result = encode(plain, encodings=encoding, tensors=lambda c: True, verify_data=x[:8],
                        measure_each=False)
        assert {t.encoding for t in result.tensors} == {encoding} and result.flash_after < result.flash_before
        assert all(any(f"/{layer}_" in t.name for t in result.tensors) for layer in ("conv", "sparse", "clustered"))
        assert encoding == "huffman" or any(t.dtype == "INT32" for t in result.tensors)
        models[encoding] = result.model_bytes, quantize(x[:2], result.model_bytes)
    return models


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
@pytest.mark.parametrize("encoding", ["prune", "huffman"])
@pytest.mark.parametrize("target", ["cortex-m", "cmake"])
def test_encoded_model_passes_with_tflm_compression(tmp_path, encoded_models, target, encoding):
    """Issue 14: TFLM's DECODE prune and Huffman decoders, built with USE_TFLM_COMPRESSION on
    Cortex-M4 (QEMU) and on the host, give the host interpreter's outputs for our encodings."""
    from tflite_export.arena import measure_arena

    model, x = encoded_models[encoding]
    out = write_firmware_project(model, tmp_path / target, target, name=encoding, golden_input=x,
                                 arena_size=measure_arena(model).emitted_bytes)
    assert "AddDecode" in (out / f"src/{encoding}_ops.h").read_text()
    log = _build_and_run(out, target, "-compression", tmp_path)
    assert "tinycompress self-test: PASS (2 golden samples)" in log, log


@pytest.fixture(scope="module")
def lstm_model():
    """(int8 model with one UNIDIRECTIONAL_SEQUENCE_LSTM, two golden int8 sequences)."""
    import keras

    import tinycompress

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 3)), keras.layers.LSTM(12, name="lstm"), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(128, 6, 3)).astype("float32")
    tflite = tinycompress.convert(model, x)
    assert ("UNIDIRECTIONAL_SEQUENCE_LSTM", None, "AddUnidirectionalSequenceLSTM") in used_operators(tflite)
    return tflite, quantize(x[:2] * np.float32(2.0), tflite)  # strong inputs: a large state to leak


@pytest.mark.slow
@pytest.mark.tflm_source
@needs_tflm
@pytest.mark.parametrize("target", ["cortex-m", "cmake"])
def test_lstm_project_passes_on_two_sequences(tmp_path, lstm_model, target):
    """Issue 16: a Keras 3 LSTM exported as one int8 UNIDIRECTIONAL_SEQUENCE_LSTM passes the
    self-test on two golden sequences, on Cortex-M4 under QEMU (CMSIS-NN's LSTM kernel) and on
    the host (TFLM's reference kernel).

    On the host the reference kernel keeps the LSTM state in variable tensors across Invoke:
    without the Reset between the sequences the first one's state leaks into the second and the
    self-test fails. CMSIS-NN's kernel (this TFLM commit) ignores those tensors and starts each
    Invoke from a zero state, so there the Reset changes nothing (and streaming one step per
    Invoke does not work). The cmake project is built with compression on only to share that
    TFLM library with the encoded-model tests; the flag changes nothing for a model without DECODE.
    """
    from tflite_export.arena import measure_arena

    tflite, golden = lstm_model
    out = write_firmware_project(tflite, tmp_path / target, target, name="lstm", golden_input=golden,
                                 arena_size=measure_arena(tflite).emitted_bytes, compressed=target == "cmake")
    assert "AddUnidirectionalSequenceLSTM" in (out / "src/lstm_ops.h").read_text()
    flavour = "-compression" if target == "cmake" else ""
    log = _build_and_run(out, target, flavour, tmp_path)
    assert "tinycompress self-test: PASS (2 golden samples)" in log, log
    if target == "cmake":
        main = out / "src/main.cc"
        text = main.read_text()
        reset = "if (interpreter->Reset() != kTfLiteOk) {\n    MicroPrintf(\"tinycompress self-test: FAIL (Reset failed)\");"
        assert text.count(reset) == 1
        main.write_text(text.replace(reset, "if (false) {\n    MicroPrintf(\"no reset\");"))
        log = _build_and_run(out, target, flavour, tmp_path)
        assert "first mismatch: sample 1" in log and "tinycompress self-test: FAIL" in log, log
