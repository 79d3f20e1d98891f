"""The tinycompress command line: in-process through click's runner, and as a
child process where what it imports and prints on stderr is the point."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinycompress import __version__
from tinycompress.cli import DISTRIBUTION, cli, main

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tflite_export" / "data" / "tiny_dense.tflite"
# absl/TensorFlow C++ log lines ("E0000 00:00:... cuda_executor.cc:...] failed call to cuInit")
# and the banner absl prints before its logging is initialized.
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|cuInit|oneDNN", re.MULTILINE)


@pytest.fixture(scope="module")
def saved(keras_models, tmp_path_factory):
    model, x = keras_models("mlp")
    d = tmp_path_factory.mktemp("cli")
    model.save(d / "mlp.keras")
    np.savez(d / "calib.npz", x=x)
    return d


def _run(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a child process, in a user's environment (no TF_CPP_MIN_LOG_LEVEL); it
    reports which of TensorFlow and Keras it imported on the last line of stdout."""
    script = (
        "import sys\nfrom tinycompress.cli import main\ncode = main(sys.argv[1:])\n"
        "print('IMPORTED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
        "sys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600,
        env={**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
             "PYTHONPATH": str(ROOT)},
    )


def test_export_then_inspect(saved):
    runner = CliRunner()
    res = runner.invoke(cli, ["export", str(saved / "mlp.keras"), "--calibration",
                              str(saved / "calib.npz"), "--out", str(saved / "out"), "--name", "mlp",
                              "--device", "nrf52840"])
    assert res.exit_code == 0, res.output
    assert "kTensorArenaSize" in res.output and "FULLY_CONNECTED" in res.output
    assert "est. latency" in res.output and "estimated from" in res.output
    report = json.loads((saved / "out" / "report.json").read_text())
    assert report["cost"]["estimated"] is True and report["cost"]["device"]["name"] == "nrf52840"
    assert report["layers"] and all(layer["cost"]["known"] for layer in report["layers"])
    md = (saved / "out" / "report.md").read_text()
    assert "| est. latency |" in md and "Estimated on nrf52840, not measured" in md
    res = runner.invoke(cli, ["inspect", str(saved / "out" / "model.tflite"), "--json",
                              str(saved / "inspect.json"), "--markdown", str(saved / "inspect.md"),
                              "--device", "nrf52840"])
    assert res.exit_code == 0, res.output
    assert "measuring the tensor arena" in res.output  # the bisection's progress bar
    again = json.loads((saved / "inspect.json").read_text())
    assert again["flash_bytes"] == report["flash_bytes"]
    assert again["arena_bytes"] == report["arena_bytes"]
    assert again["macs"] == 20 * 32 + 32 * 16 + 16 * 3
    assert again["cost"] == report["cost"]
    assert "FULLY_CONNECTED" in (saved / "inspect.md").read_text()


def test_errors_are_one_clear_line_and_exit_2(saved, tmp_path, capsys):
    (tmp_path / "broken.tflite").write_bytes(b"\x00" * 64)
    assert main(["inspect", str(tmp_path / "broken.tflite")]) == 2
    err = capsys.readouterr().err
    assert "ModelFormatError" in err and "Traceback" not in err
    (tmp_path / "taken").mkdir()
    assert main(["export", str(saved / "mlp.keras"), "--calibration", str(saved / "calib.npz"),
                 "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "ExportError" in err and "already exists" in err and "Traceback" not in err


def test_lut_min_bytes_without_lut_is_a_usage_error(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.zeros((4, 20), np.float32))
    res = CliRunner().invoke(cli, ["export", str(tmp_path / "m.keras"), "-c", str(tmp_path / "x.npy"),
                                   "-o", str(tmp_path / "out"), "--lut-min-bytes", "512"])
    assert res.exit_code == 2
    assert "--lut-min-bytes only applies with --lut" in res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, match", [
    (["--encode-min-bytes", "512"], "only apply with --encode"),
    (["--encode-arena-budget", "4096"], "only apply with --encode"),
    (["--encode", "zip"], "--encode takes 'auto' or a comma list"),
    (["--encode", "auto,prune"], "--encode takes 'auto' or a comma list"),
    (["--encode", "prune", "--lut"], "--lut and --encode are exclusive"),
])
def test_encode_options_are_checked_before_any_work(tmp_path, args, match):
    (tmp_path / "m.keras").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.zeros((4, 20), np.float32))
    res = CliRunner().invoke(cli, ["export", str(tmp_path / "m.keras"), "-c", str(tmp_path / "x.npy"),
                                   "-o", str(tmp_path / "out"), *args])
    assert res.exit_code == 2
    assert match in res.output
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def lut_and_layer_errors(saved):
    """One export of the MLP (random weights: nothing to LUT-compress) with --lut --layer-errors."""
    res = CliRunner().invoke(cli, ["export", str(saved / "mlp.keras"), "-c", str(saved / "calib.npz"),
                                   "-o", str(saved / "lut"), "--lut", "--layer-errors"])
    assert res.exit_code == 0, res.output
    return res


def test_lut_with_nothing_to_compress_says_so(lut_and_layer_errors):
    notice = " ".join(lut_and_layer_errors.stderr.split())
    assert "LUT compression" in notice and "unchanged" in notice


def test_layer_errors_are_printed(lut_and_layer_errors, saved):
    out = lut_and_layer_errors.stdout
    assert "Per-layer int8 error" in out and "rel. RMS error" in out
    rows = json.loads((saved / "lut" / "report.json").read_text())["layer_errors"]
    assert rows and all(row["layer"] in out for row in rows[:3])


def test_demo_refuses_an_existing_directory_at_once(tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["inspect", str(TINY)],
                                  ["inspect", str(TINY), "--device", "stm32l4r5"]],
                         ids=["help", "version", "inspect", "inspect-device"])
def test_starts_without_tensorflow_and_quietly(args):
    res = _run(*args)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "IMPORTED []"
    # stderr holds nothing but inspect's arena progress bar
    assert all("measuring the tensor arena" in line for line in res.stderr.splitlines()), res.stderr


def test_inspect_device_prints_the_labelled_estimate(capsys):
    assert main(["inspect", str(TINY), "--no-arena", "--device", "STM32L4R5"]) == 0
    out = capsys.readouterr().out
    assert "est. latency:" in out and "ms ±" in out and "estimated from: QEMU -icount" in out
    assert main(["inspect", str(TINY), "--no-arena", "--device", "esp32"]) == 2
    err = capsys.readouterr().err
    assert "DeviceError" in err and "nrf52840" in err and "Traceback" not in err


def test_version_names_the_distribution_of_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["name"] == DISTRIBUTION != "tinycompress"
    assert cfg["metadata"]["version"] == "attr: tinycompress.__version__"
    assert cfg["options.entry_points"]["console_scripts"].split() == [
        "tinycompress", "=", "tinycompress.cli:main"]
    res = CliRunner().invoke(cli, ["--version"])
    assert res.output == f"tinycompress {__version__} (Python distribution {DISTRIBUTION})\n"


@pytest.mark.slow
def test_export_prints_no_native_log_unless_verbose(saved, tmp_path):
    args = ["export", str(saved / "mlp.keras"), "-c", str(saved / "calib.npz")]
    quiet = _run(*args, "-o", str(tmp_path / "quiet"))
    assert quiet.returncode == 0, quiet.stderr
    assert not NATIVE_LOG.search(quiet.stderr), quiet.stderr
    assert "Traceback" not in quiet.stderr
    verbose = _run("--verbose", *args, "-o", str(tmp_path / "verbose"))
    assert verbose.returncode == 0, verbose.stderr
    assert NATIVE_LOG.search(verbose.stderr), "--verbose shows TensorFlow's own log"


def test_an_unexpected_failure_shows_the_end_of_the_native_log(capsys):
    from tinycompress.cli import _native_work

    with pytest.raises(RuntimeError, match="converter crashed"):
        with _native_work(verbose=False):
            os.write(2, b"F0000 00:00:1 converter.cc:12] the reason\n")
            raise RuntimeError("converter crashed")
    err = capsys.readouterr().err
    assert "the reason" in err and "--verbose" in err


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
