"""The one atomic writer: folder swap, recovery after a kill, destination checks, file modes."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tflite_export.atomic import check_output_dir, recover_output_dir, write_files, write_tree
from tflite_export.errors import EmitError

MARK = ".marker"


def _tree(root) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _killed_writer(out, kill_after_replace: int | None = None, kill_after_write: bool = False) -> None:
    """Run write_tree in a child process that SIGKILLs itself mid-way."""
    script = textwrap.dedent(f"""
        import os, signal
        from tflite_export import atomic
        real_replace, real_write, calls = os.replace, atomic._write_file, []
        def replace(a, b):
            real_replace(a, b)
            calls.append(1)
            if len(calls) == {kill_after_replace!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        def write(path, data):
            real_write(path, data)
            if {kill_after_write!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace, atomic._write_file = replace, write
        atomic.write_tree({str(out)!r}, {{"new.txt": "new", "b/c.txt": "c"}}, overwrite=True,
                          marker={MARK!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == -9, proc.stderr


def test_write_tree_replaces_the_folder_and_leaves_nothing_else(tmp_path):
    out = write_tree(tmp_path / "out", {"a.txt": "1", "sub/b.bin": b"\x00\x01"}, marker=MARK)
    assert _tree(out) == {"a.txt": "1", "sub/b.bin": "\x00\x01", MARK: ""}
    write_tree(out, {"z.txt": "2"}, overwrite=True, marker=MARK)
    assert _tree(out) == {"z.txt": "2", MARK: ""}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_files_and_folders_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = write_tree(tmp_path / "out", {"a.txt": "1", "sub/b.txt": "2"})
        paths = write_files(tmp_path / "flat", {"c.h": "3"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE((out / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((out / "sub" / "b.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(paths[0].stat().st_mode) == 0o640


def test_a_kill_between_the_two_renames_is_restored_by_the_next_run(tmp_path, caplog):
    out = write_tree(tmp_path / "out", {"old.txt": "old"}, marker=MARK)
    _killed_writer(out, kill_after_replace=1)  # old moved away, new not yet in place
    assert not out.exists()
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == [".out.old", ".out.tmp"]
    with caplog.at_level(logging.WARNING, logger="tflite_export.atomic"):
        done = recover_output_dir(out)
    assert _tree(out) == {"old.txt": "old", MARK: ""}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert len(done) == 2 and any("restored" in m for m in done)
    assert any("restored" in r.getMessage() for r in caplog.records)


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_write(tmp_path, caplog):
    out = write_tree(tmp_path / "out", {"old.txt": "old"}, marker=MARK)
    _killed_writer(out, kill_after_write=True)
    assert len(list(tmp_path.iterdir())) == 2
    with caplog.at_level(logging.WARNING, logger="tflite_export.atomic"):
        write_tree(out, {"new.txt": "new"}, overwrite=True, marker=MARK)
    assert _tree(out) == {"new.txt": "new", MARK: ""}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert any("removed .out.tmp-" in r.getMessage() for r in caplog.records)


def test_leftovers_of_older_versions_are_recovered(tmp_path):
    old = tmp_path / ".out.old-ab12cd_9" / "previous"
    old.mkdir(parents=True)
    (old / "x.txt").write_text("x")
    recover_output_dir(tmp_path / "out")
    assert _tree(tmp_path / "out") == {"x.txt": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_running_writers_folders_are_left_alone(tmp_path):
    busy = tmp_path / f".out.tmp-{os.getpid()}-0123abcd"
    busy.mkdir()
    assert recover_output_dir(tmp_path / "out") == []
    assert busy.exists()


@pytest.mark.parametrize("where", ["under_file", "proc", "file_itself"])
def test_unusable_destinations_are_refused_before_writing(tmp_path, where):
    (tmp_path / "f").write_text("x")
    out = {"under_file": tmp_path / "f" / "out", "proc": "/proc/self/out",
           "file_itself": tmp_path / "f"}[where]
    with pytest.raises(EmitError, match="cannot write the output directory"):
        check_output_dir(out, overwrite=True)
    with pytest.raises(EmitError, match="cannot write the output directory"):
        write_tree(out, {"a": "1"}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def _refused_as_nobody(out) -> bool:
    """Run `check_output_dir` in a forked child that dropped root (root writes anywhere)."""
    pid = os.fork()
    if pid == 0:  # child: no exec, the modules are already imported
        code = 2
        try:
            os.setgid(65534)
            os.setuid(65534)
            check_output_dir(out)
        except EmitError as e:
            code = 0 if "not writable" in str(e) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_unwritable_parent_is_refused(tmp_path):
    if os.geteuid() != 0:
        parent = tmp_path / "ro"
        parent.mkdir(mode=0o555)
        with pytest.raises(EmitError, match="not writable"):
            check_output_dir(parent / "out")
        return
    # CI runs as root: check as the unprivileged user, in a folder it can reach.
    base = Path(tempfile.mkdtemp(prefix="tc-atomic-"))
    try:
        base.chmod(0o755)
        (base / "ro").mkdir(mode=0o555)
        assert _refused_as_nobody(base / "ro" / "out")
        assert not (base / "ro" / "out").exists()
    finally:
        shutil.rmtree(base)


def test_overwrite_needs_the_marker_or_an_empty_folder(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(EmitError, match="already exists.*overwrite=True"):
        write_tree(user, {"a": "1"}, marker=MARK)
    with pytest.raises(EmitError, match=f"holds no '{MARK}' file"):
        write_tree(user, {"a": "1"}, overwrite=True, marker=MARK)
    assert _tree(user) == {"thesis.tex": "precious"}
    (tmp_path / "empty").mkdir()
    assert _tree(write_tree(tmp_path / "empty", {"a": "1"}, overwrite=True, marker=MARK)) == {
        "a": "1", MARK: ""}


def test_paths_outside_the_folder_are_refused(tmp_path):
    for bad in ("../x", "/etc/x"):
        with pytest.raises(EmitError, match="relative file paths"):
            write_tree(tmp_path / "out", {bad: "1"})
    assert list(tmp_path.iterdir()) == []
