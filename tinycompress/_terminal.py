"""What the command line shows: library notices, progress bars, and no native noise.

- `quiet_tensorflow` sets TensorFlow's logging variables before TensorFlow is
  imported and quiets its Python loggers.
- `native_stderr_captured` sends what native code writes to file descriptor 2
  (absl's C++ log lines, such as ``E0000 ... failed call to cuInit``, which
  ``TF_CPP_MIN_LOG_LEVEL`` does not silence because they are printed before
  absl's logging is initialized) to a temporary file, while Python's
  ``sys.stderr`` keeps writing to the terminal.
- `console_logging` shows the ``logging`` records of `tinycompress` and
  `tflite_export` (INFO and up; DEBUG with ``--verbose``) through rich.
- `ProgressDisplay` turns progress callbacks into console lines and rich bars.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Column
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = [
    "LIBRARY_LOGGERS",
    "NativeStderr",
    "ProgressDisplay",
    "SearchProgressBar",
    "console_logging",
    "native_stderr_captured",
    "quiet_tensorflow",
]

#: Loggers whose records reach the console.
LIBRARY_LOGGERS = ("tinycompress", "tflite_export")


def quiet_tensorflow(verbose: bool) -> None:
    """Set TensorFlow's C++ log level for this process and its children.

    Call before TensorFlow is imported.

    Args:
        verbose: show everything (``TF_CPP_MIN_LOG_LEVEL=0``) instead of errors
            only (``3``, unless the environment already sets a level).
    """
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _ConsoleHandler(RichHandler):
    """The handler `console_logging` adds."""


@contextlib.contextmanager
def console_logging(verbose: bool) -> Iterator[None]:
    """Show library log records on stderr through rich; restore logging after.

    Records of `LIBRARY_LOGGERS` at INFO and up (DEBUG with ``verbose``) are
    shown once (not passed on to handlers of the root logger); TensorFlow's and
    absl's Python loggers show errors only unless ``verbose``.

    Args:
        verbose: DEBUG and up, and TensorFlow's own notices.
    """
    handler = _ConsoleHandler(
        console=Console(stderr=True), show_time=False, show_path=False, markup=False
    )
    level = logging.DEBUG if verbose else logging.INFO
    changes = {name: level for name in LIBRARY_LOGGERS}
    if not verbose:
        changes.update(dict.fromkeys(("tensorflow", "absl"), logging.ERROR))
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in changes}
    for name, new_level in changes.items():
        logging.getLogger(name).setLevel(new_level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).propagate = False
    try:
        yield
    finally:
        for name, (old_level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(old_level)
            logger.propagate = propagate
            logger.removeHandler(handler)


class NativeStderr:
    """What native code wrote to file descriptor 2 inside `native_stderr_captured`.

    Attributes:
        text: the captured output, available once the block has ended.
    """

    text: str = ""

    def tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of `text`."""
        return "\n".join(self.text.rstrip().splitlines()[-lines:])


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[NativeStderr]:
    """Send file descriptor 2 to a temporary file; Python's ``sys.stderr`` stays.

    Child processes started inside inherit the redirection.

    Yields:
        A `NativeStderr` whose ``text`` holds the capture after the block.
    """
    captured = NativeStderr()
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    terminal = None
    if _writes_to_fd2(python_stderr):
        terminal = os.fdopen(
            os.dup(saved), "w", buffering=1,
            encoding=python_stderr.encoding, errors="backslashreplace",
        )
        sys.stderr = terminal
    try:
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
                log.seek(0)
                captured.text = log.read().decode(errors="replace")
    finally:
        os.close(saved)
        if terminal is not None:
            sys.stderr = python_stderr
            terminal.close()


class ProgressDisplay:
    """A progress callback for the console.

    Follows `tflite_export.progress`: ``display(description, done, total)``
    shows a bar that ends when ``done == total``; with ``total=0``, or called
    as ``display(message)`` (`tinycompress.export`'s steps), it prints the
    message as the next stage.

    Args:
        console: where to draw. Default None: a new stdout console.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._bar: Progress | None = None
        self._task = None
        self._description: str | None = None

    def __call__(self, description: str, done: int | None = None, total: int | None = None) -> None:
        if not total:
            self.close()
            self._console.print(f"[dim]-[/] {escape(description)}", highlight=False)
            return
        if self._bar is None or description != self._description:
            self.close()
            self._bar = Progress(
                TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), console=self._console,
            )
            self._bar.start()
            self._task = self._bar.add_task(escape(description), total=total)
            self._description = description
        self._bar.update(self._task, completed=done, total=total)
        if done >= total:
            self.close()

    def close(self) -> None:
        """Stop the current bar, leaving its last state on screen."""
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._task = self._description = None

    def __enter__(self) -> ProgressDisplay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SearchProgressBar:
    """The progress bar of ``tinycompress auto``: trials done, best so far, time left.

    Called with a `tinycompress.auto.SearchStatus` after every trial; a
    context manager that stops the bar at the end.

    Args:
        console: where to draw. Default None: a new stderr console.
        describe: ``describe(trial_record) -> str`` for the best trial.
    """

    def __init__(self, console: Console | None = None, describe=str) -> None:
        self._console = console or Console(stderr=True)
        self._describe = describe
        fixed = Column(no_wrap=True, min_width=0)
        self._bar = Progress(
            TextColumn("  trials", table_column=Column(no_wrap=True, min_width=8)),
            MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=7)),
            BarColumn(bar_width=12, table_column=Column(no_wrap=True, min_width=12)),
            TextColumn("{task.fields[left]}", table_column=Column(no_wrap=True, min_width=11)),
            TextColumn("{task.fields[best]}", table_column=fixed),
            console=self._console,
        )
        self._task = None

    def __call__(self, status) -> None:
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task("trials", total=status.total, left="", best="")
        left = "" if status.remaining_s is None else f"~{_minutes(status.remaining_s)} left"
        best = "none fits yet" if status.best is None else self._describe(status.best)
        last = status.last
        note = f"#{last.number} {last.state}" + (f" ({last.failure.split(':')[0]})" if last.failure else "")
        self._bar.update(self._task, completed=min(status.done, status.total), total=status.total,
                         left=left, best=escape(f"last {note}; best {best}"))

    def __enter__(self) -> SearchProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        if self._task is not None:
            self._bar.stop()


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"
