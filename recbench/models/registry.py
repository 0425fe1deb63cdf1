"""Every runnable model, registered lazily by string with the groups it belongs to.

`recbench ls models` reads this table without importing any model module (no torch).
"""

from __future__ import annotations

from recbench.core.errors import UnknownNameError
from recbench.core.registry import Registry
from recbench.models.base import Recommender

MODELS: Registry[type[Recommender]] = Registry("model")

# name, target, groups, tasks, description
_TABLE = [
    ("MostPopular", "recbench.models.baselines:MostPopular", ("baseline",), ("ctr", "seq"),
     "Training popularity of the item; the same ranking for every user."),
    ("Random", "recbench.models.baselines:Random", ("baseline",), ("ctr", "seq"),
     "Seeded uniform random scores."),
]
_FAMILIES = ("recbench.models.ctr", "recbench.models.seq")


def _family_tables():
    import importlib

    for module in _FAMILIES:
        yield from importlib.import_module(module).REGISTRY


for _name, _target, _groups, _tasks, _desc in [*_TABLE, *_family_tables()]:
    MODELS.add(_name, _target, groups=_groups, tasks=_tasks, description=_desc)


def models_in_group(group: str) -> list[str]:
    return [e.name for e in MODELS if group in e.meta["groups"]]


def resolve_model(group: str, name: str) -> str:
    """The registered model name that `name` means within `group` (with close-match help)."""
    in_group = models_in_group(group)
    if name in in_group:
        return name
    lowered = {n.lower(): n for n in in_group}
    if name.lower() in lowered:
        return lowered[name.lower()]
    if not in_group:
        raise UnknownNameError("group with runnable models", group,
                               sorted({g for e in MODELS for g in e.meta["groups"]}))
    raise UnknownNameError(f"model in group {group}", name, in_group)
