"""Jinja2 templates of the firmware projects `tflite_export.write_firmware_project` writes.

One folder per target (``cmake``, ``cortex-m``, ``arduino``, ``zephyr``,
``esp-idf``) plus ``common`` (the self-test shared by every ``main``). A file
``a/b.txt.j2`` renders to ``a/b.txt`` in the project; names may contain
``{{ident}}``, replaced by the model's C identifier. Templates are read with
`importlib.resources`, so they work from a wheel or a zip too.

Example:
    >>> "cortex-m" in TARGETS and "startup.c.j2" in template_files("cortex-m")
    True
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

__all__ = ["TARGETS", "template_root", "template_files", "read_template"]

#: Project kinds, one template folder each.
TARGETS = ("cmake", "cortex-m", "arduino", "zephyr", "esp-idf")


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
        KeyError: no such folder.
    """
    root = template_root().joinpath(folder)
    if not root.is_dir():
        raise KeyError(f"no template folder {folder!r}; expected one of {TARGETS + ('common',)}")
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
    """Text of one template, by its path relative to this package (``"cmake/CMakeLists.txt.j2"``)."""
    return template_root().joinpath(*path.split("/")).read_text(encoding="utf-8")
