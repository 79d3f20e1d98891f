"""The progress callback that long-running functions accept.

A function that takes a while (arena bisection, per-tensor LUT measurement,
verification) takes ``progress=None`` and, when given a callable, calls it as
``progress(description, done, total)``: ``description`` names the work,
``done`` of ``total`` steps are finished. It is called with ``done=0`` before
the first step and with ``done == total`` after the last one. ``total=0``
announces a stage that is not counted (``progress("converting", 0, 0)``), so a
pipeline can report its stages and pass the same callback to the counted work
inside them. The command line turns these calls into console lines and rich
progress bars; a notebook can print them.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "report", "print_progress"]


class Progress(Protocol):
    """``progress(description, done, total)``: ``done`` of ``total`` steps finished
    (``total=0``: a stage announced without a count)."""

    def __call__(self, description: str, done: int, total: int) -> None: ...


def report(progress: Progress | None, description: str, done: int, total: int) -> None:
    """Call ``progress`` when there is one.

    Args:
        progress: the caller's callback, or None.
        description: what is being done.
        done: steps finished.
        total: steps in all.

    Example:
        >>> seen = []
        >>> report(lambda *a: seen.append(a), "measuring", 1, 3)
        >>> report(None, "measuring", 2, 3)
        >>> seen
        [('measuring', 1, 3)]
    """
    if progress is not None:
        progress(description, done, total)


def print_progress(description: str, done: int, total: int) -> None:
    """A `Progress` callback for notebooks and scripts: one printed line per stage.

    Prints ``description`` when a stage is announced (``total == 0``) and
    ``description: done/total`` when counted work finishes.

    Example:
        >>> print_progress("converting", 0, 0)
        converting
        >>> print_progress("measuring the arena", 2, 5)
        >>> print_progress("measuring the arena", 5, 5)
        measuring the arena: 5/5
    """
    if total == 0:
        print(description)
    elif done == total:
        print(f"{description}: {done}/{total}")
