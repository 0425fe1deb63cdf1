"""Every runnable model, registered lazily by string with the groups it belongs to.

`recbench ls models` reads this table without importing any model module (no torch).

Each model family (`recbench.models.ctr`, `.seq`, `.llm`) exports `REGISTRY`, a list of
(name, "module:Class", groups, tasks, description), and may export `CONSTRUCTIONS`: for the LLM
groups a model is "construction x backbone" (RecBench: P5-<backbone> in D and I, <backbone> in E,
SID-<backbone> in F and J), so a backbone alias or hub id given as `--model` means that group's
construction: group -> (registered construction name, name prefix, name suffix, setting that
receives the backbone).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from recbench.core.errors import UnknownNameError
from recbench.core.registry import Registry
from recbench.models.base import Recommender

MODELS: Registry[type[Recommender]] = Registry("model")
# Add "recbench.models.llm" once that family registers models (issue: LLM recommenders).
FAMILIES = ("recbench.models.ctr", "recbench.models.seq", "recbench.models.llm",
            "recbench.models.knn", "recbench.models.hybrid")

_TABLE = [
    ("MostPopular", "recbench.models.baselines:MostPopular", ("baseline",), ("ctr", "seq"),
     "Training popularity of the item; the same ranking for every user."),
    ("Random", "recbench.models.baselines:Random", ("baseline",), ("ctr", "seq"),
     "Seeded uniform random scores."),
]


@dataclass(frozen=True)
class Construction:
    """How a group builds a model around a backbone: `P5-<backbone>`, `SID-<backbone>-CBS`."""

    model: str  # the registered model that implements the construction
    prefix: str = ""
    suffix: str = ""
    setting: str = "backbone"
    implied: dict[str, Any] = field(default_factory=dict)  # extra settings the name implies
    # True: only `<prefix><backbone>` matches (a bare backbone means another construction,
    # e.g. `SID-x` is J without CBS while a bare `x` is SID-x-CBS); False: the prefix is optional
    require_prefix: bool = False


CONSTRUCTIONS: dict[str, list[Construction]] = {}


def _load_families() -> None:
    for module_name in FAMILIES:
        module = importlib.import_module(module_name)
        for name, target, groups, tasks, desc in getattr(module, "REGISTRY", []):
            MODELS.add(name, target, groups=groups, tasks=tasks, description=desc)
        for group, constructions in getattr(module, "CONSTRUCTIONS", {}).items():
            CONSTRUCTIONS.setdefault(group, []).extend(constructions)


for _name, _target, _groups, _tasks, _desc in _TABLE:
    MODELS.add(_name, _target, groups=_groups, tasks=_tasks, description=_desc)
_load_families()


def models_in_group(group: str) -> list[str]:
    return [e.name for e in MODELS if group in e.meta["groups"]]


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # the registered model
    implied: dict[str, Any]  # settings implied by the model name (e.g. the backbone)


def resolve_model(group: str, name: str) -> ResolvedModel:
    """What `--model name` means within `group` (with close-match help when it means nothing)."""
    in_group = models_in_group(group)
    if name in in_group:
        return ResolvedModel(name, {})
    lowered = {n.lower(): n for n in in_group}
    if name.lower() in lowered:
        return ResolvedModel(lowered[name.lower()], {})
    for c in CONSTRUCTIONS.get(group, []):  # in order: the first that fits wins
        if c.require_prefix and not name.startswith(c.prefix):
            continue
        backbone = name
        if c.prefix and backbone.startswith(c.prefix):
            backbone = backbone[len(c.prefix):]
        if c.suffix:
            if not backbone.endswith(c.suffix):
                continue
            backbone = backbone[: -len(c.suffix)]
        if _is_backbone(backbone):
            return ResolvedModel(c.model, {c.setting: backbone, **c.implied})
    if not in_group:
        raise UnknownNameError("group with runnable models", group,
                               sorted({g for e in MODELS for g in e.meta["groups"]}))
    hint = ""
    if group in CONSTRUCTIONS:
        hint = " (or a backbone alias from `recbench ls backbones`, a hub id, or a local path)"
    raise UnknownNameError(f"model in group {group}{hint}", name, in_group)


def _is_backbone(name: str) -> bool:
    """A catalog alias, `hf:ID`, `openai:MODEL`, an `org/name` hub id, or a local directory."""
    from recbench.models.llm import catalog

    return catalog.is_backbone(name)
