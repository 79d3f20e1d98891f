"""Firmware projects with an on-device self-test, rendered from `firmware_templates`.

`write_firmware_project` writes a complete project for one target:

* ``cmake``: host build and a Cortex-M build (toolchain file), TFLM from a local
  checkout or ``FetchContent``;
* ``cortex-m``: bare-metal Makefile project (startup code, linker script for a
  configurable memory map, semihosting output), runnable under
  ``qemu-system-arm -M mps2-an386``;
* ``arduino``: a sketch folder for the TFLM Arduino library;
* ``zephyr``: an application for Zephyr's TFLM module;
* ``esp-idf``: a project depending on ``espressif/esp-tflite-micro``.

Each ``main`` runs the model on one or more golden samples, resetting the
interpreter before each (``MicroInterpreter::Reset()``: variable tensors such as
an LSTM's state start from zero, as on the host), compares every output value
with the output the host TFLM interpreter produced, and prints PASS/FAIL, the
arena used and the inference time; two marked USER CODE functions take the
user's sensor input and output handling. The files are deterministic and hold no
path of the machine that generated them.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

import firmware_templates
from tflite_export import _flatbuffer as fb
from tflite_export._c_text import _comment, _float_literal, c_identifier
from tflite_export.atomic import check_output_dir, write_tree
from tflite_export.boards import BOARDS, Board, resolve_board
from tflite_export.emit_c import BYTES_PER_LINE, render_c_sources, used_operators
from tflite_export.errors import EmitError
from tflite_export.io_details import input_details, output_details
from tflite_export.tflm_ops import CUSTOM_RESOLVER_METHODS

__all__ = ["TARGETS", "BOARDS", "TFLM_COMMIT", "Board", "resolve_board", "render_project",
           "write_firmware_project"]

TARGETS = firmware_templates.TARGETS

#: tflite-micro commit the ``cmake`` target fetches when no ``TFLM_DIR`` is given
#: (the one the projects were tested against).
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"

#: Custom operators each target's TFLM package is known to lack (LUT compression's
#: DECODE and the signal library are recent TFLM additions).
_TARGET_LACKS = {
    "arduino": {"TFLM_DECODE"} | {k for k in CUSTOM_RESOLVER_METHODS if k.startswith("Signal")},
    "zephyr": {"TFLM_DECODE"},
    "esp-idf": {"TFLM_DECODE"},
}
_COMPRESSION_TARGETS = ("cmake", "cortex-m")

# target -> (folder of the model sources, array-source language, {template: output path})
_LAYOUT: dict[str, tuple[str, str, dict[str, str]]] = {
    "cmake": ("src", "c++", {
        "cmake/CMakeLists.txt.j2": "CMakeLists.txt",
        "cmake/README.md.j2": "README.md",
        "cmake/cmake/tflm.cmake.j2": "cmake/tflm.cmake",
        "cmake/cmake/arm-none-eabi.cmake.j2": "cmake/arm-none-eabi.cmake",
        "cmake/src/main.cc.j2": "src/main.cc",
        "cortex-m/linker.ld.j2": "linker.ld",
        "cortex-m/startup.c.j2": "src/startup.c",
        "cortex-m/semihost.c.j2": "src/semihost.c",
        "cortex-m/semihost.h.j2": "src/semihost.h",
    }),
    "cortex-m": ("src", "c++", {
        "cortex-m/Makefile.j2": "Makefile",
        "cortex-m/README.md.j2": "README.md",
        "cortex-m/linker.ld.j2": "linker.ld",
        "cortex-m/main.cc.j2": "src/main.cc",
        "cortex-m/startup.c.j2": "src/startup.c",
        "cortex-m/semihost.c.j2": "src/semihost.c",
        "cortex-m/semihost.h.j2": "src/semihost.h",
    }),
    "arduino": ("{ident}_selftest", "c", {
        "arduino/README.md.j2": "README.md",
        "arduino/sketch/sketch.ino.j2": "{ident}_selftest/{ident}_selftest.ino",
    }),
    "zephyr": ("src", "c++", {
        "zephyr/CMakeLists.txt.j2": "CMakeLists.txt",
        "zephyr/prj.conf.j2": "prj.conf",
        "zephyr/README.md.j2": "README.md",
        "zephyr/src/main.cc.j2": "src/main.cc",
    }),
    "esp-idf": ("main", "c++", {
        "esp-idf/CMakeLists.txt.j2": "CMakeLists.txt",
        "esp-idf/sdkconfig.defaults.j2": "sdkconfig.defaults",
        "esp-idf/README.md.j2": "README.md",
        "esp-idf/main/CMakeLists.txt.j2": "main/CMakeLists.txt",
        "esp-idf/main/idf_component.yml.j2": "main/idf_component.yml",
        "esp-idf/main/main.cc.j2": "main/main.cc",
    }),
}


def _rows(values: np.ndarray, dtype: str) -> list[str]:
    flat = values.reshape(-1)
    if dtype == "float32":
        items = [_float_literal(float(v)) for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    return [", ".join(items[i : i + BYTES_PER_LINE]) + "," for i in range(0, len(items), BYTES_PER_LINE)]


def _sample_rows(samples: np.ndarray, dtype: str) -> list[str]:
    """C initializer rows of several samples, each sample starting on a new row."""
    return [row for sample in samples for row in _rows(sample, dtype)]


def _as_list(x) -> list[np.ndarray]:
    return [np.asarray(a) for a in x] if isinstance(x, (list, tuple)) else [np.asarray(x)]


def _golden(view: fb.ModelView, golden_input, golden_output) -> tuple[list, list]:
    """Golden samples and their host TFLM outputs, each an array of shape (samples, values)."""
    from tflite_export.runtime import run_tflm

    ins = input_details(view)
    xs = _as_list(golden_input)
    if len(xs) != len(ins):
        raise EmitError(f"expected {len(ins)} golden input array(s), one per model input. Received {len(xs)}.")
    counts = []
    for i, (x, t) in enumerate(zip(xs, ins)):
        values = int(np.prod(t.shape))
        if x.dtype != np.dtype(t.dtype) or x.size == 0 or x.size % values:
            raise EmitError(
                f"expected golden input {i} as {t.dtype} with {values} values (shape {t.shape}) per "
                f"sample. Received {x.dtype} with {x.size}. Quantize float samples with "
                "tflite_export.quantize(x, model)."
            )
        counts.append(x.size // values)
    if len(set(counts)) != 1:
        raise EmitError(f"expected the same number of golden samples for every input. Received {counts}.")
    xs = [x.reshape((counts[0], *t.shape[1:]) if t.shape else (counts[0],)) for x, t in zip(xs, ins)]
    host = [np.asarray(h) for h in _as_list(run_tflm(view.data, xs))]  # each sample from a reset state
    if golden_output is not None:
        given = _as_list(golden_output)
        if len(given) != len(host) or any(
            g.size != h.size or not np.array_equal(g.reshape(-1), h.reshape(-1)) for g, h in zip(given, host)
        ):
            raise EmitError(
                "expected golden_output equal to the host TFLM output for golden_input. Received "
                "different values. Pass golden_output=None to have it computed."
            )
    return [x.reshape(counts[0], -1) for x in xs], [h.reshape(counts[0], -1) for h in host]


def _model_is_compressed(view: fb.ModelView) -> bool:
    return "COMPRESSION_METADATA" in view.metadata_names or any(
        op.custom_code == "TFLM_DECODE" for op in view.operators
    )


def _check_out_dir(out_dir: Path) -> Path:
    out = Path(os.path.abspath(out_dir))
    guarded = [Path(firmware_templates.__file__).parent, Path(__file__).parent]
    spec = importlib.util.find_spec("tinycompress")
    if spec is not None and spec.origin:
        guarded.append(Path(spec.origin).parent)
    for pkg in guarded:
        pkg = Path(os.path.abspath(pkg))
        if out == pkg or pkg in out.parents:
            raise EmitError(
                f"expected an output directory outside the installed packages. Received {out_dir}, "
                f"inside {pkg.name}/. Write the project elsewhere, e.g. ./firmware."
            )
    return out


def render_project(
    model_bytes: "bytes | fb.ModelView",
    target: str,
    *,
    name: str = "model",
    golden_input,
    golden_output=None,
    arena_size: int,
    board: str | dict | Board = "mps2-an386",
    compressed: bool = False,
) -> dict[str, str]:
    """Render every file of a firmware project, in memory; see `write_firmware_project`.

    Returns:
        Relative path (``/`` separators) -> file text, sorted by path.
    """
    if target not in TARGETS:
        raise EmitError(f"expected target in {TARGETS}. Received target={target!r}.")
    view = fb.checked_view(model_bytes)
    ident = c_identifier(name)
    the_board = resolve_board(board)
    compressed = bool(compressed) or _model_is_compressed(view)
    lacking = sorted(
        {c for _, c, _ in used_operators(view) if c is not None} & _TARGET_LACKS.get(target, set())
    )
    if lacking or (compressed and target not in _COMPRESSION_TARGETS):
        raise EmitError(
            f"the {target} TFLM package lacks what this model needs "
            f"({', '.join(lacking) or 'LUT compression (USE_TFLM_COMPRESSION)'}). Use target "
            f"{' or '.join(_COMPRESSION_TARGETS)} with a recent TFLM checkout, or export without "
            "LUT compression."
        )
    src_dir, language, layout = _LAYOUT[target]
    src_dir = src_dir.format(ident=ident)
    xs, ys = _golden(view, golden_input, golden_output)
    ins, outs = input_details(view), output_details(view)
    files = {
        f"{src_dir}/{file}": text
        for file, text in render_c_sources(view, name=name, arena_size=arena_size,
                                           language=language).items()
    }
    context = {
        "name_comment": _comment(name),
        "ident": ident,
        "MACRO": ident.upper(),
        "golden_samples": len(xs[0]),
        "inputs": [{"dtype": t.dtype, "golden_rows": _sample_rows(x, t.dtype)} for t, x in zip(ins, xs)],
        "outputs": [{"dtype": t.dtype, "golden_rows": _sample_rows(y, t.dtype)} for t, y in zip(outs, ys)],
        "arena_size": int(arena_size),
        "model_size": len(view.data),
        "compressed": compressed,
        "board": the_board,
        "tflm_commit": TFLM_COMMIT,
    }
    env = firmware_templates.environment()
    templates = {
        "common/golden.h.j2": f"{src_dir}/{ident}_golden.h",
        "common/golden.c.j2": f"{src_dir}/{ident}_golden.c",
        **{k: v.format(ident=ident) for k, v in layout.items()},
    }
    for template, path in templates.items():
        files[path] = env.get_template(template).render(context)
    return dict(sorted(files.items()))


def write_firmware_project(
    model_bytes: bytes,
    out_dir: str | os.PathLike,
    target: str,
    *,
    name: str = "model",
    golden_input,
    golden_output=None,
    arena_size: int,
    board: str | dict | Board = "mps2-an386",
    compressed: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write a firmware project whose ``main`` proves on the device that the model runs as on the host.

    Everything is rendered and checked before anything is written; the project
    appears at ``out_dir`` at once (`tflite_export.atomic.write_tree`).

    Args:
        model_bytes: `.tflite` flatbuffer bytes (full-integer, TFLM ops only).
        out_dir: project folder to create (must not exist unless ``overwrite``, and
            must lie outside the installed packages).
        target: one of `TARGETS`.
        name: model name, used for file and symbol names (see
            `tflite_export.emit_c.c_identifier`). Default ``"model"``.
        golden_input: the samples of each model input, in the input dtype (e.g.
            int8 from `tflite_export.quantize`): one sample, with or without the
            batch axis, or several stacked on the first axis (each is run from
            a reset interpreter, so two sequences check that an LSTM's state
            does not carry over); an array, or a list of arrays for several
            inputs (the same number of samples each).
        golden_output: the expected outputs; default None computes them on the
            host TFLM interpreter. When given they must equal that run.
        arena_size: tensor arena bytes (``measure_arena(model).emitted_bytes``).
        board: memory map for ``cortex-m`` / ``cmake``: a `BOARDS` preset name, a
            dict of `Board` fields, or a `Board`. Default ``"mps2-an386"`` (Cortex-M4).
        compressed: build TFLM with ``USE_TFLM_COMPRESSION``. Default False; set
            anyway when the model holds LUT-compressed tensors.
        overwrite: replace an existing ``out_dir``. Default False.

    Returns:
        The project folder.

    Raises:
        EmitError: unknown target, bad board, bad golden arrays, output folder
            inside a package or already present, or a model the target's TFLM
            cannot run (custom ops, compression).
        UnsupportedModelError: an operator without a TFLM kernel.
        ModelFormatError: the bytes are not a valid model.

    Example:
        >>> import tempfile, numpy as np
        >>> from tflite_export.testing import tiny_model
        >>> with tempfile.TemporaryDirectory() as d:
        ...     p = write_firmware_project(tiny_model(), f"{d}/fw", "cortex-m",
        ...                                golden_input=np.zeros(4, np.int8), arena_size=2048)
        ...     sorted(f.name for f in p.iterdir())
        ['Makefile', 'README.md', 'linker.ld', 'src']
    """
    out = check_output_dir(_check_out_dir(Path(out_dir)), overwrite=overwrite)
    files = render_project(
        model_bytes, target, name=name, golden_input=golden_input, golden_output=golden_output,
        arena_size=arena_size, board=board, compressed=compressed,
    )
    return write_tree(out, files, overwrite=overwrite)
