"""Jinja2 templates of the C sources and firmware projects `tflite_export` writes.

One folder per target (``cmake``, ``cortex-m``, ``arduino``, ``zephyr``,
``esp-idf``), ``common`` (the self-test shared by every ``main``) and
``c_sources`` (the model's ``_data``, ``_ops`` and ``_io`` files that
`tflite_export.emit_c_sources` writes). A file
``a/b.txt.j2`` renders to ``a/b.txt`` in the project; names may contain
``{{ident}}``, replaced by the model's C identifier. Templates are read with
`importlib.resources`, so they work from a wheel or a zip too.

Example:
    >>> "cortex-m" in TARGETS and "startup.c.j2" in template_files("cortex-m")
    True
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable

import jinja2

__all__ = ["TARGETS", "FOLDERS", "template_root", "template_files", "read_template", "environment"]

#: Project kinds, one template folder each.
TARGETS = ("cmake", "cortex-m", "arduino", "zephyr", "esp-idf")
#: Every template folder.
FOLDERS = TARGETS + ("common", "c_sources")


def template_root() -> Traversable:
    """The folder that holds every template (a `Traversable`, maybe inside a zip)."""
    return resources.files(__name__)


def template_files(folder: str) -> list[str]:
    """Relative paths of the ``.j2`` files under one template folder, sorted.

    Args:
        folder: a target name or ``"common"``.

    Returns:
        Paths relative to the folder, with ``/`` separators.

    Raises:
        EmitError: no such folder.
    """
    from tflite_export.errors import EmitError  # tflite_export imports this package

    root = template_root().joinpath(folder)
    if folder not in FOLDERS or not root.is_dir():
        raise EmitError(f"expected a template folder in {FOLDERS}. Received folder={folder!r}.")
    found: list[str] = []

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            elif child.name.endswith(".j2"):
                found.append(rel)

    walk(root, "")
    return sorted(found)


def read_template(path: str) -> str:
    """Text of one template, by its path relative to this package.

    Args:
        path: e.g. ``"cmake/CMakeLists.txt.j2"``.

    Returns:
        The template text.

    Raises:
        EmitError: no such template.
    """
    from tflite_export.errors import EmitError  # tflite_export imports this package

    node = template_root().joinpath(*path.split("/"))
    if not path.endswith(".j2") or not node.is_file():
        raise EmitError(f"expected the path of a .j2 template under {FOLDERS}. Received path={path!r}.")
    return node.read_text(encoding="utf-8")


@functools.cache
def environment() -> jinja2.Environment:
    """The Jinja2 environment every template is rendered with (strict, no escaping).

    Undefined variables raise, block tags take their line's newline and leading
    blanks, and a file's final newline is kept, so templates read like the
    files they produce.
    """
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(read_template),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
