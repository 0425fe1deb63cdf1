"""The safe-name rule: names from the command line, suites or data never become arbitrary paths.

Dataset, suite, protocol and ``--as`` output names are checked strictly with `check_name`
at the boundary (CLI and library entry points). Free-form names that legitimately contain
``:`` or ``/`` (model names such as ``hf:ORG/NAME`` or a local folder) are mapped to one
safe path component with `path_component`. Wherever a path is built from a name, `within`
joins it under its root and refuses anything that would land outside.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from recbench.core.errors import ConfigError
from recbench.core.errors import quote as _quote

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")


def check_name(value: str, what: str) -> str:
    """Return `value` if it is a safe name, else raise ConfigError naming `what`.

    A safe name starts with a letter or digit, has at most 128 characters from
    ``A-Z a-z 0-9 . _ -`` and is not ``.`` or ``..``, so it can never be an absolute path,
    climb out of its folder or hide as a dot-file.

    Args:
        value: the name to check.
        what: what the name is, for the message (e.g. "dataset name", "--as").
    """
    if not isinstance(value, str) or not _NAME.match(value) or value in (".", ".."):
        raise ConfigError(
            f"invalid {what} {_quote(value)}: expected 1-128 characters from A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit (no '/', no '..')")
    return value


def path_component(value: str) -> str:
    """Map a free-form name (e.g. ``hf:ORG/NAME``) to one safe path component.

    Every character outside ``A-Z a-z 0-9 . _ -`` becomes ``_`` and a leading ``.`` becomes
    ``_``, so the result is never empty, ``.``, ``..``, absolute or hidden. Names that are
    already safe map to themselves. Long names are cut to 128 characters.
    """
    mapped = _UNSAFE_CHAR.sub("_", str(value))[:128]
    if not mapped or mapped.startswith("."):
        mapped = "_" + mapped[1:] if mapped else "_"
    return mapped


def within(root: Path, *parts: str) -> Path:
    """Join `parts` under `root` and raise ConfigError if the result would lie outside `root`.

    The check is lexical (no absolute part, no ``..`` escaping) and, for the folders between
    `root` and the last component, also on the resolved path, so a planted symlinked folder
    cannot redirect a write. The last component itself may be a symlink: it is the user's own
    choice (e.g. a dataset kept on another disk), and recbench never deletes through a link.
    """
    root = Path(root)
    joined = root.joinpath(*parts)
    base = os.path.normpath(os.path.abspath(root))
    target = os.path.normpath(os.path.abspath(joined))
    if any(os.path.isabs(p) for p in parts) or not _inside(target, base) or target == base:
        raise ConfigError(f"path {_quote(os.path.join(*parts) if parts else '')} escapes {root}")
    parent = Path(target).parent
    if not _inside(os.path.realpath(parent), os.path.realpath(base)):
        raise ConfigError(f"path {_quote(str(joined))} escapes {root} through a symbolic link")
    return joined


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)
