"""The package imports its public names on first use: cheap to import, same API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tinycompress

ROOT = Path(__file__).resolve().parents[2]


def test_import_loads_no_tensorflow_and_functions_keep_their_names():
    script = """
import sys
import tinycompress
assert not {"tensorflow", "keras", "numpy"} & set(sys.modules), sorted(sys.modules)
import tinycompress.export, tinycompress.convert  # the modules named like the functions
from tinycompress import export, convert
assert callable(export) and export is tinycompress.export and export.__module__ == "tinycompress.export"
assert callable(convert) and convert is tinycompress.convert
assert not {"tensorflow", "keras"} & set(sys.modules), "the export/convert modules import TF lazily"
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 0, res.stderr


def test_every_public_name_imports_and_is_listed():
    namespace = {}
    exec("from tinycompress import *", namespace)  # noqa: S102 - the star import is the API under test
    assert set(tinycompress.__all__) <= set(namespace)
    assert set(tinycompress.__all__) <= set(dir(tinycompress))
    assert tinycompress.pruning.__name__ == "tinycompress.pruning"
    assert tinycompress.PruningCallback is tinycompress.pruning.PruningCallback
    assert issubclass(tinycompress.ExportError, tinycompress.TinyCompressError)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        tinycompress.nope  # noqa: B018
    with pytest.raises(ImportError):
        from tinycompress import nope  # noqa: F401
