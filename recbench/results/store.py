"""The results store: $RECBENCH_HOME/results/<dataset>/<group>/<model>/<key>.json (+ predictions).

A record is written last, atomically, so its presence means the run finished: results are the
cache, and reruns skip finished keys unless asked to overwrite.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from pydantic import ValidationError

from recbench.core import paths
from recbench.core.atomic import write_bytes, write_json
from recbench.core.errors import DataError
from recbench.core.hashing import stable_hash
from recbench.results.record import Record

log = logging.getLogger(__name__)


def run_key(group: str, model: str, dataset_version: str, task: str, config_hash: str,
            seed: int, smoke: bool) -> str:
    return stable_hash({"group": group, "model": model, "dataset": dataset_version, "task": task,
                        "config": config_hash, "seed": seed, "smoke": smoke})


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class ResultStore:
    """Reads and writes records under one recbench home."""

    def __init__(self, home: Path):
        self.root = paths.results_dir(home)

    def record_path(self, dataset: str, group: str, model: str, key: str) -> Path:
        return self.root / _safe(dataset) / _safe(group) / _safe(model) / f"{key}.json"

    def find(self, dataset: str, group: str, model: str, key: str) -> Record | None:
        path = self.record_path(dataset, group, model, key)
        return self._read(path) if path.exists() else None

    def write(self, record: Record, predictions: pl.DataFrame | None) -> tuple[Record, Path]:
        """Predictions first, then the record (the completion marker), both atomically.

        Returns the record as stored (with its predictions file name) and its path.
        """
        path = self.record_path(record.dataset, record.group, record.model, record.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if predictions is not None:
            pred_path = path.with_name(f"{record.key}.predictions.parquet")
            tmp = pred_path.with_name(f".{pred_path.name}.tmp")
            predictions.write_parquet(tmp, compression="zstd")
            tmp.replace(pred_path)
            record = record.model_copy(update={"predictions": pred_path.name})
        write_json(path, record.model_dump(mode="json"))
        return record, path

    def records(self) -> Iterator[Record]:
        """Every valid record; unreadable files are skipped with a warning naming them."""
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*.json")):
            record = self._read(path, strict=False)
            if record is not None:
                yield record

    def predictions(self, record: Record) -> pl.DataFrame:
        if not record.predictions:
            raise DataError(f"run {record.key} saved no predictions")
        path = self.record_path(record.dataset, record.group, record.model, record.key)
        return pl.read_parquet(path.with_name(record.predictions))

    def _read(self, path: Path, strict: bool = True) -> Record | None:
        try:
            return Record.model_validate(json.loads(path.read_text()))
        except (json.JSONDecodeError, ValidationError) as exc:
            if strict:
                raise DataError(f"{path}: not a valid result record ({exc.__class__.__name__})"
                                ) from None
            log.warning("skipping %s: not a valid result record", path)
            return None


def export_records(records: list[Record], path: Path) -> None:
    write_bytes(path, json.dumps([r.model_dump(mode="json") for r in records], indent=1).encode())
