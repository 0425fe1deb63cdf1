"""`recbench prepare`: raw files -> the frozen dataset contract, written atomically."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

import recbench
from recbench.core import paths
from recbench.core.atomic import atomic_dir, write_json
from recbench.core.errors import AlreadyExistsError, DataError, MissingRawFilesError
from recbench.core.hashing import sha256_file, stable_hash
from recbench.data.catalog import DatasetSpec, get_spec
from recbench.data.protocol import (
    MAX_HISTORY,
    MAX_REAL_NEGATIVES,
    N_SAMPLED_NEGATIVES,
    PROTOCOL_VERSION,
    SIZES,
    VALID_FRACTION,
    PreparedTables,
    build_splits,
)
from recbench.data.rawfiles import file_sha256

log = logging.getLogger(__name__)
Stage = Callable[[str], None]
SPLIT_FILES = ("ctr/train", "ctr/valid", "ctr/test", "seq/train", "seq/valid", "seq/test",
               "seq/test_negatives")


@dataclass
class PrepareResult:
    path: Path
    manifest: dict[str, Any]


def prepared_path(home: Path, name: str, size: str) -> Path:
    """Where `prepare NAME --size SIZE` writes: $RECBENCH_HOME/datasets/NAME/SIZE."""
    return paths.dataset_dir(home, name) / size


def prepare(
    name: str,
    *,
    raw: Path | None = None,
    size: str = "small",
    seed: int = 0,
    home: Path | None = None,
    force: bool = False,
    options: dict[str, Any] | None = None,
    output_name: str | None = None,
    stage: Stage = lambda _msg: None,
    show_progress: bool = True,
) -> PrepareResult:
    """Prepare dataset `name` from `raw` (or its official download) into the dataset contract.

    Args:
        name: catalog name (see `recbench ls datasets`).
        raw: folder with the raw files; None downloads the official files (or generates them,
            for `synthetic`).
        size: tiny | small | paper (split sizes, see `recbench.data.protocol.SIZES`).
        seed: seeds every sampling step.
        home: the recbench home ($RECBENCH_HOME, default ./.recbench).
        force: replace an existing prepared dataset.
        options: source options (layout, column names, ...) over the catalog's defaults.
        output_name: the prepared dataset's name, default `name` (for custom csv/recbole data).
        stage: called with a short description as each stage starts (the CLI shows it).
        show_progress: draw progress bars (downloads, generation).
    """
    if size not in SIZES:
        raise DataError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    spec = get_spec(name)
    home = paths.home(home)
    out_name = output_name or name
    target = prepared_path(home, out_name, size)
    if target.exists() and not force:
        raise AlreadyExistsError(f"{target} already exists; pass --force to rebuild it")
    opts = {**spec.options, **(options or {})}

    raw_dir = _locate_raw(spec, raw, home, size, seed, stage, show_progress)
    stage(f"reading raw files from {raw_dir}")
    tables = spec.loader()(raw_dir, opts)
    stage("building splits")
    prepared = build_splits(tables, size=size, seed=seed)

    stage(f"writing {target}")
    with atomic_dir(target, replace=force) as tmp:
        files = _write_tables(tmp, prepared)
        manifest = _manifest(spec, out_name, size, seed, opts, tables.source_files, raw_dir,
                             files, prepared)
        write_json(tmp / "manifest.json", manifest)
    return PrepareResult(target, manifest)


def _locate_raw(spec: DatasetSpec, raw, home, size, seed, stage, show_progress) -> Path:
    if raw is not None:
        raw = Path(raw)
        if not raw.is_dir():
            raise MissingRawFilesError(f"--raw {raw}: no such folder")
        return raw
    source = importlib.import_module(f"recbench.data.sources.{spec.source}")
    if hasattr(source, "generate"):
        # A generated dataset writes its raw files first, then goes through the same loader.
        raw_dir = paths.raw_dir(home, spec.name) / f"{size}-seed{seed}"
        if not (raw_dir / "DONE").exists():
            stage(f"generating raw files in {raw_dir}")
            source.generate(raw_dir, size=size, seed=seed, show_progress=show_progress)
        return raw_dir
    from recbench.data import download

    raw_dir = paths.raw_dir(home, spec.name)
    stage(f"downloading the official files to {raw_dir}")
    download.fetch(spec.name, spec.download, raw_dir, show_progress=show_progress)
    return raw_dir


def _write_tables(root: Path, prepared: PreparedTables) -> dict[str, str]:
    (root / "ctr").mkdir()
    (root / "seq").mkdir()
    frames = {"items": prepared.items}
    frames.update({f"ctr/{k}": v for k, v in prepared.ctr.items()})
    frames.update({f"seq/{k}": v for k, v in prepared.seq.items()})
    frames["seq/test_negatives"] = prepared.seq_test_negatives
    digests = {}
    for rel, frame in frames.items():
        path = root / f"{rel}.parquet"
        frame.write_parquet(path, compression="zstd", statistics=True)
        digests[f"{rel}.parquet"] = sha256_file(path)
    return digests


def _manifest(spec, name, size, seed, options, source_files, raw_dir, files, prepared) -> dict:
    raw_files = []
    for path in sorted(set(source_files)):
        path = Path(path)
        rel = path.relative_to(raw_dir) if path.is_relative_to(raw_dir) else path.name
        raw_files.append({"file": str(rel), "bytes": path.stat().st_size,
                          "sha256": file_sha256(path)})
    params = {"protocol": PROTOCOL_VERSION, "size": size, "seed": seed, "options": options,
              "max_history": MAX_HISTORY, "sampled_negatives": N_SAMPLED_NEGATIVES,
              "max_real_negatives": MAX_REAL_NEGATIVES, "valid_fraction": VALID_FRACTION}
    return {
        "name": name,
        "catalog_name": spec.name,
        "source": spec.source,
        "domain": spec.domain,
        "text_attribute": spec.text,
        "protocol_version": PROTOCOL_VERSION,
        "parameters": params,
        "raw_files": raw_files,
        "files": files,
        # The dataset version: changes exactly when the Parquet content does.
        "content_hash": stable_hash(files),
        "stats": prepared.stats,
        "scaled_down": any("scaled down" in n for n in prepared.notes),
        "notes": prepared.notes,
        "recbench_version": recbench.__version__,
        "prepared_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def load_manifest(home: Path, name: str, size: str) -> dict[str, Any]:
    """The manifest of a prepared dataset, with a clear error naming the prepare command."""
    import json

    path = prepared_path(home, name, size) / "manifest.json"
    if not path.is_file():
        raise DataError(f"dataset {name!r} ({size}) is not prepared under {home}: run "
                        f"`recbench prepare {name} --size {size}` first")
    return json.loads(path.read_text())


def read_split(home: Path, name: str, size: str, rel: str) -> pl.DataFrame:
    """Read one split file, e.g. rel="ctr/test"."""
    if rel not in SPLIT_FILES and rel != "items":
        raise DataError(f"unknown split {rel!r}; choose one of items, {', '.join(SPLIT_FILES)}")
    path = prepared_path(home, name, size) / f"{rel}.parquet"
    if not path.is_file():
        raise DataError(f"{path} is missing: re-run `recbench prepare {name} --size {size} "
                        "--force`")
    return pl.read_parquet(path)
