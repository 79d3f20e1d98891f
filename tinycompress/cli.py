"""The ``tinycompress`` command: export, inspect and demo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from tflite_export.errors import TinyCompressError

__all__ = ["main"]

_console = Console()
_err = Console(stderr=True)


def _progress():
    """A rich status spinner whose message follows the export's steps."""
    status = _console.status("starting")

    def update(msg: str) -> None:
        status.update(f"[bold]{msg}[/]")

    return status, update


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tinycompress")
def cli() -> None:
    """Compress Keras models and ship them to microcontrollers (TFLM)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@cli.command("export")
@click.argument("model", type=click.Path(exists=True))
@click.option("--calibration", "-c", required=True, type=click.Path(exists=True, dir_okay=False),
              help=".npz (single array or key 'x') or .npy of float input samples.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Directory to create (written atomically).")
@click.option("--name", default="model", show_default=True, help="Model name for C identifiers.")
@click.option("--io", "io_dtype", type=click.Choice(["int8", "uint8", "int16", "float32"]),
              default=None, help="Input/output dtype [default: int8; int16 for int16x8].")
@click.option("--mode", type=click.Choice(["int8", "int16x8"]), default="int8", show_default=True)
@click.option("--per-channel-dense/--per-tensor-dense", default=False, show_default=True,
              help="Dense weights per output channel (costs flash and arena on TFLM).")
@click.option("--slim/--no-slim", default=True, show_default=True,
              help="Remove bytes TFLM never reads (verified bit-exact).")
@click.option("--verify-samples", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--verify-max-lsb", default=1, show_default=True, type=click.IntRange(min=0),
              help="TFLM/LiteRT difference tolerated per requantizing op, given the "
                   "same inputs, in LSBs.")
@click.option("--layer-errors", is_flag=True, help="List the layers with the worst int8 error.")
@click.option("--lut", is_flag=True,
              help="LUT-compress clustered tensors (TFLM DECODE): less flash, more arena.")
@click.option("--lut-min-bytes", type=click.IntRange(min=1), default=None,
              help="With --lut: only compress tensors of at least this many bytes.")
@click.option("--language", type=click.Choice(["c++", "c"]), default="c++", show_default=True)
@click.option("--target", type=click.Choice(["cmake", "cortex-m", "arduino", "zephyr", "esp-idf"]),
              default=None, help="Also write a firmware project for this target.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
@click.option("--allow-unsafe", is_flag=True,
              help="Load models with Lambda/foreign layers (runs saved code: trusted files only).")
def export_cmd(model, calibration, out, name, io_dtype, mode, per_channel_dense, slim,
               verify_samples, verify_max_lsb, layer_errors, lut, lut_min_bytes, language, target, overwrite,
               allow_unsafe) -> None:
    """Export MODEL (.keras, .h5 or SavedModel dir) as a verified int8 TFLM model."""
    from tinycompress.data import load_calibration
    from tinycompress.export import export

    lut_arg = False
    if lut:
        lut_arg = True if lut_min_bytes is None else (lambda c: c.nbytes >= lut_min_bytes)
    status, update = _progress()
    with status:
        result = export(
            model, load_calibration(calibration), out, name=name, io_dtype=io_dtype, mode=mode,
            per_channel_dense=per_channel_dense, slim=slim, verify_samples=verify_samples,
            verify_max_lsb=verify_max_lsb,
            layer_errors=layer_errors, lut=lut_arg, language=language, target=target, overwrite=overwrite,
            allow_unsafe=allow_unsafe, progress=update,
        )
    _print_export(result)


def _print_export(result) -> None:
    from tflite_export.report import render_table

    _console.print(render_table(result.report))
    v, a = result.verification, result.arena
    _console.print(
        f"kTensorArenaSize = [bold]{a.emitted_bytes}[/] B (host TFLM measured {a.host_bytes} B; "
        "64-bit host bookkeeping, safe for 32-bit MCUs)"
    )
    _console.print(v.summary(), markup=False)
    _console.print(f"Wrote {len(result.files)} files to [bold]{result.out_dir}[/]")


@cli.command("inspect")
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write it as Markdown.")
@click.option("--arena/--no-arena", default=True, show_default=True,
              help="Measure the arena on the TFLM interpreter.")
def inspect_cmd(tflite, json_path, md_path, arena) -> None:
    """Report flash, arena, MACs and ops of a .tflite model."""
    import tflite_export
    from tflite_export.report import render_table

    report = tflite_export.inspect(Path(tflite).read_bytes(), measure=arena)
    _console.print(render_table(report))
    if json_path:
        Path(json_path).write_text(report.to_json())
    if md_path:
        Path(md_path).write_text(report.to_markdown())


@cli.command("demo")
@click.option("--out", "-o", default="tinycompress-demo", show_default=True,
              type=click.Path(file_okay=False), help="Directory to create.")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--target", type=click.Choice(["cmake", "cortex-m", "arduino", "zephyr", "esp-idf"]),
              default="cortex-m", show_default=True, help="Firmware project to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
def demo_cmd(out, epochs, target, overwrite) -> None:
    """Train a small CNN on scikit-learn's digits, export it and verify it on TFLM."""
    from tinycompress.demo import run_demo

    status, update = _progress()
    with status:
        summary = run_demo(out, epochs=epochs, target=target, overwrite=overwrite, progress=update)
    _print_export(summary.export)
    _console.print(
        f"Accuracy on {summary.test_samples} held-out digits: float {summary.float_acc:.2%}, "
        f"TFLM int8 {summary.int8_acc:.2%}; flash {len(summary.export.model)} B "
        f"(float {summary.float_bytes} B), arena {summary.export.arena.emitted_bytes} B"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        cli.main(args=argv, prog_name="tinycompress", standalone_mode=False)
    except click.exceptions.Abort:
        _err.print("aborted")
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except TinyCompressError as e:
        _err.print(f"[bold red]error:[/] {type(e).__name__}: {escape(str(e))}", highlight=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
