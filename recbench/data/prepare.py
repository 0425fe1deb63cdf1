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
from recbench.core.names import check_name
from recbench.data import verify
from recbench.data.catalog import DatasetSpec, get_spec
from recbench.data.protocols import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    SIZE_NAMES,
    PreparedTables,
    get_protocol,
    protocol_config,
    protocol_name,
)
from recbench.data.rawfiles import file_sha256

log = logging.getLogger(__name__)
Stage = Callable[[str], None]
SPLIT_FILES = ("ctr/train", "ctr/valid", "ctr/test", "seq/train", "seq/valid", "seq/test",
               "seq/test_negatives", "seq/valid_negatives",
               *(f"seq/folds/fold{k}/{s}" for k in (1, 2, 3) for s in ("train", "valid")))


@dataclass
class PrepareResult:
    path: Path
    manifest: dict[str, Any]


def prepared_path(home: Path, name: str, size: str, protocol: str) -> Path:
    """Where `prepare NAME --protocol P --size S` writes: $RECBENCH_HOME/datasets/NAME/P/S.

    `protocol` is a protocol's name or family ("loo-v1" or "loo"); the folder is the name.
    """
    if size not in SIZE_NAMES:
        raise DataError(f"unknown size {size!r}; choose one of {', '.join(SIZE_NAMES)}")
    return paths.dataset_dir(home, name) / protocol_name(protocol) / size


def prepared_protocols(home: Path, name: str, size: str) -> list[str]:
    """The protocols dataset `name` is prepared with at `size` (sorted names)."""
    folder = paths.dataset_dir(home, name)
    return [p for p in PROTOCOLS.names() if (folder / p / size / "manifest.json").is_file()]


def resolve_protocol(home: Path, name: str, size: str, protocol: str | None) -> str:
    """The protocol to use for dataset `name` at `size`: the named one, else the only prepared.

    Raises:
        DataError: one line naming the `recbench prepare` command when the named protocol (or
            any) is not prepared, listing the prepared ones when several are and none is
            named, and naming the re-prepare command for a dataset in the old layout.
    """
    found = prepared_protocols(home, name, size)
    if protocol is not None:
        wanted = protocol_name(protocol)
        if wanted in found:
            return wanted
        also = f" (prepared with: {', '.join(found)})" if found else ""
        family = PROTOCOLS.entry(wanted).meta["family"]
        raise DataError(f"dataset {name!r} ({size}) is not prepared with protocol {wanted} "
                        f"under {home}{also}: run `recbench prepare {name} --protocol {family} "
                        f"--size {size}` first")
    if len(found) == 1:
        return found[0]
    if found:
        raise DataError(f"dataset {name!r} ({size}) is prepared with several protocols "
                        f"({', '.join(found)}): pass --protocol with one of them")
    check_old_layout(home, name, size)
    raise DataError(f"dataset {name!r} ({size}) is not prepared under {home}: run "
                    f"`recbench prepare {name} --size {size}` first")


def check_old_layout(home: Path, name: str, size: str) -> None:
    """A dataset prepared before protocols (datasets/NAME/SIZE) gets the re-prepare command."""
    import json

    old = paths.dataset_dir(home, name) / size / "manifest.json"
    if not old.is_file():
        return
    try:
        manifest = json.loads(old.read_text())
    except (OSError, ValueError):
        manifest = None
    command = verify.rebuild_command(name, size, "recbench", manifest)
    raise DataError(f"{old.parent} is in the layout before protocols (datasets/NAME/SIZE); "
                    f"re-prepare it: `{command}`, then delete {old.parent}")


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
    protocol: str = DEFAULT_PROTOCOL,
    protocol_options: dict[str, Any] | None = None,
    stage: Stage = lambda _msg: None,
    show_progress: bool = True,
) -> PrepareResult:
    """Prepare dataset `name` from `raw` (or its official download) into the dataset contract.

    Args:
        name: catalog name (see `recbench ls datasets`).
        raw: folder with the raw files; None downloads the official files (or generates them,
            for `synthetic`).
        size: tiny | small | paper (what each means is the protocol's, e.g.
            `recbench.data.protocols.recbench_v1.SIZES`).
        seed: seeds every sampling step.
        home: the recbench home ($RECBENCH_HOME, default ./.recbench).
        force: replace an existing prepared dataset.
        options: source options (layout, column names, ...) over the catalog's defaults.
        output_name: the prepared dataset's name, default `name` (for custom csv/recbole data).
        protocol: the evaluation protocol's name or family (`recbench.data.protocols`).
        protocol_options: the protocol's options (validated by its closed config).
        stage: called with a short description as each stage starts (the CLI shows it).
        show_progress: draw progress bars (downloads, generation).
    """
    if size not in SIZE_NAMES:
        raise DataError(f"unknown size {size!r}; choose one of {', '.join(SIZE_NAMES)}")
    # Options are checked before any raw file is read: a typo fails at once.
    proto = get_protocol(protocol)
    proto_config = protocol_config(proto, protocol_options)
    # Names become folders: checked (recbench.core.names) before anything is read or written.
    check_name(name, "dataset name")
    out_name = check_name(output_name, "output name (--as)") if output_name else name
    spec = get_spec(name, options)
    home = paths.home(home)
    target = prepared_path(home, out_name, size, proto.name)
    if target.exists() and not force:
        raise AlreadyExistsError(f"{target} already exists; pass --force to rebuild it")
    opts = {**spec.options, **(options or {})}

    raw_dir = _locate_raw(spec, raw, home, size, seed, stage, show_progress)
    stage(f"reading raw files from {raw_dir}")
    tables = spec.loader()(raw_dir, opts)
    stage("building splits")
    prepared = proto.build(tables, size, seed, proto_config)

    stage(f"writing {target}")
    with atomic_dir(target, replace=force) as tmp:
        files = _write_tables(tmp, prepared)
        manifest = _manifest(spec, out_name, size, seed, opts, tables.source_files, raw_dir,
                             files, prepared, proto, proto_config)
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
    frames = {"items": prepared.items}
    frames.update({f"ctr/{k}": v for k, v in prepared.ctr.items()})
    frames.update({f"seq/{k}": v for k, v in prepared.seq.items()})
    frames["seq/test_negatives"] = prepared.seq_test_negatives
    frames.update(prepared.extra)
    digests = {}
    for rel, frame in frames.items():
        path = root / f"{rel}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", statistics=True)
        digests[f"{rel}.parquet"] = sha256_file(path)
    return digests


def _manifest(spec, name, size, seed, options, source_files, raw_dir, files, prepared, proto,
              proto_config) -> dict:
    raw_files = []
    for path in sorted(set(source_files)):
        path = Path(path)
        rel = path.relative_to(raw_dir) if path.is_relative_to(raw_dir) else path.name
        raw_files.append({"file": str(rel), "bytes": path.stat().st_size,
                          "sha256": file_sha256(path)})
    described = dict(prepared.protocol)
    params = {"protocol": proto.name, "size": size, "seed": seed, "options": options,
              **described.pop("parameters", {})}
    return {
        "name": name,
        "catalog_name": spec.name,
        "source": spec.source,
        "domain": spec.domain,
        "text_attribute": spec.text,
        # The protocol's name and version (records copy it; leaderboards never mix two).
        "protocol_version": proto.name,
        "parameters": params,
        "protocol": {"name": proto.name, "family": proto.family, "tasks": list(proto.tasks),
                     "options": proto_config.model_dump(mode="json"), **described},
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


def load_manifest(home: Path, name: str, size: str, protocol: str | None = None
                  ) -> dict[str, Any]:
    """The manifest of a prepared dataset, with a clear error naming the prepare command.

    `protocol` None means the dataset's only prepared protocol (`resolve_protocol`).
    """
    protocol = resolve_protocol(home, name, size, protocol)
    path = prepared_path(home, name, size, protocol) / "manifest.json"
    return verify.read_manifest(path, verify.rebuild_command(name, size, protocol))


def read_split(home: Path, name: str, size: str, rel: str, protocol: str | None = None,
               manifest: dict[str, Any] | None = None) -> pl.DataFrame:
    """Read one split file, e.g. rel="ctr/test" (`protocol` as in `load_manifest`).

    With the dataset's `manifest`, the file's sha256 must be the one it records (a run passes
    it: an edited split is refused, never recorded under the old version). A damaged file is
    one line naming the command that rebuilds the dataset (`recbench.data.verify`).
    """
    if rel not in SPLIT_FILES and rel != "items":
        raise DataError(f"unknown split {rel!r}; choose one of items, {', '.join(SPLIT_FILES)}")
    protocol = resolve_protocol(home, name, size, protocol)
    path = prepared_path(home, name, size, protocol) / f"{rel}.parquet"
    if not path.is_file():
        if rel.startswith("ctr/") and "ctr" not in PROTOCOLS.entry(protocol).meta["tasks"]:
            raise DataError(f"dataset {name!r} ({size}, protocol {protocol}) has no CTR rows: "
                            f"{protocol} prepares SeqRec only; prepare it with `--protocol "
                            "recbench` for CTR")
        raise DataError(f"{path} is missing: re-run `recbench prepare {name} --protocol "
                        f"{protocol} --size {size} --force`")
    rebuild = verify.rebuild_command(name, size, protocol, manifest)
    return verify.read_parquet_verified(path, rel, manifest, rebuild)
