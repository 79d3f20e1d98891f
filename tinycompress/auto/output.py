"""What a search writes: the chosen model's export, report with plot, trials and recipe.

The search folder holds:

- ``model/``: the chosen model exported like `tinycompress.export` (verified
  ``model.tflite``, C sources, ``report.md``/``report.json``, ``firmware/``
  with a target), written at once by `tinycompress.write`;
- ``report.md``: budget, the chosen trial, the Pareto front as a table, the
  plot ``pareto.png`` (accuracy against flash, arena and latency, budget lines
  drawn), the closest trials when none fits, failures;
- ``trials.json`` / ``trials.csv``: every trial; ``recipe.json``: the winner's
  `Recipe` (`tinycompress.auto.Recipe.load`);
- ``study.db`` (the default storage) and ``trials/`` (each measured trial's
  prepared Keras model), written while searching.

Single files are replaced by one rename each (`tflite_export.atomic.write_files`);
the marker file `MARKER` identifies a search folder, so a mistyped ``out``
never writes into a user's folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from tflite_export.atomic import recover_output_dir, write_files
from tinycompress.auto.result import SearchResult
from tinycompress.auto.trial import TrialRecord
from tinycompress.errors import AutoError

__all__ = ["write_search", "check_search_dir", "claim_search_dir", "render_report", "render_plot", "trials_csv",
           "MARKER"]

#: File that marks a folder as a tinycompress search folder.
MARKER = ".tinycompress-auto"
_CSV_METRICS = ("accuracy", "loss", "float_accuracy", "flash_bytes", "arena_bytes", "arena_host_bytes", "macs",
                "latency_ms", "energy_uj", "cost_rel_error")


def check_search_dir(out: str | os.PathLike) -> Path:
    """Check that ``out`` can be the search folder, before any work (nothing is created).

    Raises:
        AutoError: ``out`` is a file, or a non-empty folder that is not a search folder.
    """
    out = Path(os.path.abspath(os.fspath(out)))
    if out.exists() and not out.is_dir():
        raise AutoError(f"cannot use {out} as the search folder: it is a file; choose a folder path.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise AutoError(f"{out} is a non-empty folder that is not a tinycompress search folder "
                        f"(no {MARKER}); choose a new or empty folder.")
    return out


def claim_search_dir(out: Path) -> Path | None:
    """Create the checked search folder ``out`` (`check_search_dir`) and mark it as one; a
    ``model/`` folder left half-written by an interrupted search is recovered.

    Returns:
        The outermost folder this created (``out`` or one of its parents; the caller removes
        it if the search cannot start), or None when ``out`` existed.
    """
    new = None
    for folder in (out, *out.parents):
        if folder.exists():
            break
        new = folder
    out.mkdir(parents=True, exist_ok=True)
    recover_output_dir(out / "model")
    write_files(out, {MARKER: "This folder was written by tinycompress auto.\n"})
    return new


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}{unit}"
    return f"{value}{unit}"


def _row(t: TrialRecord, best: TrialRecord | None) -> str:
    m = t.metrics
    techniques = ", ".join(_techniques(t)) or "none"
    mark = " **(chosen)**" if best is not None and t.number == best.number else ""
    return (f"| {t.number}{mark} | {_fmt(m.get('accuracy'))} | {_fmt(m.get('flash_bytes'))} | "
            f"{_fmt(m.get('arena_bytes'))} | {_fmt(m.get('latency_ms'))} | {'yes' if t.feasible else 'no'} | "
            f"{techniques} |")


def _techniques(t: TrialRecord) -> list[str]:
    from tinycompress.auto.recipe import Recipe

    if not t.recipe:
        return []
    r = Recipe.from_config(t.recipe)
    names = r.techniques() + ([r.mode] if r.mode != "int8" else []) + (["encode"] if r.encode else [])
    return names


def _error_text(result: SearchResult) -> str:
    """How finely the validation data tells accuracies apart, or "" when unknown."""
    if result.accuracy_error is None:
        return ""
    return (f"; ± {100 * result.accuracy_error:.2f} points (one standard error over "
            f"{result.val_samples:,} validation samples: trials within about "
            f"{200 * result.accuracy_error:.1f} points of each other are not told apart)")


def _final_lines(final: dict) -> list[str]:
    """Report lines of ``search(final_epochs=...)``: one per candidate, then what is returned."""
    lines = []
    for row in final["candidates"]:
        head = (f"- trial {row['trial']} fine-tuned again for {final['epochs']} epochs "
                f"(trial: {row['trial_epochs']}): ")
        if "skipped" in row or "failure" in row:
            lines.append(head + f"not made ({row.get('skipped') or row['failure']})")
            continue
        verdict = "returned" if row["kept"] else \
            f"not returned ({'; '.join(row['violations']) or 'ranks below the model returned'})"
        loss = "" if row.get("loss") is None else f" (cross-entropy {row['loss']:.4f})"
        lines.append(head + f"validation accuracy {_fmt(row['accuracy'])}{loss} against the trial's "
                            f"{_fmt(row['trial_accuracy'])}, {row['flash_bytes']} B of flash: {verdict}")
    if final.get("margin") is not None:  # set only when `_pick` chose between models
        lines.append(f"- of the models within {100 * final['margin']:.2f} points (one standard error) "
                     "of the most accurate on the validation data, the one with the lowest "
                     "cross-entropy is returned: the validation data cannot rank them by accuracy")
    if not final["kept"]:
        why = "its recipe trains as long already" if "skipped" in final else \
            "no model fine-tuned again was made within the budget"
        lines.append(f"- returned: trial {final['trial']}'s own model ({why})")
    return lines


def render_report(result: SearchResult, *, plot: str | None = "pareto.png") -> str:
    """``report.md`` of a search (see the module docs)."""
    b, best = result.budget, result.best
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts().items()))
    lines = ["# Automatic compression search", "",
             f"- budget: {b.describe()}", f"- objective: {result.objective}",
             f"- device (cost model): {result.device or 'none'}",
             f"- study: `{result.study_name}` in `{result.storage}`", f"- trials: {len(result.trials)} ({counts})",
             ""]
    if best is not None:
        final = best.metrics
        lines += ["## Chosen model", "", f"Trial {best.number}: techniques "
                  f"{', '.join(_techniques(best)) or 'none'}; recipe in `recipe.json`, model in `model/`.", "",
                  f"- accuracy on the TFLM interpreter ({best.recipe['mode']}) on the validation data: "
                  f"{_fmt(final.get('accuracy'))} (float Keras model: {_fmt(final.get('float_accuracy'))})"
                  + _error_text(result),
                  f"- flash: {final.get('flash_bytes')} B; kTensorArenaSize: {final.get('arena_bytes')} B "
                  f"(host TFLM {final.get('arena_host_bytes')} B); MACs: {final.get('macs')}"]
        if result.final is not None:
            lines += _final_lines(result.final)
        if final.get("latency_ms") is not None:
            energy = "unknown" if final.get("energy_uj") is None else f"{final['energy_uj']:.4g} uJ"
            lines.append(f"- latency {final['latency_ms']:.4g} ms, energy {energy} on {result.device} "
                         f"(cost-model estimates, relative error {final['cost_rel_error']:.0%}"
                         + (f"; not counting {', '.join(final['cost_unknown_ops'])}"
                            if final.get("cost_unknown_ops") else "") + ")")
        lines.append("")
    else:
        lines += ["## No model fits", "", f"No trial met the budget; never met: "
                  f"{', '.join(result.unmet()) or 'no single limit, only their combination'}.", "",
                  "Closest trials:", ""]
        lines += [f"- trial {t.number}: {'; '.join(t.violations) or 'fits'}" for t in result.closest()]
        lines.append("")
    header = ["| trial | accuracy | flash B | arena B | latency ms | fits | techniques |",
              "|---|---|---|---|---|---|---|"]
    lines += ["## Pareto front (accuracy vs flash, arena, latency)", "", *header,
              *[_row(t, best) for t in result.pareto], ""]
    if plot:
        lines += [f"![accuracy against flash, arena and latency]({plot})", ""]
    if result.sensitivity:
        lines += ["## Channel-pruning sensitivity (measured)", "",
                  "Float validation accuracy lost when half of one layer's channels are pruned "
                  "(no fine-tuning); trials with `pruning_allocation=sensitivity` prune robust "
                  "layers more.", "", "| layer | accuracy drop |", "|---|---|",
                  *[f"| {name} | {drop:.4f} |" for name, drop in result.sensitivity.items()], ""]
    failed = [t for t in result.trials if t.state == "failed"]
    if failed:
        lines += ["## Failed trials", ""] + [f"- trial {t.number}: {t.failure}" for t in failed] + [""]
    lines += ["Every figure is measured on the built model (accuracy on the TFLM interpreter, flash and "
              "arena from the build); latency and energy are estimates of the device cost model.", ""]
    return "\n".join(lines)


def render_plot(result: SearchResult) -> bytes:
    """PNG of accuracy against flash, arena and (when measured) latency; budget lines dashed."""
    from matplotlib.figure import Figure  # draws on its own canvas: the user's backend stays

    measured = [t for t in result.trials if t.state == "complete"]
    axes = [("flash_bytes", "flash (B)", result.budget.flash_bytes),
            ("arena_bytes", "kTensorArenaSize (B)", result.budget.arena_bytes)]
    if any(t.metrics.get("latency_ms") is not None for t in measured):
        axes.append(("latency_ms", "latency (ms, estimate)", result.budget.latency_ms))
    fig = Figure(figsize=(4.2 * len(axes), 3.6), layout="constrained")
    front = {t.number for t in result.pareto}
    for ax, (key, label, limit) in zip(fig.subplots(1, len(axes), squeeze=False)[0], axes):
        for group, style in ((False, dict(c="0.6", marker="x", label="over budget")),
                             (True, dict(c="tab:blue", marker="o", label="fits"))):
            pts = [t for t in measured if t.feasible == group and t.metrics.get(key) is not None]
            ax.scatter([t.metrics[key] for t in pts], [t.metrics["accuracy"] for t in pts], s=22, **style)
        pf = sorted((t for t in measured if t.number in front and t.metrics.get(key) is not None),
                    key=lambda t: t.metrics[key])
        ax.plot([t.metrics[key] for t in pf], [t.metrics["accuracy"] for t in pf], c="tab:orange",
                lw=1, label="Pareto front")
        if result.best is not None and result.best.metrics.get(key) is not None:
            ax.scatter([result.best.metrics[key]], [result.best.metrics["accuracy"]], marker="*", s=160,
                       c="tab:red", label="chosen", zorder=3)
        if limit is not None:
            ax.axvline(limit, ls="--", c="tab:red", lw=1, label="budget")
        if result.budget.min_accuracy is not None:
            ax.axhline(result.budget.min_accuracy, ls=":", c="tab:red", lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel("TFLM accuracy")
    fig.axes[0].legend(fontsize="small")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def trials_csv(result: SearchResult) -> str:
    """Every trial as CSV: number, state, feasible, metrics, failure, params (JSON), recipe (JSON)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["number", "state", "feasible", *_CSV_METRICS, "violations", "failure", "duration_s",
                     "params", "recipe"])
    for t in result.trials:
        writer.writerow([t.number, t.state, t.feasible, *(t.metrics.get(k, "") for k in _CSV_METRICS),
                         "; ".join(t.violations), t.failure or "", t.duration_s or "",
                         json.dumps(t.params, sort_keys=True), json.dumps(t.recipe, sort_keys=True)])
    return buf.getvalue()


def write_search(result: SearchResult, out: str | os.PathLike, *, target: str | None = None) -> Path:
    """Write the search output into the search folder ``out`` (see the module docs).

    Returns:
        ``out`` as an absolute path; ``result.out_dir`` is set to it.
    """
    from tinycompress.write import write

    out = check_search_dir(out)
    claim_search_dir(out)
    if result.build is not None:
        write(result.build, out / "model", target=target, overwrite=True)
    files = {"trials.json": json.dumps(result.to_dict(), indent=2, default=str) + "\n",
             "trials.csv": trials_csv(result)}
    if any(t.state == "complete" for t in result.trials):
        files["pareto.png"] = render_plot(result)
    files["report.md"] = render_report(result, plot="pareto.png" if "pareto.png" in files else None)
    if result.recipe is not None:
        files["recipe.json"] = json.dumps({"recipe": result.recipe.get_config(), "trial": result.best.number,
                                           "final": result.final}, indent=2) + "\n"
    write_files(out, files)
    result.out_dir = out
    return out
