"""Execute a notebook from `notebooks/` in quick mode and collect what it produced.

`run_notebook` runs the notebook with papermill in a kernel of this very
interpreter (the checkout first on its path), offline data (``DATASET="digits"``)
and a temporary ``OUT_DIR``. A probe cell, appended here and never committed,
prints the notebook's final ``results`` dict and the titles and axis labels of
every matplotlib figure it kept in a variable; the tests assert on those and
on the files the notebook wrote.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "tinycompress-test"
PROBE_MARK = "__tinycompress_probe__"

PROBE_SOURCE = f"""
import json as _json
import matplotlib.figure as _mfig

def _axes_labels(ax):
    return {{"title": ax.get_title(), "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel()}}

print({PROBE_MARK!r} + _json.dumps({{
    "results": results,
    "figures": {{
        name: {{"suptitle": fig.get_suptitle(), "axes": [_axes_labels(a) for a in fig.axes]}}
        for name, fig in dict(globals()).items()
        if isinstance(fig, _mfig.Figure) and not name.startswith("_")
    }},
}}, default=str))
"""


@dataclass
class NotebookRun:
    """What one quick-mode execution produced.

    Attributes:
        notebook: the executed notebook (outputs included).
        results: the notebook's final ``results`` dict (JSON round-tripped).
        figures: figure variable name -> ``{"suptitle", "axes": [{title, xlabel, ylabel}]}``.
        out_dir: the ``OUT_DIR`` the notebook wrote into.
        seconds: wall time of the execution, kernel start included.
    """

    notebook: object
    results: dict
    figures: dict
    out_dir: Path
    seconds: float

    def images(self) -> int:
        """Number of PNG images among the cell outputs."""
        return sum(
            "image/png" in out.get("data", {})
            for cell in self.notebook.cells
            if cell.cell_type == "code"
            for out in cell.outputs
        )

    def text(self) -> str:
        """All stream, text/plain and text/markdown output of the notebook, concatenated."""
        parts = []
        for cell in self.notebook.cells:
            for out in cell.get("outputs", []):
                parts.append(out.get("text", ""))
                data = out.get("data", {})
                parts.append(data.get("text/markdown", "") or data.get("text/plain", ""))
        return "".join(parts)

    def assert_figures_labelled(self, minimum: int) -> None:
        """At least ``minimum`` figures, all shown, each titled, each axis labelled, with a unit."""
        assert len(self.figures) >= minimum, f"expected {minimum} figures, kept {sorted(self.figures)}"
        assert self.images() >= len(self.figures), "a figure was made but never displayed"
        for name, fig in self.figures.items():
            for ax in fig["axes"]:
                assert fig["suptitle"] or ax["title"], f"{name} has an untitled plot"
                assert ax["xlabel"] and ax["ylabel"], f"{name}: label both axes"
                assert "(" in ax["xlabel"] + ax["ylabel"], (
                    f"{name}: give the measured axis a unit, e.g. 'flash (KiB)'"
                )


@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A Jupyter path holding a kernelspec for this interpreter."""
    jupyter = tmp_path_factory.mktemp("jupyter")
    spec = jupyter / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tinycompress tests",
        "language": "python",
    }))
    return jupyter


@pytest.fixture
def run_notebook(kernel_env, tmp_path, monkeypatch):
    """Return ``run(name, **parameters) -> NotebookRun`` (quick mode, offline data)."""
    import nbformat
    import papermill

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_env))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("MPLBACKEND", raising=False)

    def run(name: str, **parameters) -> NotebookRun:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(PROBE_SOURCE))
        source = tmp_path / f"in-{name}"
        nbformat.write(nb, source)
        out_dir = tmp_path / "out"
        params = {"QUICK": True, "DATASET": "digits", "OUT_DIR": str(out_dir), **parameters}
        start = time.perf_counter()
        executed = papermill.execute_notebook(
            str(source), str(tmp_path / f"out-{name}"), parameters=params,
            kernel_name=KERNEL, cwd=str(tmp_path), progress_bar=False,
        )
        seconds = time.perf_counter() - start
        installed = "".join(o.get("text", "") for o in executed.cells[0].outputs)
        assert not installed, f"the install cell ran although tinycompress is importable: {installed}"
        probe = "".join(o.get("text", "") for o in executed.cells[-1].outputs)
        assert PROBE_MARK in probe, f"probe printed no results: {probe[-2000:]}"
        payload = json.loads(probe.split(PROBE_MARK, 1)[1])
        run = NotebookRun(executed, payload["results"], payload["figures"], out_dir, seconds)
        assert "Data: scikit-learn's bundled digits" in run.text(), "say which data set ran"
        return run

    return run

