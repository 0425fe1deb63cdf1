"""The dataset catalog (`datasets.yaml`): which names `prepare` accepts and how to get them."""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recbench.core.errors import DataError, UnknownNameError, quote
from recbench.core.names import check_name

CATALOG_FILE = Path(__file__).with_name("datasets.yaml")
AMAZON_PREFIX = "amazon-"
# The categories of the public Amazon review dumps (2014 SNAP, 2018 Ni et al., 2023 McAuley
# lab). `amazon-<category>` is accepted for these only, so a typo (`amazon-beuty`) gets
# close-match help instead of silently becoming a new dataset; any other category needs an
# explicit `-o category=NAME`.
AMAZON_CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Amazon_Instant_Video", "Apps_for_Android", "Appliances",
    "Arts_Crafts_and_Sewing", "Automotive", "Baby", "Baby_Products", "Beauty",
    "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories",
    "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics", "Gift_Cards",
    "Grocery_and_Gourmet_Food", "Handmade_Products", "Health_and_Household",
    "Health_and_Personal_Care", "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store",
    "Luxury_Beauty", "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments",
    "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies", "Prime_Pantry", "Software",
    "Sports_and_Outdoors", "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games",
    "Video_Games",
)


def amazon_name(category: str) -> str:
    """The dataset name of an Amazon category: `Video_Games` -> `amazon-video-games`."""
    return AMAZON_PREFIX + category.lower().replace("_", "-")


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


def _amazon_names() -> dict[str, str]:
    return {amazon_name(c): c for c in AMAZON_CATEGORIES}


def known_names() -> list[str]:
    """Every name `get_spec` accepts without options: the catalog and the Amazon categories."""
    return sorted(set(catalog()) | set(_amazon_names()))


def get_spec(name: str, options: dict[str, Any] | None = None) -> DatasetSpec:
    """The spec for `name` (a safe name, see `recbench.core.names`).

    Besides the catalog entries, `amazon-<category>` works for every category in
    `AMAZON_CATEGORIES` (e.g. `amazon-video-games`), and for any other category only when
    `options` names it explicitly (`-o category=NAME`).
    """
    check_name(name, "dataset name")
    specs = catalog()
    if name in specs:
        return specs[name]
    known = _amazon_names()
    explicit = (options or {}).get("category")
    if name.startswith(AMAZON_PREFIX) and (name in known or explicit):
        category = str(explicit) if explicit else known[name]
        return DatasetSpec(
            name=name, source="amazon", domain=category.lower(), text="title",
            description=f"Amazon {category} reviews + metadata (2014, 2018 or 2023 layout).",
            options={"category": category},
        )
    choices = known_names()
    hint = (" (another Amazon category needs -o category=NAME)"
            if name.startswith(AMAZON_PREFIX) else "")
    raise UnknownNameError("dataset", name, choices, hint=hint,
                           shown=sorted(specs) + [f"{AMAZON_PREFIX}<category>"])


def not_prepared_error(name: str, size: str, home: Path, prepared: Iterable[str]) -> DataError:
    """The error for a dataset that is not prepared (at `size`), pointing at what was meant.

    A catalog name gets the `prepare` command to run; any other name (a typo such as `mnd`)
    gets the close matches among the prepared and catalog names instead of a `prepare`
    command that could only fail.
    """
    prepared = sorted(set(prepared))
    if name in known_names():
        return DataError(f"dataset {name!r} ({size}) is not prepared under {home}: run "
                         f"`recbench prepare {name} --size {size}` first")
    close = difflib.get_close_matches(name, prepared + known_names(), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in dict.fromkeys(close))}?" if close else ""
    listing = ", ".join(prepared) if prepared else "none"
    return DataError(f"dataset {quote(name)} is neither prepared under {home} nor a catalog "
                     f"name.{hint} Prepared: {listing}")
