"""Progress reporting: the library reports stages and steps; the CLI decides how to show them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


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
        self.console.print(f"[dim]·[/] {message}", highlight=False)

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
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)

    def result(self, message: str) -> None:
        self.console.print(message, highlight=False)
