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


@pytest.mark.parametrize("edit", ["relabelled", "rank70", "offline_plan"])
def test_inspect_refuses_models_that_break_tflm_with_exit_2(tmp_path, capsys, edit):
    # These passed validate and raised IndexError/ValueError or crashed TFLM (issue 13).
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "tflite_export"))
    import hostile_models as h

    from tflite_export.testing import tiny_model

    bad = {"relabelled": lambda m: h.relabelled(m, "FULLY_CONNECTED", "CONV_2D"),
           "rank70": lambda m: h.with_input_shape(m, [1] * 69 + [4]),
           "offline_plan": h.offline_plan_on_empty_buffer}[edit](tiny_model())
    (tmp_path / "bad.tflite").write_bytes(bad)
    for arena in ("--arena", "--no-arena"):
        code = main(["inspect", str(tmp_path / "bad.tflite"), arena,
                     "--json", str(tmp_path / "r.json")])
        assert code == 2
        assert "ModelFormatError" in capsys.readouterr().err
        assert not (tmp_path / "r.json").exists()
