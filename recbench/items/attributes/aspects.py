"""The aspect tables of guided embeddings (paper 003, Appendix C) and how a dataset picks one.

A table is a list of interpretable aspects, each a name and a description that carries its
1-10 anchors, plus the noun the prompt templates use for an item ("movie"). The three tables of
the paper live verbatim in `aspects.yaml` (package data); a dataset's `domain` (its catalog
entry, copied into the manifest) picks one of them; a user-defined table comes from a YAML file
of the same shape (`--set aspects=my_aspects.yaml`)::

    noun: book
    aspects:
      - {name: pace, description: "How fast the plot moves (e.g., 1 for slow, 10 for fast)."}
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from recbench.core.errors import ConfigError

TABLES_FILE = Path(__file__).with_name("aspects.yaml")


@dataclass(frozen=True)
class Aspect:
    name: str
    description: str


@dataclass(frozen=True)
class AspectTable:
    """One domain's aspects, in order (the guided-dimension ablation keeps the first g).

    Attributes:
        name: the table's name (`movies`, `clothing`, `games`, or a file's stem).
        noun: what the prompts call an item ("movie").
        aspects: the aspects.
        source: where it was read from (the package file or a user's YAML).
    """

    name: str
    noun: str
    aspects: tuple[Aspect, ...]
    source: str = ""

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.aspects]

    def first(self, g: int | None) -> AspectTable:
        """The table cut to its first `g` aspects (None: all)."""
        if g is None or g == len(self.aspects):
            return self
        if not 1 <= g <= len(self.aspects):
            raise ConfigError(f"guided_dim {g}: table {self.name!r} has {len(self.aspects)} "
                              "aspects")
        return AspectTable(self.name, self.noun, self.aspects[:g], self.source)

    def as_dict(self) -> dict[str, Any]:
        """What determines the prompts (part of every score cache key)."""
        return {"noun": self.noun, "aspects": [[a.name, a.description] for a in self.aspects]}


def _table(name: str, raw: Any, where: str) -> AspectTable:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `noun` and `aspects`")
    unknown = set(raw) - {"noun", "aspects", "domains"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; expected "
                          "noun, aspects (and domains)")
    noun = raw.get("noun")
    if not isinstance(noun, str) or not noun.strip() or "\n" in noun:
        raise ConfigError(f"{where}: field `noun` must be a one-line word such as 'movie'")
    items = raw.get("aspects")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: field `aspects` must be a non-empty list of "
                          "{name, description}")
    aspects, seen = [], set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"name", "description"}:
            raise ConfigError(f"{where}: aspects[{i}] must have exactly `name` and "
                              "`description`")
        aspect_name, desc = item["name"], item["description"]
        for field, value in (("name", aspect_name), ("description", desc)):
            if not isinstance(value, str) or not value.strip() or "\n" in value:
                raise ConfigError(f"{where}: aspects[{i}].{field} must be non-empty one-line "
                                  "text")
        if aspect_name in seen:
            raise ConfigError(f"{where}: aspect {aspect_name!r} appears twice")
        seen.add(aspect_name)
        aspects.append(Aspect(aspect_name.strip(), desc.strip()))
    return AspectTable(name, noun.strip(), tuple(aspects), where)


@cache
def builtin_tables() -> dict[str, AspectTable]:
    """The paper's three tables (movies, clothing, games)."""
    raw = yaml.safe_load(TABLES_FILE.read_text(encoding="utf-8"))
    return {name: _table(name, entry, f"{TABLES_FILE.name}:{name}") for name, entry in raw.items()}


@cache
def _domains() -> dict[str, str]:
    raw = yaml.safe_load(TABLES_FILE.read_text(encoding="utf-8"))
    return {d: name for name, entry in raw.items() for d in entry.get("domains", [])}


def table_for_domain(domain: str) -> AspectTable:
    """The built-in table of a dataset domain (`movies` -> movies, `games` -> games, ...).

    Raises:
        ConfigError: the domain has no table; names the domains that have one.
    """
    name = _domains().get(str(domain).lower())
    if name is None:
        known = ", ".join(sorted(_domains()))
        raise ConfigError(f"dataset domain {domain!r} has no built-in aspect table (domains "
                          f"with one: {known}); pass --set aspects=movies|clothing|games or "
                          "--set aspects=FILE.yaml")
    return builtin_tables()[name]


def load_table(spec: str | None, domain: str | None = None) -> AspectTable:
    """The aspect table a run uses.

    Args:
        spec: None (the dataset domain's table), a built-in table name, or a YAML file path.
        domain: the dataset's domain (for `spec=None`).

    Raises:
        ConfigError: an unknown name, a missing or malformed file, a domain without a table.
    """
    if spec is None:
        if domain is None:
            raise ConfigError("no aspect table: the dataset has no domain; pass --set "
                              "aspects=movies|clothing|games or --set aspects=FILE.yaml")
        return table_for_domain(domain)
    tables = builtin_tables()
    if spec in tables:
        return tables[spec]
    path = Path(spec).expanduser()
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"aspects={spec!r}: expected one of {', '.join(tables)} or a "
                          ".yaml file")
    if not path.is_file():
        raise ConfigError(f"aspects={spec}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"aspects={spec}: not valid YAML ({type(err).__name__})") from err
    return _table(path.stem, raw, str(path))
