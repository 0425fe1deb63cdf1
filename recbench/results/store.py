"""The results store: $RECBENCH_HOME/results/<dataset>/<group>/<model>/<key>.json (+ predictions).

A record is published last, so its presence means the run finished: results are the cache, and
reruns skip finished keys unless asked to overwrite. Engines deliver at-least-once, so exactly-once
comes from here: a record is published first-writer-wins (a losing duplicate is discarded and
reported, the winner returned), every attempt writes its predictions under its own name, and a
per-key lease (`recbench.results.lease`) keeps a second live attempt from training at all.

Beside `KEY.json` live `KEY.<attempt>.predictions.parquet`, `KEY.log`, `KEY.lease` while a run
holds it, and `KEY.work/` (epoch checkpoints) until the run finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from recbench.core import paths
from recbench.core.atomic import atomic_file, publish_bytes, write_bytes
from recbench.core.errors import DataError
from recbench.core.hashing import stable_hash
from recbench.core.names import path_component, within
from recbench.results.lease import DEFAULT_STALE_S, Lease, LeaseState, acquire, new_attempt_id
from recbench.results.record import Record

log = logging.getLogger(__name__)
RECORD_GLOB = "*/*/*/*.json"  # dataset/group/model/KEY.json: nothing deeper is a record
LEASE_SUFFIX = ".lease"
WORK_SUFFIX = ".work"
PREDICTIONS_SUFFIX = ".predictions.parquet"


def run_key(group: str, model: str, dataset_version: str, task: str, config_hash: str,
            seed: int, smoke: bool) -> str:
    return stable_hash({"group": group, "model": model, "dataset": dataset_version, "task": task,
                        "config": config_hash, "seed": seed, "smoke": smoke})


@dataclass(frozen=True)
class Published:
    """What `ResultStore.write` did."""

    record: Record  # the record now stored under the key (the winner's, for a duplicate)
    path: Path
    duplicate: bool = False  # another attempt published first; this one was discarded
    replaced: bool = False  # an older (or damaged) record under the key was replaced


class ResultStore:
    """Reads and writes records under one recbench home."""

    def __init__(self, home: Path):
        self.root = paths.results_dir(home)

    def key_dir(self, dataset: str, group: str, model: str) -> Path:
        return within(self.root, path_component(dataset), path_component(group),
                      path_component(model))

    def record_path(self, dataset: str, group: str, model: str, key: str) -> Path:
        return self.key_dir(dataset, group, model) / f"{path_component(key)}.json"

    def lease_path(self, dataset: str, group: str, model: str, key: str) -> Path:
        return self.record_path(dataset, group, model, key).with_suffix(LEASE_SUFFIX)

    def work_dir(self, dataset: str, group: str, model: str, key: str) -> Path:
        """Where a run of `key` keeps its epoch checkpoints until it finishes."""
        return self.record_path(dataset, group, model, key).with_suffix(WORK_SUFFIX)

    def lease(self, dataset: str, group: str, model: str, key: str, attempt: str | None = None,
              stale_after_s: float = DEFAULT_STALE_S) -> Lease | LeaseState:
        """Take the key's lease (see `recbench.results.lease.acquire`): a held `Lease`, or the
        `LeaseState` of the live lease another attempt holds."""
        return acquire(self.lease_path(dataset, group, model, key), attempt=attempt,
                       stale_after_s=stale_after_s)

    def find(self, dataset: str, group: str, model: str, key: str) -> Record | None:
        """The finished record of `key`, or None. A damaged record is not a finished run: it is
        reported with a warning and treated as absent (the run is redone and replaces it)."""
        path = self.record_path(dataset, group, model, key)
        return self._read(path) if os.path.lexists(path) else None

    def write(self, record: Record, predictions: pl.DataFrame | None,
              supersedes: Record | None = None) -> Published:
        """Predictions first (under this attempt's own name), then the record, first-writer-wins.

        Args:
            record: the finished run; its `attempt` names the predictions file (a fresh id
                if it has none).
            predictions: per-row predictions, or None.
            supersedes: the record this run was started to redo (`--overwrite always`, or
                `only-missing` repairing lost predictions): it is replaced. Any other valid
                record under the key was published by another attempt meanwhile and wins; this
                one is then discarded. A damaged record is always replaced.
        """
        path = self.record_path(record.dataset, record.group, record.model, record.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if record.attempt is None:
            record = record.model_copy(update={"attempt": new_attempt_id()})
        pred_path = None
        if predictions is not None:
            pred_path = path.with_name(
                f"{path.stem}.{path_component(record.attempt)}{PREDICTIONS_SUFFIX}")
            with atomic_file(pred_path) as tmp:  # a full disk: one line, no temp file left
                predictions.write_parquet(tmp, compression="zstd")
            record = record.model_copy(update={"predictions": pred_path.name})
        data = (json.dumps(record.model_dump(mode="json"), indent=2, sort_keys=True, default=str)
                + "\n").encode()
        if publish_bytes(path, data):
            return Published(record, path)
        existing = self._read(path)
        if existing is not None and existing != supersedes:
            if pred_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    pred_path.unlink()
            log.warning("duplicate discarded: %s was already published by attempt %s; this "
                        "attempt (%s) keeps that record", path, existing.attempt,
                        record.attempt)
            return Published(existing, path, duplicate=True)
        if existing is None:
            log.warning("replacing the damaged record %s with this attempt's (%s)", path,
                        record.attempt)
        write_bytes(path, data)
        old = existing.predictions if existing is not None else None
        # a record's file name is data: only ever a predictions file beside it goes
        if old and old != record.predictions and old.endswith(PREDICTIONS_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path_component(old)).unlink()
        return Published(record, path, replaced=True)

    def records(self) -> Iterator[Record]:
        """Every valid record; anything else named `*.json` is skipped with a warning naming it."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob(RECORD_GLOB)):
            if path.name.startswith("."):
                continue
            record = self._read(path)
            if record is not None:
                yield record

    def predictions(self, record: Record) -> pl.DataFrame:
        if not record.predictions:
            raise DataError(f"run {record.key} saved no predictions")
        path = self.record_path(record.dataset, record.group, record.model, record.key)
        return pl.read_parquet(path.with_name(path_component(record.predictions)))

    def _read(self, path: Path) -> Record | None:
        """The record at `path`, or None (with a warning saying why) if it is not one."""
        problem = read_record(path)
        if isinstance(problem, Record):
            return problem
        log.warning("skipping %s: %s", path, problem)
        return None


def read_record(path: Path) -> Record | str:
    """The record at `path`, or a short description of why the file is not a valid record."""
    if path.is_symlink() and not path.exists():
        return "a dangling symbolic link, not a result record"
    if not path.is_file():
        return "not a regular file, not a result record"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc.__class__.__name__})"
    except UnicodeDecodeError:
        return "not UTF-8 text, not a valid result record"
    try:
        return Record.model_validate(json.loads(text))
    except json.JSONDecodeError:
        return "not valid JSON (truncated or damaged), not a valid result record"
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        return f"not a valid result record ({where}: {first['msg']})"


def export_records(records: list[Record], path: Path) -> None:
    write_bytes(path, json.dumps([r.model_dump(mode="json") for r in records], indent=1).encode())
