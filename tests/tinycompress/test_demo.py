"""The demo trains, exports and verifies for real (fewer epochs than the CLI default)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinycompress import ExportError, demo
from tinycompress.cli import cli
from tinycompress.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    summary = run_demo(tmp_path / "demo", epochs=4, target=None, verbose=0)
    assert summary.float_acc >= 0.85
    assert summary.int8_acc >= summary.float_acc - 0.03
    assert len(summary.export.model) < 0.4 * summary.float_bytes
    out = tmp_path / "demo"
    assert (out / "model.tflite").read_bytes() == summary.export.model
    assert (out / "digits_data.cc").exists() and (out / "report.md").exists()


def test_an_existing_directory_is_refused_before_training(tmp_path, monkeypatch):
    def no_training():
        raise AssertionError("the demo started training before checking its output directory")

    monkeypatch.setattr(demo, "build_demo_model", no_training)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ExportError, match="already exists"):
        run_demo(tmp_path / "taken")


def test_readme_demo_directory_is_the_default_and_git_ignored():
    out = re.search(r"tinycompress demo --out (\S+)", (ROOT / "README.md").read_text()).group(1)
    assert f"/{out}/" in (ROOT / ".gitignore").read_text().split()
    default = next(p for p in cli.commands["demo"].params if p.name == "out").default
    assert default == out
