"""What the CLI shows: progress lines and bars, library notices, and native stderr kept apart."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from tinycompress._terminal import ProgressDisplay, console_logging

ROOT = Path(__file__).resolve().parents[2]


def test_progress_display_prints_steps_and_bars():
    out = io.StringIO()
    with ProgressDisplay(Console(file=out, width=100)) as show:
        show("converting to full-integer TFLite")
        for done in range(4):
            show("measuring the tensor arena", done, 3)
        show("verifying on TFLM and LiteRT", 0, 2)
        show("writing files")
    text = out.getvalue()
    assert "converting to full-integer TFLite" in text and "writing files" in text
    assert "measuring the tensor arena" in text and "3/3" in text
    # a bar left unfinished is closed by the next step, in its last state
    assert "verifying on TFLM and LiteRT" in text and "0/2" in text
    assert text.index("measuring") < text.index("verifying") < text.index("writing files")


def test_library_notices_reach_stderr_at_info_and_debug_with_verbose(capsys):
    lut, convert = logging.getLogger("tflite_export.lut"), logging.getLogger("tinycompress.convert")
    with console_logging(verbose=False):
        lut.info("the model is unchanged")
        convert.debug("hidden detail")
        logging.getLogger("tensorflow").warning("tensorflow chatter")
    err = capsys.readouterr().err
    assert err.count("the model is unchanged") == 1 and "hidden detail" not in err
    assert "tensorflow chatter" not in err
    with console_logging(verbose=True):
        convert.debug("shown detail")
    assert "shown detail" in capsys.readouterr().err
    package = logging.getLogger("tinycompress")
    assert package.propagate and not any(type(h).__name__ == "_ConsoleHandler" for h in package.handlers)


def test_native_stderr_is_captured_while_python_stderr_stays_on_the_terminal():
    script = """
import os, subprocess, sys
from tinycompress._terminal import native_stderr_captured
with native_stderr_captured() as native:
    os.write(2, b"E0000 native log line\\n")
    subprocess.run([sys.executable, "-c", "import os; os.write(2, b'child log line')"])
    print("python notice", file=sys.stderr)
os.write(2, b"after\\n")
print(repr(native.text))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "python notice\nafter\n"
    assert "E0000 native log line" in res.stdout and "child log line" in res.stdout
