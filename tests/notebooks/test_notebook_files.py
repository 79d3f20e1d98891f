"""Every notebook is committed clean and runs on a fresh Colab runtime as well as here."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

NAMES = [
    "01_quickstart.ipynb",
    "02_pruning.ipynb",
    "03_qat.ipynb",
    "04_clustering_lut.ipynb",
    "05_distillation.ipynb",
    "06_deployment.ipynb",
    "07_auto.ipynb",
]


def _metadata() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["metadata"]


def test_the_seven_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.fixture(params=NAMES)
def notebook(request):
    return nbformat.read(NOTEBOOKS / request.param, as_version=4)


def test_valid_and_committed_without_outputs(notebook):
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"outputs committed in cell {cell.source[:60]!r}; strip them (nbstripout)"
            )
    assert "widgets" not in notebook.metadata
    assert notebook.metadata.kernelspec.name == "python3"


def test_first_cell_installs_from_the_repository_only_when_missing(notebook):
    first = notebook.cells[0]
    assert first.cell_type == "code"
    assert 'find_spec("tinycompress") is None' in first.source
    meta = _metadata()
    assert f'"{meta["name"]}[notebooks] @ git+{meta["url"]}"' in first.source, (
        "install the distribution setup.cfg names, from the repository it names"
    )
    assert "%pip install" in first.source


def test_parameters_cell_defaults_to_the_full_colab_run(notebook):
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters' (papermill)"
    values = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(tagged[0].source).body
        if isinstance(node, ast.Assign)
    }
    assert values["QUICK"] is False and values["DATASET"] == "auto"
    assert isinstance(values["OUT_DIR"], str) and not values["OUT_DIR"].startswith("/")


def test_no_cell_depends_on_this_machine(notebook):
    for cell in notebook.cells:
        for local in ("../shared", "/work/", "/tmp/", "/home/", "TFLM_DIR"):
            assert local not in cell.source, f"{local!r} in {cell.source[:60]!r}"
