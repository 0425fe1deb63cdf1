"""GRID.yaml: the cartesian product of groups x models x datasets x seeds x setting lists.

    name: g-small                 # optional (default: the file name); names the sweep's folder
    groups: [G]
    models: [SASRec-3L, GRU4Rec, SKNN]
    datasets: [synthetic]
    seeds: [0, 1, 2]
    size: tiny
    tasks: [seq]                  # optional: only these tasks (default: every task a cell covers)
    settings: {latency_samples: 200}          # the same `--set key=value` for every cell
    vary: {lr: [0.001, 0.0003]}               # setting lists: one cell per combination
    config: base.yaml             # optional --config file, relative to the grid file
    resources:                    # first matching pattern wins (fnmatch on model or group/model)
      default: {cpus: 1}
      "SASRec*": {cpus: 1, gpus: 0.5}
      "llama*": {cpus: 4, gpus: 1}

A model that is not in a listed group is simply not paired with it (so `groups: [G, J]` with
`models: [SASRec-3L, llama3-8b]` gives G/SASRec-3L and J/llama3-8b); a model in none of them is
an error with close matches. Each cell becomes one ordinary `RunRequest` for one dataset; the
sweep then plans it into its (dataset, task) keys, exactly as `recbench run` would.
"""

from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recbench.core.config import read_yaml_mapping, validate_as
from recbench.core.errors import ConfigError, UnknownNameError
from recbench.core.names import check_name
from recbench.runner import RunRequest

Scalar = Union[bool, int, float, str]
Task = Literal["ctr", "seq"]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Resources(_Closed):
    """What one run of a cell reserves: whole CPUs (its thread count) and GPUs (fractions pack
    several small runs on one GPU; their memory is not isolated)."""

    cpus: int = Field(1, ge=1)
    gpus: float = Field(0.0, ge=0)

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(f"a GPU fraction is below 1; above 1 give whole GPUs, got {value}")
        return value


class GridFile(_Closed):
    name: str | None = None
    groups: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    size: str = "small"
    tasks: list[Task] | None = None
    device: str = "cpu"
    smoke: bool = False
    config: str | None = None
    settings: dict[str, Scalar] = Field(default_factory=dict)
    vary: dict[str, list[Scalar]] = Field(default_factory=dict)
    resources: dict[str, Resources] = Field(default_factory=dict)

    @field_validator("vary")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"vary.{key}: give at least one value")
        return value


@dataclass(frozen=True)
class Grid:
    """A loaded grid file: its name, where it lives and its checked contents."""

    name: str
    path: Path | None
    spec: GridFile


@dataclass(frozen=True)
class Cell:
    """One cell of the product: an ordinary request for one dataset, and what it reserves."""

    request: RunRequest
    resources: Resources
    tasks: tuple[str, ...] | None = None  # only these of the cell's tasks (None: all it covers)


def load_grid(path: Path) -> Grid:
    """Read and check GRID.yaml (unknown keys and bad values fail here, naming the field)."""
    raw = read_yaml_mapping(path, "grid", "a mapping with groups, models, datasets, ...")
    return grid_from_dict(raw, path)


def grid_from_dict(raw: dict, path: Path | None = None) -> Grid:
    where = str(path) if path else "grid"
    spec = validate_as(GridFile, raw, where)
    name = spec.name or (path.stem if path else "grid")
    check_name(name, f"grid name in {where}")
    for dataset in spec.datasets:
        check_name(dataset, f"dataset name in {where}")
    return Grid(name, path, spec)


def resources_for(spec: GridFile, group: str, model: str) -> Resources:
    """The first pattern (in file order, `default` last) matching `model` or `group/model`."""
    for pattern, res in spec.resources.items():
        if pattern != "default" and (fnmatch.fnmatchcase(model, pattern)
                                     or fnmatch.fnmatchcase(f"{group}/{model}", pattern)):
            return res
    return spec.resources.get("default", Resources())


def expand(grid: Grid, home: Path | None = None, overwrite: str = "never") -> list[Cell]:
    """The grid's cells, in file order: (group, model) pairs x datasets x seeds x `vary`."""
    from recbench.models.registry import resolve_model

    spec = grid.spec
    config_file = None
    if spec.config is not None:
        base = grid.path.parent if grid.path else Path.cwd()
        config_file = (base / spec.config)
        if not config_file.is_file():
            raise ConfigError(f"{grid.path or 'grid'}: config {spec.config}: file not found")
    pairs = []
    for model in spec.models:
        found, first_error = [], None
        for group in spec.groups:
            try:
                resolve_model(group, model)
            except UnknownNameError as exc:
                first_error = first_error or exc
                continue
            found.append(group)
        if not found:
            raise ConfigError(f"{grid.path or 'grid'}: model {model!r} is in none of the groups "
                              f"{', '.join(spec.groups)} ({first_error})")
        pairs += [(group, model) for group in found]
    pairs.sort(key=lambda gm: spec.groups.index(gm[0]))
    keys = list(spec.vary)
    combos = [dict(zip(keys, values, strict=True))
              for values in itertools.product(*spec.vary.values())]
    cells = []
    for (group, model), dataset, seed, combo in itertools.product(pairs, spec.datasets,
                                                                  spec.seeds, combos):
        req = RunRequest(group=group, model=model, datasets=[dataset], config_file=config_file,
                         sets={**spec.settings, **combo}, seed=seed, size=spec.size,
                         device=spec.device, overwrite=overwrite, smoke=spec.smoke, home=home)
        cells.append(Cell(req, resources_for(spec, group, model),
                          tuple(spec.tasks) if spec.tasks else None))
    return cells
