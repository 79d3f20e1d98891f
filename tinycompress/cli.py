"""The ``tinycompress`` command: export, inspect, demo and auto.

``--help``, ``--version`` and ``inspect`` import no TensorFlow. TensorFlow's
own logging is quiet unless ``--verbose``; notices of the library (``logging``)
and the progress of long steps are shown on stderr, results on stdout (see
`tinycompress._terminal`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tinycompress import __version__
from tinycompress._terminal import (
    ProgressDisplay,
    SearchProgressBar,
    console_logging,
    native_stderr_captured,
    quiet_tensorflow,
)

__all__ = ["DISTRIBUTION", "main"]

#: Name of the Python distribution (``pip install``); the import name and the
#: command are ``tinycompress`` (that distribution name belongs to another project).
DISTRIBUTION = "tinycompress-tflm"

#: Per-layer error rows printed on the console (report.md lists them all).
LAYER_ERROR_ROWS = 10

#: Device presets listed in ``--device``'s help (`tflite_export.DEVICES`; a test pins the two
#: equal, so ``--help`` needs no numpy import).
DEVICE_PRESETS = ("alif-e7-hp", "ek-ra6m4", "ek-ra8d1", "nrf52840", "rp2040", "stm32h7a3", "stm32l4r5")
_DEVICE_HELP = ("Also estimate cycles, ms and µJ per layer on this microcontroller: "
                + ", ".join(DEVICE_PRESETS) + " (estimates, with their error and source).")

_console = Console()
_err = Console(stderr=True)


@contextlib.contextmanager
def _native_work(verbose: bool):
    """Run TensorFlow/TFLM work; unless verbose, native log output is kept off the
    terminal and its last lines are shown only if the work fails unexpectedly."""
    if verbose:
        yield
        return
    unexpected = None
    with native_stderr_captured() as native:
        try:
            yield
        except Exception as e:  # noqa: BLE001 - re-raised below, after the log is read
            if _ours(e) or isinstance(e, click.ClickException):
                raise
            unexpected = e
    if unexpected is not None:
        if native.text.strip():
            _err.print(f"native log (last lines; --verbose shows all):\n{escape(native.tail())}",
                       highlight=False, soft_wrap=True)
        raise unexpected


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, package_name=DISTRIBUTION, prog_name="tinycompress",
    message="%(prog)s %(version)s (Python distribution %(package)s)",
)
@click.option("--verbose", "-v", is_flag=True,
              help="Show debug notices and TensorFlow's own log output.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Compress Keras models and ship them to microcontrollers (TFLM)."""
    quiet_tensorflow(verbose)
    ctx.with_resource(console_logging(verbose))
    ctx.obj = {"verbose": verbose}


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
@click.option("--encode", "encode", default=None, metavar="auto|lut,prune,huffman",
              help="Encode weights for TFLM's DECODE (Deep Compression: sparse bitmask, Huffman, "
                   "LUT), the smallest per tensor; 'auto' allows all. Less flash, more arena.")
@click.option("--encode-arena-budget", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="With --encode: largest kTensorArenaSize the encodings may bring the model to.")
@click.option("--encode-min-bytes", type=click.IntRange(min=1), default=None, metavar="BYTES",
              help="With --encode: only encode tensors of at least this many bytes [default: 256].")
@click.option("--language", type=click.Choice(["c++", "c"]), default="c++", show_default=True)
@click.option("--target", type=click.Choice(["cmake", "cortex-m", "arduino", "zephyr", "esp-idf"]),
              default=None, help="Also write a firmware project for this target.")
@click.option("--device", default=None, metavar="NAME", help=_DEVICE_HELP)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
@click.option("--allow-unsafe", is_flag=True,
              help="Load models with Lambda/foreign layers (runs saved code: trusted files only).")
def export_cmd(model, calibration, out, name, io_dtype, mode, per_channel_dense, slim,
               verify_samples, verify_max_lsb, layer_errors, lut, lut_min_bytes, encode,
               encode_arena_budget, encode_min_bytes, language, target, device, overwrite,
               allow_unsafe) -> None:
    """Export MODEL (.keras, .h5 or SavedModel dir) as a verified int8 TFLM model."""
    if lut_min_bytes is not None and not lut:
        raise click.UsageError("--lut-min-bytes only applies with --lut; add --lut or drop it.")
    encodings = _encodings(encode, lut, encode_arena_budget, encode_min_bytes)
    from tinycompress.data import load_calibration
    from tinycompress.export import export

    lut_arg = False
    if lut:
        lut_arg = True if lut_min_bytes is None else (lambda c: c.nbytes >= lut_min_bytes)
    with _native_work(_verbose()), ProgressDisplay(_err) as progress:
        result = export(
            model, load_calibration(calibration), out, name=name, io_dtype=io_dtype, mode=mode,
            per_channel_dense=per_channel_dense, slim=slim, verify_samples=verify_samples,
            verify_max_lsb=verify_max_lsb,
            layer_errors=layer_errors, lut=lut_arg, encode=encodings,
            encode_arena_budget=encode_arena_budget, encode_min_bytes=encode_min_bytes or 256,
            language=language, target=target, device=device, overwrite=overwrite,
            allow_unsafe=allow_unsafe, progress=progress,
        )
    _print_export(result)


def _verbose() -> bool:
    return click.get_current_context().find_root().obj["verbose"]


def _print_export(result) -> None:
    from tflite_export.report import render_table

    _console.print(render_table(result.report))
    v, a = result.verification, result.arena
    _console.print(
        f"kTensorArenaSize = [bold]{a.emitted_bytes}[/] B (host TFLM measured {a.host_bytes} B; "
        "64-bit host bookkeeping, safe for 32-bit MCUs)"
    )
    _console.print(v.summary(), markup=False)
    if result.lut is not None and result.lut.tensors:
        lut = result.lut
        _console.print(
            f"LUT: {len(lut.tensors)} tensor(s) compressed, flash {lut.flash_before} -> "
            f"{lut.flash_after} B, host arena +{lut.host_arena_added} B (measured on TFLM)"
        )
    if result.encoding is not None:
        enc = result.encoding
        kinds = sorted({t.encoding for t in enc.tensors})
        _console.print(
            f"DECODE encoding: {len(enc.tensors)} tensor(s) ({', '.join(kinds) or 'none paid off'}), "
            f"flash {enc.flash_before} -> {enc.flash_after} B, host arena {enc.host_arena_before} -> "
            f"{enc.host_arena_after} B (measured on TFLM)"
        )
    if result.layer_errors:
        _console.print(_layer_error_table(result.layer_errors))
    if result.report.cost is not None:
        _print_cost(result.report.cost)
    _console.print(f"Wrote {len(result.files)} files to [bold]{escape(str(result.out_dir))}[/]")


def _print_cost(cost) -> None:
    from tflite_export.report import cost_summary

    for key, value in cost_summary(cost):
        label = f"est. {key}" if key in ("latency", "energy") else key
        _console.print(f"{label}: {value}", markup=False, highlight=False)


def _encodings(encode: str | None, lut: bool, arena_budget: int | None, min_bytes: int | None):
    """``--encode``'s value as `build`'s ``encode=`` argument, after the usage checks."""
    if encode is None:
        if arena_budget is not None or min_bytes is not None:
            raise click.UsageError("--encode-arena-budget and --encode-min-bytes only apply with "
                                   "--encode; add --encode auto or drop them.")
        return False
    if lut:
        raise click.UsageError("--lut and --encode are exclusive (--encode lut is the same as --lut).")
    kinds = [k.strip() for k in encode.split(",") if k.strip()]
    allowed = ("auto", "lut", "prune", "huffman")
    bad = [k for k in kinds if k not in allowed]
    if not kinds or bad or ("auto" in kinds and len(kinds) > 1):
        raise click.UsageError(f"--encode takes 'auto' or a comma list of lut, prune, huffman; "
                               f"received {encode!r}.")
    return "auto" if kinds == ["auto"] else kinds


def _layer_error_table(rows) -> Table:
    shown = rows[:LAYER_ERROR_ROWS]
    caption = None if len(rows) == len(shown) else f"{len(shown)} of {len(rows)}; all in report.md"
    table = Table(title="Per-layer int8 error (worst first)", caption=caption)
    for column in ("layer", "op", "tensor", "rel. RMS error", "max abs error"):
        table.add_column(column, justify="left" if column in ("layer", "op") else "right")
    for e in shown:
        table.add_row(escape(e.layer), e.op, str(e.tensor), f"{e.relative_rms:.4f}", f"{e.max_abs:.4g}")
    return table


@cli.command("inspect")
@click.argument("tflite", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report as JSON.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write it as Markdown.")
@click.option("--arena/--no-arena", default=True, show_default=True,
              help="Measure the arena on the TFLM interpreter.")
@click.option("--device", default=None, metavar="NAME", help=_DEVICE_HELP)
def inspect_cmd(tflite, json_path, md_path, arena, device) -> None:
    """Report flash, arena, MACs and ops of a .tflite model (and its estimated latency)."""
    import tflite_export
    from tflite_export.report import render_table

    model = Path(tflite).read_bytes()
    report = tflite_export.inspect(model, measure=False, device=device)
    if arena:
        with _native_work(_verbose()), ProgressDisplay(_err) as progress:
            measured = tflite_export.measure_arena(model, progress=progress)
        report = dataclasses.replace(
            report, arena_bytes=measured.host_bytes, arena_emitted_bytes=measured.emitted_bytes
        )
    _console.print(render_table(report))
    if report.cost is not None:
        _print_cost(report.cost)
    if json_path:
        Path(json_path).write_text(report.to_json())
    if md_path:
        Path(md_path).write_text(report.to_markdown())


@cli.command("demo")
@click.option("--out", "-o", default="demo-out", show_default=True,
              type=click.Path(file_okay=False), help="Directory to create.")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--target", type=click.Choice(["cmake", "cortex-m", "arduino", "zephyr", "esp-idf"]),
              default="cortex-m", show_default=True, help="Firmware project to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out directory.")
def demo_cmd(out, epochs, target, overwrite) -> None:
    """Train a small CNN on scikit-learn's digits, export it and verify it on TFLM."""
    from tinycompress.demo import run_demo

    with _native_work(_verbose()), ProgressDisplay(_err) as progress:
        summary = run_demo(out, epochs=epochs, target=target, overwrite=overwrite, progress=progress)
    _print_export(summary.export)
    _console.print(
        f"Accuracy on {summary.test_samples} held-out digits: float {summary.float_acc:.2%}, "
        f"TFLM int8 {summary.int8_acc:.2%}; flash {len(summary.export.model)} B "
        f"(float {summary.float_bytes} B), arena {summary.export.arena.emitted_bytes} B"
    )


_TARGETS = ["cmake", "cortex-m", "arduino", "zephyr", "esp-idf"]


@cli.command("auto")
@click.argument("model", type=click.Path(exists=True))
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help=".npz with arrays x (samples) and y (labels) to fine-tune and calibrate on.")
@click.option("--val", "val_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help=".npz with arrays x and y; every trial's TFLM accuracy is measured on it.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False),
              help="Search folder: study, chosen model (model/), report.md, trials, recipe.json.")
@click.option("--flash", default=None, metavar="SIZE", help="Flash budget, e.g. 64KB.")
@click.option("--arena", default=None, metavar="SIZE", help="kTensorArenaSize budget, e.g. 20KB.")
@click.option("--macs", default=None, metavar="N", help="MACs per inference budget, e.g. 2M.")
@click.option("--latency", default=None, metavar="TIME", help="Latency budget, e.g. 30ms (needs --device).")
@click.option("--energy", default=None, metavar="ENERGY", help="Energy budget, e.g. 50uJ (needs --device).")
@click.option("--min-accuracy", default=None, metavar="ACC", help="Accuracy floor, e.g. 0.9 or 90%.")
@click.option("--objective", type=click.Choice(["accuracy", "flash", "latency", "energy"]),
              default="accuracy", show_default=True,
              help="accuracy: most accurate within the budget; else the cheapest above --min-accuracy.")
@click.option("--device", default=None, help="Board of the device cost model (latency, energy).")
@click.option("--target", type=click.Choice(_TARGETS), default=None,
              help="Also write a firmware project for the chosen model.")
@click.option("--techniques", default=None, metavar="LIST",
              help="Comma list restricting the search, e.g. pruning,clustering,encode [default: all].")
@click.option("--trials", default=40, show_default=True, type=click.IntRange(min=1),
              help="Trials of the study in total (resumed runs and other workers count).")
@click.option("--timeout", default=None, type=click.FloatRange(min=1), metavar="SECONDS",
              help="Stop starting trials after this long.")
@click.option("--epochs", default=None, type=click.IntRange(min=1), help="Most fine-tuning epochs per trial.")
@click.option("--final-epochs", default=None, type=click.IntRange(min=1),
              help="Fine-tune the best trials' recipes again this long; the best that fits is returned.")
@click.option("--final-candidates", default=3, show_default=True, type=click.IntRange(min=1),
              help="Trials fine-tuned again with --final-epochs: the best, then the best "
                   "of each other combination of techniques.")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage shared by workers (e.g. postgresql://...) [default: OUT/study.db].")
@click.option("--study", "study_name", default=None, help="Study name in --storage.")
@click.option("--resume", is_flag=True, help="Continue the search stored in --out.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--sampler", type=click.Choice(["tpe", "random"]), default="tpe", show_default=True)
@click.option("--name", default="model", show_default=True, help="Model name for C identifiers.")
def auto_cmd(model, train_path, val_path, out, flash, arena, macs, latency, energy, min_accuracy,
             objective, device, target, techniques, trials, timeout, epochs, final_epochs,
             final_candidates, storage, study_name, resume, seed, sampler, name) -> None:
    """Find the most accurate compressed MODEL (.keras) that fits a device budget."""
    if study_name is not None and storage is None:
        raise click.UsageError("--study names a study in --storage; add --storage URL or drop --study.")
    from tinycompress.auto import Budget, SearchSpace, search
    from tinycompress.data import load_labelled

    budget = Budget(flash_bytes=flash, arena_bytes=arena, macs=macs, latency_ms=latency,
                    energy_uj=energy, min_accuracy=min_accuracy)
    space = None
    if techniques is not None:
        space = SearchSpace(techniques=[t.strip() for t in techniques.split(",") if t.strip()])
    train, val = load_labelled(train_path), load_labelled(val_path)
    with _native_work(_verbose()), _quiet_optuna(), _quiet_builds(_verbose()), \
            SearchProgressBar(_err, _describe_trial) as bar:
        result = search(model, train, val, budget, objective=objective, space=space, n_trials=trials,
                        timeout_s=timeout, epochs=epochs, device=device, storage=storage,
                        study_name=study_name, resume=resume, out=out, target=target, name=name,
                        seed=seed, sampler=sampler, final_epochs=final_epochs,
                        final_candidates=final_candidates, progress=bar)
    _print_search(result)


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna's per-trial log lines off the terminal (the progress bar shows them)."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


@contextlib.contextmanager
def _quiet_builds(verbose: bool):
    """Unless ``verbose``, the library's notices of each build (conversion, shrinking, encoding)
    off the terminal: a search builds every trial several times. The search's own notices
    (``tinycompress.auto``) and every warning stay."""
    import logging

    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in ("tinycompress", "tflite_export", "tinycompress.auto")]
    saved = [logger.level for logger in loggers]
    for logger, level in zip(loggers, (logging.WARNING, logging.WARNING, logging.INFO)):
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in zip(loggers, saved):
            logger.setLevel(level)


def _describe_trial(t) -> str:
    m = t.metrics
    text = f"#{t.number} acc {m['accuracy']:.4f}, {m['flash_bytes']} B flash, {m['arena_bytes']} B arena"
    return text + (f", {m['latency_ms']:.3g} ms" if m.get("latency_ms") is not None else "")


def _print_search(result) -> None:
    table = Table(title=f"Pareto front ({len(result.trials)} trials; budget: {result.budget.describe()})")
    for column in ("trial", "accuracy", "flash B", "arena B", "latency ms", "fits"):
        table.add_column(column, justify="right")
    for t in result.pareto:
        m = t.metrics
        latency = "-" if m.get("latency_ms") is None else f"{m['latency_ms']:.3g}"
        mark = " *" if t.number == result.best.number else ""
        table.add_row(f"{t.number}{mark}", f"{m['accuracy']:.4f}", str(m["flash_bytes"]),
                      str(m["arena_bytes"]), latency, "yes" if t.feasible else "no")
    _console.print(table)
    _console.print(f"Chosen (*): trial {escape(_describe_trial(result.best))}; techniques: "
                   f"{', '.join(result.recipe.techniques()) or 'none'}, {result.recipe.mode}"
                   f"{', encoded' if result.recipe.encode else ''}")
    if result.accuracy_error is not None:
        _console.print(f"Accuracy is measured on {result.val_samples:,} validation samples: one standard error "
                       f"is {100 * result.accuracy_error:.2f} points at the chosen model's; trials within "
                       f"about {200 * result.accuracy_error:.1f} points are not told apart.")
    _console.print(f"Wrote the model, report.md and recipe.json to [bold]{escape(str(result.out_dir))}[/]")


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
    except Exception as e:
        if not _ours(e):
            raise
        _err.print(f"[bold red]error:[/] {type(e).__name__}: {escape(str(e))}",
                   highlight=False, soft_wrap=True)
        return 2
    return 0


def _ours(error: BaseException) -> bool:
    """Whether ``error`` is a `TinyCompressError` (whose module only the commands
    that can raise it import: ``--help`` stays free of numpy and TFLM)."""
    errors = sys.modules.get("tflite_export.errors")
    return errors is not None and isinstance(error, errors.TinyCompressError)


if __name__ == "__main__":
    sys.exit(main())
