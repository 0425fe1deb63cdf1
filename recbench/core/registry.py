"""A lazy string registry: entries point at "module:attr" and import only on first use.

This keeps `recbench --help` and `recbench ls` free of heavy imports (torch, transformers).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from recbench.core.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One registered name: where its object lives and what `ls` shows about it."""

    name: str
    target: str  # "package.module:attribute"
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Maps names to lazily imported objects of one kind (datasets, models, groups, metrics)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, target: str, **meta: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        if ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: target must be 'module:attr', got {target!r}")
        self._entries[name] = Entry(name, target, dict(meta))

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def load(self, name: str) -> T:
        """Import and return the object registered under `name`."""
        module_name, attr = self.entry(name).target.split(":", 1)
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
