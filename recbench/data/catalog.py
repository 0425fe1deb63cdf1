"""The dataset catalog (`datasets.yaml`): which names `prepare` accepts and how to get them."""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recbench.core.errors import UnknownNameError

CATALOG_FILE = Path(__file__).with_name("datasets.yaml")
AMAZON_PREFIX = "amazon-"


@dataclass(frozen=True)
class DatasetSpec:
    """One catalog entry."""

    name: str
    source: str
    domain: str
    text: str
    description: str
    options: dict[str, Any] = field(default_factory=dict)
    download: list[dict[str, Any]] = field(default_factory=list)

    def loader(self):
        """The source module's `load(raw_dir, options) -> RawTables` (imported on demand)."""
        module = importlib.import_module(f"recbench.data.sources.{self.source}")
        return module.load


@functools.cache
def catalog() -> dict[str, DatasetSpec]:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    return {
        name: DatasetSpec(
            name=name,
            source=entry["source"],
            domain=entry.get("domain", "any"),
            text=entry.get("text", "title"),
            description=entry.get("description", ""),
            options=dict(entry.get("options") or {}),
            download=list(entry.get("download") or []),
        )
        for name, entry in raw.items()
    }


def get_spec(name: str) -> DatasetSpec:
    """The spec for `name`; `amazon-<category>` works for any category, listed or not."""
    specs = catalog()
    if name in specs:
        return specs[name]
    if name.startswith(AMAZON_PREFIX) and len(name) > len(AMAZON_PREFIX):
        category = name[len(AMAZON_PREFIX):].replace("-", "_").title()
        return DatasetSpec(
            name=name, source="amazon", domain=category.lower(), text="title",
            description=f"Amazon {category} reviews + metadata (2014, 2018 or 2023 layout).",
            options={"category": category},
        )
    raise UnknownNameError("dataset", name, list(specs) + [f"{AMAZON_PREFIX}<category>"])
