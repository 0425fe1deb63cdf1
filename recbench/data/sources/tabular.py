"""Your own data: interactions + items as CSV or Parquet, with column names as options.

Options (all optional): interactions (file name, default interactions.csv|.parquet), items
(default items.csv|.parquet), user_col (user), item_col (item), time_col (timestamp; row order
if absent), label_col (label: 1/0), rating_col (rating: >= pos_threshold positive, <=
neg_threshold negative, between dropped), pos_threshold (4), neg_threshold (2), item_id_col
(item), text_col (title), separator (","). Without a label or rating column every interaction is
a positive and CTR negatives are sampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked

DEFAULTS: dict[str, Any] = {
    "interactions": None, "items": None, "user_col": "user", "item_col": "item",
    "time_col": "timestamp", "label_col": "label", "rating_col": "rating",
    "pos_threshold": 4.0, "neg_threshold": 2.0, "item_id_col": "item", "text_col": "title",
    "separator": ",",
}


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    unknown = set(options) - set(DEFAULTS) - {"category"}
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for tabular data; "
                        f"valid: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    notes: list[str] = []
    inter_path = find_file(raw_dir, *([o["interactions"]] if o["interactions"]
                                      else ["interactions.csv", "interactions.parquet"]))
    items_path = find_file(raw_dir, *([o["items"]] if o["items"]
                                      else ["items.csv", "items.parquet"]))
    inter = _read(inter_path, o["separator"], notes)
    items = _read(items_path, o["separator"], notes)
    for col in (o["user_col"], o["item_col"]):
        _need(inter, col, inter_path)
    for col in (o["item_id_col"], o["text_col"]):
        _need(items, col, items_path)

    if o["time_col"] in inter.columns:
        ts = pl.col(o["time_col"]).cast(pl.Int64, strict=False)
    else:
        ts = pl.int_range(pl.len(), dtype=pl.Int64)
        notes.append(f"{inter_path.name}: no {o['time_col']!r} column; row order is time order")
    if o["label_col"] in inter.columns:
        label = pl.col(o["label_col"]).cast(pl.Int8, strict=False)
        negatives = "real"
    elif o["rating_col"] in inter.columns:
        r = pl.col(o["rating_col"]).cast(pl.Float64, strict=False)
        label = (pl.when(r >= o["pos_threshold"]).then(1)
                 .when(r <= o["neg_threshold"]).then(0).otherwise(None).cast(pl.Int8))
        negatives = "real"
    else:
        label = pl.lit(1, pl.Int8)
        negatives = "sampled"
    events = inter.select(
        pl.col(o["user_col"]).cast(pl.Utf8).alias("user_key"),
        pl.col(o["item_col"]).cast(pl.Utf8).alias("item_key"),
        ts.alias("ts"), label.alias("label"),
    ).drop_nulls(["user_key", "item_key", "label"])
    item_table = items.rename({o["item_id_col"]: "item_key", o["text_col"]: "text"})
    item_table = item_table.with_columns(pl.col("item_key").cast(pl.Utf8))
    return RawTables(items=item_table, events=events.lazy(), negatives=negatives,
                     source_files=[inter_path, items_path], notes=notes,
                     text_attribute=o["text_col"])


def _read(path: Path, separator: str, notes: list[str]) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    header = path.open(encoding="utf-8", errors="replace").readline().rstrip("\n\r")
    cols = [c.strip().strip('"') for c in header.split(separator)]
    return read_csv_checked(path, {c: pl.Utf8 for c in cols}, separator=separator, notes=notes)


def _need(df: pl.DataFrame, col: str, path: Path) -> None:
    if col not in df.columns:
        raise DataError(f"{path}: no column {col!r} (columns: {df.columns}); set it with "
                        f"--option")
