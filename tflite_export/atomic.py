"""The one place that writes generated files: whole folders swapped in atomically.

`write_tree` writes a folder of generated files so that readers see either the
old folder or the complete new one, never a half-written one:

1. every file is written into a sibling ``.<name>.tmp-<pid>-<hex>`` folder;
2. an existing ``<name>`` (only with ``overwrite``) is renamed to
   ``.<name>.old-<pid>-<hex>``;
3. the temporary folder is renamed to ``<name>``, and the old one removed.

A process killed between steps 2 and 3 leaves no ``<name>``; the next
`write_tree` (or `recover_output_dir`) for that path restores the old folder,
and removes temporary and old folders of processes that no longer run, logging
what it did. `write_files` replaces single files in an existing folder, each by
a rename. Files and folders get the modes any tool would give them (0666 and
0777 minus the user's umask).

`check_output_dir` refuses unusable destinations (under a file, under
``/proc``, ``/sys`` or ``/dev``, in a folder we cannot write, an existing path
without ``overwrite``, or, when a marker file name is given, an existing
folder that does not hold that marker) before any expensive work starts.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = write_tree(Path(d) / "out", {"a.txt": b"1", "sub/b.txt": "2"})
    ...     sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    ['a.txt', 'sub/b.txt']
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from tflite_export.errors import EmitError

__all__ = ["check_output_dir", "recover_output_dir", "write_tree", "write_files"]

logger = logging.getLogger(__name__)

_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _refuse(error: type[Exception], out: Path, why: str, fix: str) -> Exception:
    return error(f"cannot write the output directory {str(out)!r}: {why}. {fix}")


def _existing_ancestor(out: Path, error: type[Exception]) -> Path:
    for parent in out.parents:
        if os.path.lexists(parent):
            if not os.path.isdir(parent):
                raise _refuse(error, out, f"{str(parent)!r} is a file, not a directory",
                              "Choose a path whose parents are directories.")
            return parent
    return Path(out.anchor)


def _probe_writable(folder: Path, out: Path, error: type[Exception]) -> None:
    probe = folder / f".{out.name}.probe-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.mkdir(probe)
        os.rmdir(probe)
    except OSError as e:
        raise _refuse(error, out, f"{str(folder)!r} is not writable ({e.strerror})",
                      "Choose a directory you can write to.") from e


def check_output_dir(
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    marker: str | None = None,
    error: type[Exception] = EmitError,
) -> Path:
    """Refuse an output folder that cannot be written, before any work is done.

    Args:
        out: the folder to create or replace.
        overwrite: an existing folder may be replaced. Default False.
        marker: with ``overwrite``, an existing non-empty folder is replaced only
            when it holds a file of this name (a previous output). Default None:
            any folder.
        error: exception class raised. Default `EmitError`.

    Returns:
        ``out`` as an absolute path.

    Raises:
        error: ``out`` lies under a file or a pseudo file system, its nearest
            existing parent is not writable, it is a file, it exists without
            ``overwrite``, or lacks the marker.
    """
    out = Path(os.path.abspath(os.fspath(out)))
    for root in _PSEUDO_FILESYSTEMS:
        if out == root or root in out.parents:
            raise _refuse(error, out, f"it lies under {root}, a kernel file system",
                          "Choose a directory on a disk.")
    _probe_writable(_existing_ancestor(out, error), out, error)
    if not os.path.lexists(out):
        return out
    if not out.is_dir() or out.is_symlink():
        raise _refuse(error, out, "it exists and is not a directory", "Choose another path.")
    if not overwrite:
        raise error(f"output directory {str(out)!r} already exists; choose another or pass "
                    "overwrite=True (CLI: --overwrite).")
    if marker is not None and not (out / marker).is_file() and any(out.iterdir()):
        raise _refuse(error, out, f"it exists, is not empty and holds no {marker!r} file, so it "
                      "is not a previous output and overwrite would delete its files",
                      "Choose another path, or empty or remove that directory yourself.")
    return out


def _sibling(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _leftovers(out: Path) -> list[tuple[str, Path]]:
    # New names carry the writer's pid; names of older versions (mkdtemp's 8
    # random characters, no pid) count as abandoned.
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(tmp|old)-(?:(\d+)-[0-9a-f]+|[a-z0-9_]{{8}})$")
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return []
    found = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False):
            pid = int(match.group(2)) if match.group(2) else None
            try:
                mtime = entry.stat(follow_symlinks=False).st_mtime
            except OSError:  # removed meanwhile by another process
                continue
            if not _alive(pid):
                found.append((mtime, match.group(1), Path(entry.path)))
    return [(kind, path) for _, kind, path in sorted(found, reverse=True)]


def recover_output_dir(out: str | os.PathLike) -> list[str]:
    """Finish or undo writes to ``out`` that a killed process left behind.

    When ``out`` is missing and a dead writer's ``.<name>.old-*`` folder exists,
    the newest one becomes ``out`` again; every other leftover
    ``.<name>.tmp-*`` / ``.<name>.old-*`` folder of a dead process is removed.
    Each action is logged as a warning.

    Args:
        out: the output folder.

    Returns:
        One message per action taken (empty when there was nothing to do).
    """
    out = Path(os.path.abspath(os.fspath(out)))
    done = []
    for kind, path in _leftovers(out):
        if kind == "old" and not os.path.lexists(out):
            # Older versions kept the previous folder one level down.
            inner = [p for p in (path / "previous", path / "project") if p.is_dir()]
            os.replace(inner[0] if inner else path, out)
            message = f"restored {out} from {path.name}, left by an interrupted write"
        else:
            message = f"removed {path.name}, left by an interrupted write to {out}"
        shutil.rmtree(path, ignore_errors=True)
        logger.warning(message)
        done.append(message)
    return done


def _write_file(path: Path, data: bytes | str) -> None:
    with open(path, "xb") as f:  # 0666 minus the umask, like any tool
        f.write(data.encode("utf-8") if isinstance(data, str) else bytes(data))


def _relative(rel: str, error: type[Exception]) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise error(f"expected relative file paths inside the output. Received {rel!r}.")
    return path


def write_tree(
    out: str | os.PathLike,
    files: Mapping[str, bytes | str],
    *,
    overwrite: bool = False,
    marker: str | None = None,
    marker_text: str = "",
    error: type[Exception] = EmitError,
) -> Path:
    """Write ``files`` as the folder ``out``, all at once (see the module docstring).

    Args:
        out: folder to create (or replace with ``overwrite``).
        files: relative path (``/`` separators) -> bytes, or text written as UTF-8.
        overwrite: replace an existing ``out``. Default False.
        marker: also write a file of this name (see `check_output_dir`). Default None.
        marker_text: content of the marker file. Default empty.
        error: exception class for refusals. Default `EmitError`.

    Returns:
        ``out`` as an absolute path.

    Raises:
        error: see `check_output_dir`; a path in ``files`` is absolute or has ``..``.
        OSError: the disk failed while writing; nothing was replaced.
    """
    out = Path(os.path.abspath(os.fspath(out)))
    recover_output_dir(out)
    out = check_output_dir(out, overwrite=overwrite, marker=marker, error=error)
    paths = {rel: _relative(rel, error) for rel in files}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out, "tmp")
    os.mkdir(tmp)
    try:
        for rel, data in files.items():
            path = tmp.joinpath(*paths[rel].parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_file(path, data)
        if marker is not None:
            _write_file(tmp / marker, marker_text)
        old = None
        if os.path.lexists(out):
            old = _sibling(out, "old")
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def write_files(folder: str | os.PathLike, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write single files into ``folder`` (created if missing), each replaced by one rename.

    Args:
        folder: destination folder; other files in it are left alone.
        files: file name -> bytes, or text written as UTF-8.

    Returns:
        The paths written, in the order of ``files``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = folder / name
        tmp = _sibling(path, "tmp")
        try:
            _write_file(tmp, data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths
