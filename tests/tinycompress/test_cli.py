"""The tinycompress command line, run in-process through click's runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tinycompress.cli import cli, main


@pytest.fixture(scope="module")
def saved(keras_models, tmp_path_factory):
    model, x = keras_models("mlp")
    d = tmp_path_factory.mktemp("cli")
    model.save(d / "mlp.keras")
    np.savez(d / "calib.npz", x=x)
    return d


def test_export_then_inspect(saved):
    runner = CliRunner()
    res = runner.invoke(cli, ["export", str(saved / "mlp.keras"), "--calibration",
                              str(saved / "calib.npz"), "--out", str(saved / "out"), "--name", "mlp"])
    assert res.exit_code == 0, res.output
    assert "kTensorArenaSize" in res.output and "FULLY_CONNECTED" in res.output
    report = json.loads((saved / "out" / "report.json").read_text())
    res = runner.invoke(cli, ["inspect", str(saved / "out" / "model.tflite"), "--json",
                              str(saved / "inspect.json"), "--markdown", str(saved / "inspect.md")])
    assert res.exit_code == 0, res.output
    again = json.loads((saved / "inspect.json").read_text())
    assert again["flash_bytes"] == report["flash_bytes"]
    assert again["arena_bytes"] == report["arena_bytes"]
    assert again["macs"] == 20 * 32 + 32 * 16 + 16 * 3
    assert "FULLY_CONNECTED" in (saved / "inspect.md").read_text()


def test_errors_are_one_clear_line_and_exit_2(saved, capsys):
    (saved / "broken.tflite").write_bytes(b"\x00" * 64)
    assert main(["inspect", str(saved / "broken.tflite")]) == 2
    err = capsys.readouterr().err
    assert "ModelFormatError" in err and "Traceback" not in err
    assert main(["export", str(saved / "mlp.keras"), "--calibration", str(saved / "calib.npz"),
                 "--out", str(saved / "out")]) in (0, 2)
    assert "already exists" in capsys.readouterr().err
