"""Progress reporting: the library reports stages and steps; the CLI decides how to show them.

Messages are text, not Rich markup: paths, names and data values in them print literally
(`printable`). A message may start with one style label such as ``[green]done[/]`` or
``[yellow]note:[/]``; that label is the only markup Rich sees.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_LABEL = re.compile(r"^\[(?:bold |dim )?(?:green|yellow|red|cyan|bold|dim)\][\w :.!-]*\[/\]")
# Bidirectional overrides reorder what a terminal shows; treat them like control bytes.
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object) -> str:
    """`text` made safe for a Rich console: markup escaped, control bytes shown as escapes.

    A ``[/]`` or ``[red]`` in a path, a name or a data value then prints literally instead of
    raising a MarkupError or restyling the line, and bytes such as ESC from a garbage raw file
    never reach the terminal (they print as ``\\x1b``). Newlines and tabs are kept.
    """
    from rich.markup import escape

    return escape(escape_controls(text))


def escape_controls(text: object) -> str:
    """`text` with control bytes and bidi overrides shown as ``\\xNN`` / ``\\uNNNN`` escapes.

    For plain-text outputs (log lines) that no Rich console renders; newlines and tabs stay.
    """
    out = []
    for ch in str(text):
        if ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch) == "Cc" or ch in _BIDI:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def render(message: str) -> str:
    """Rich markup for a reporter message: its leading style label kept, the rest `printable`."""
    label = _LABEL.match(message)
    head = label.group(0) if label else ""
    return head + printable(message[len(head):])


class Reporter:
    """Silent reporter (library default, tests). The CLI passes a Rich-backed subclass."""

    def stage(self, message: str) -> None:
        """A new phase starts (loading, training, evaluating, timing)."""

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        """Iterate `items`, showing progress towards `total`."""
        yield from items

    def result(self, message: str) -> None:
        """A finished unit of work worth showing (a record written, a run skipped)."""


class RichReporter(Reporter):
    """Rich progress bars and status lines on a console."""

    def __init__(self, console):
        self.console = console

    def stage(self, message: str) -> None:
        self.console.print(f"[dim]·[/] {render(message)}", highlight=False)

    def track(self, items, total, description):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True,
                      disable=not self.console.is_terminal) as bar:
            task = bar.add_task(printable(description), total=total)
            for item in items:
                yield item
                bar.advance(task)

    def result(self, message: str) -> None:
        self.console.print(render(message), highlight=False)
