"""Where recbench keeps prepared datasets, caches and results ($RECBENCH_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

from recbench.core.names import check_name, within

DEFAULT_HOME = Path(".recbench")


def home(override: str | os.PathLike[str] | None = None) -> Path:
    """The recbench home: the explicit override, else $RECBENCH_HOME, else ./.recbench."""
    if override is not None:
        return Path(override)
    env = os.environ.get("RECBENCH_HOME")
    return Path(env) if env else DEFAULT_HOME


def datasets_dir(root: Path) -> Path:
    return root / "datasets"


def dataset_dir(root: Path, name: str) -> Path:
    """A prepared dataset's folder; `name` must be a safe name (`recbench.core.names`)."""
    return within(datasets_dir(root), check_name(name, "dataset name"))


def prepared_datasets(root: Path) -> list[str]:
    """The names of the dataset folders under `root` that hold at least one prepared split
    (any protocol and size), sorted."""
    return sorted(p.name for p in datasets_dir(root).glob("*")
                  if p.is_dir() and next(p.rglob("manifest.json"), None) is not None)


def raw_dir(root: Path, name: str) -> Path:
    """Where downloads of a dataset's official files land; `name` must be a safe name."""
    return within(root / "raw", check_name(name, "dataset name"))


def results_dir(root: Path) -> Path:
    return root / "results"


def cache_dir(root: Path) -> Path:
    return root / "cache"


def shared_data_dir() -> Path | None:
    """The real-data folder for development: $RECBENCH_SHARED_DATA or ../shared/data, if present."""
    env = os.environ.get("RECBENCH_SHARED_DATA")
    candidate = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
