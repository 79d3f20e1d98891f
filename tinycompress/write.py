"""Write a `BuildResult` to disk as one export directory, atomically.

The directory holds ``model.tflite``, the C sources, ``report.json``,
``report.md``, a ``firmware/`` project when a target is asked, and the marker
file `MARKER` that identifies it as an export: ``overwrite`` replaces only a
directory holding that marker (or an empty one), so a mistyped ``--out`` never
deletes a user's files. Writing goes through `tflite_export.atomic.write_tree`:
readers see the old directory or the complete new one, and leftovers of a
killed run are restored or removed by the next one.
"""

from __future__ import annotations

import os
from pathlib import Path

from tflite_export.atomic import check_output_dir, recover_output_dir, write_tree
from tinycompress.build import check_target, render_firmware
from tinycompress.errors import ExportError
from tinycompress.result import BuildResult, ExportResult

__all__ = ["write", "check_out_dir", "MARKER"]

#: File written into every export directory; `write` only overwrites directories holding it.
MARKER = ".tinycompress-export"
_MARKER_TEXT = (
    "This directory was written by tinycompress (export). `tinycompress export --overwrite`\n"
    "replaces only directories that hold this file.\n"
)


def check_out_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Refuse an unusable export directory before any conversion starts.

    Leftovers of an interrupted earlier write to ``out`` are restored or removed
    first (`tflite_export.atomic.recover_output_dir`, logged as warnings).

    Args:
        out: the directory `write` would create.
        overwrite: an existing export directory may be replaced. Default False.

    Returns:
        ``out`` as an absolute path.

    Raises:
        ExportError: ``out`` is under a file or ``/proc``/``/sys``/``/dev``, its
            parent is not writable, it exists without ``overwrite``, or it is a
            non-empty directory that is not a previous export (no `MARKER`).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     check_out_dir(f.name + "/out")
        Traceback (most recent call last):
        ...
        tinycompress.errors.ExportError: cannot write the output directory ...
    """
    recover_output_dir(out)
    return check_output_dir(out, overwrite=overwrite, marker=MARKER, error=ExportError)


def write(
    result: BuildResult,
    out: str | os.PathLike,
    *,
    target: str | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Write a built model as the export directory ``out``, all at once.

    Args:
        result: what `tinycompress.build` returned.
        out: directory to create.
        target: firmware project to write under ``firmware/`` (see
            `tflite_export.TARGETS`). Default None: the one ``result`` was built
            with, if any; another target is rendered from ``result`` here.
        overwrite: replace ``out`` if it is a previous export. Default False.

    Returns:
        An `ExportResult`: ``result`` plus ``out_dir`` and the files written.

    Raises:
        ExportError: see `check_out_dir`; nothing is written.
        ArgumentError: unknown target.
        EmitError: the target's TFLM cannot run the model.
    """
    firmware, chosen = result.firmware, result.target
    if target is not None and target != result.target:
        check_target(target)
        firmware, chosen = render_firmware(result, target), target
    files = result.contents(firmware)
    out_dir = write_tree(out, files, overwrite=overwrite, marker=MARKER, marker_text=_MARKER_TEXT,
                         error=ExportError)
    return ExportResult.of(result, out_dir, sorted(files), firmware=firmware, target=chosen)
