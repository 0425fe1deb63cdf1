"""Your own data: interactions + items as CSV or Parquet, with column names as options.

Options (all optional): interactions (file name, default interactions.csv|.parquet), items
(default items.csv|.parquet), user_col (user), item_col (item), time_col (timestamp; row order
if absent), label_col (label: 1/0), rating_col (rating: >= pos_threshold positive, <=
neg_threshold negative, between dropped), pos_threshold (4), neg_threshold (2), item_id_col
(item), text_col (title), separator (","; `\\t` or `tab` for tabs). Without a label or rating
column every interaction is a positive and CTR negatives are sampled.

The options are checked before any file is read: file names must lie inside the raw folder (no
absolute path, no `..`), column names must be non-empty text, thresholds finite numbers with
neg_threshold < pos_threshold, the separator one character other than a quote or a line break.

Damaged input follows the policy of `recbench.data.rawfiles`: a text timestamp, rating or label
(or a label other than 0/1) and an empty user or item id are errors naming the line (the row,
for Parquet) and column; a repeated (user, item) interaction keeps its earliest row (ties: file
order), so a held-out target never appears in its own history, and the count is noted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import ConfigError, DataError, MissingRawFilesError
from recbench.core.names import within
from recbench.data.keys import repeated_rows
from recbench.data.raw import RawTables
from recbench.data.rawfiles import POLARS_ERRORS, find_file, read_csv_checked, read_header, shown

DEFAULTS: dict[str, Any] = {
    "interactions": None, "items": None, "user_col": "user", "item_col": "item",
    "time_col": "timestamp", "label_col": "label", "rating_col": "rating",
    "pos_threshold": 4.0, "neg_threshold": 2.0, "item_id_col": "item", "text_col": "title",
    "separator": ",",
}
COLUMN_OPTIONS = ("user_col", "item_col", "time_col", "label_col", "rating_col", "item_id_col",
                  "text_col")
TABS = ("\t", "\\t", "tab")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    o = check_options(options)
    notes: list[str] = []
    inter_path = _file(raw_dir, o["interactions"], "interactions")
    items_path = _file(raw_dir, o["items"], "items")
    inter, inter_line = _read(inter_path, o["separator"], notes)
    items, items_line = _read(items_path, o["separator"], notes)
    for col in (o["user_col"], o["item_col"]):
        _need(inter, col, inter_path)
    for col in (o["item_id_col"], o["text_col"]):
        _need(items, col, items_path)
    for col in (o["user_col"], o["item_col"]):
        _ids(inter, col, inter_path, inter_line)
    _ids(items, o["item_id_col"], items_path, items_line)

    if o["time_col"] in inter.columns:
        ts = _numbers(inter, o["time_col"], inter_path, inter_line, "a number (a time)")
        ts = ts.floor().cast(pl.Int64)
    else:
        ts = pl.int_range(inter.height, dtype=pl.Int64, eager=True)
        notes.append(f"{inter_path.name}: no {o['time_col']!r} column; row order is time order")
    if o["label_col"] in inter.columns:
        label = _numbers(inter, o["label_col"], inter_path, inter_line, "a label 0 or 1")
        _fail_at(label.is_in([0.0, 1.0]).not_(), inter, o["label_col"], inter_path, inter_line,
                 "a label 0 or 1")
        label = label.cast(pl.Int8)
        negatives = "real"
    elif o["rating_col"] in inter.columns:
        r = _numbers(inter, o["rating_col"], inter_path, inter_line, "a number (a rating)")
        between = int(((r > o["neg_threshold"]) & (r < o["pos_threshold"])).sum())
        if between:
            notes.append(f"{inter_path.name}: {between} ratings between {o['neg_threshold']:g} "
                         f"and {o['pos_threshold']:g} (exclusive) dropped: neither positive nor "
                         "negative")
        label = (pl.select(pl.when(r >= o["pos_threshold"]).then(1)
                           .when(r <= o["neg_threshold"]).then(0).otherwise(None)
                           .cast(pl.Int8)).to_series())
        negatives = "real"
    else:
        label = pl.Series("label", [1] * inter.height, dtype=pl.Int8)
        negatives = "sampled"
    events = pl.DataFrame({
        "user_key": inter[o["user_col"]].cast(pl.Utf8).str.strip_chars(),
        "item_key": inter[o["item_col"]].cast(pl.Utf8).str.strip_chars(),
        "ts": ts, "label": label,
    }).drop_nulls("label")
    events = _first_per_pair(events, inter_path, notes)
    item_table = items.rename({o["item_id_col"]: "item_key", o["text_col"]: "text"})
    item_table = item_table.with_columns(pl.col("item_key").cast(pl.Utf8).str.strip_chars())
    return RawTables(items=item_table, events=events.lazy(), negatives=negatives,
                     source_files=[inter_path, items_path], notes=notes,
                     text_attribute=o["text_col"])


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options over the defaults, validated (see the module docstring)."""
    unknown = set(options) - set(DEFAULTS) - {"category"}
    if unknown:
        raise ConfigError(f"unknown option(s) {sorted(unknown)} for tabular data; "
                          f"valid: {', '.join(DEFAULTS)}")
    o = {**DEFAULTS, **options}
    for key in ("interactions", "items"):
        if o[key] is not None and (not isinstance(o[key], str) or not o[key].strip()):
            raise ConfigError(f"option {key} must be a file name in the raw folder, not "
                              f"{shown(o[key])}")
    for key in COLUMN_OPTIONS:
        if not isinstance(o[key], str) or not o[key].strip():
            raise ConfigError(f"option {key} must be a column name, not {shown(o[key])}")
    for key in ("pos_threshold", "neg_threshold"):
        value = o[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not math.isfinite(value):
            raise ConfigError(f"option {key} must be a finite number, not {shown(value)}")
        o[key] = float(value)
    if o["neg_threshold"] >= o["pos_threshold"]:
        raise ConfigError(f"option neg_threshold ({o['neg_threshold']:g}) must be below "
                          f"pos_threshold ({o['pos_threshold']:g})")
    sep = o["separator"]
    if sep in TABS:
        sep = "\t"
    if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n' or not sep.isascii():
        raise ConfigError(f"option separator must be one ASCII character other than a quote or "
                          f"a line break (or `tab`), not {shown(sep)}")
    o["separator"] = sep
    return o


def _file(raw_dir: Path, name: str | None, what: str) -> Path:
    if name is None:
        return find_file(raw_dir, f"{what}.csv", f"{what}.parquet")
    # A file name from the command line never points outside the raw folder.
    try:
        path = within(raw_dir, name)
    except ConfigError:
        raise ConfigError(f"option {what}={shown(name)}: expected a file inside the raw folder "
                          f"{raw_dir} (no absolute path, no '..')") from None
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found (option {what})")
    return path


def _read(path: Path, separator: str, notes: list[str]) -> tuple[pl.DataFrame, pl.Series]:
    """The file's columns as text, and each row's line (CSV) or row (Parquet) number."""
    if path.suffix == ".parquet":
        try:
            df = pl.read_parquet(path)
        except (*POLARS_ERRORS, OSError) as exc:
            raise DataError(f"{path}: not a readable Parquet file "
                            f"({shown(str(exc).splitlines()[0] if str(exc) else exc, 120)})"
                            ) from None
        if df.height == 0:
            raise DataError(f"{path}: no rows")
        return df, pl.int_range(1, df.height + 1, eager=True).alias("row")
    cols = read_header(path, separator)
    df = read_csv_checked(path, {c: pl.Utf8 for c in cols}, separator=separator, notes=notes)
    line = pl.int_range(2, df.height + 2, eager=True).alias("line")
    blank = df.select(pl.all_horizontal(pl.all().is_null())).to_series()
    return df.filter(~blank), line.filter(~blank)


def _need(df: pl.DataFrame, col: str, path: Path) -> None:
    if col not in df.columns:
        found = ", ".join(shown(c, 40) for c in df.columns[:20])
        raise DataError(f"{path}: no column {col!r} (columns: {found}); set it with --option")


def _where(path: Path, lines: pl.Series, row: int) -> str:
    return f"{path}: {lines.name} {lines[row]}"


def _ids(df: pl.DataFrame, col: str, path: Path, lines: pl.Series) -> None:
    text = df[col].cast(pl.Utf8).str.strip_chars()
    empty = (text.is_null() | (text == "")).arg_true()
    if len(empty):
        row = int(empty[0])
        raise DataError(f"{_where(path, lines, row)}, column {col!r}: empty id (every "
                        "interaction needs a user and an item)")


def _numbers(df: pl.DataFrame, col: str, path: Path, lines: pl.Series, expected: str
             ) -> pl.Series:
    """`col` as floats; an empty or non-numeric value is an error naming its line."""
    values = df[col]
    if values.dtype == pl.Boolean:
        values = values.cast(pl.Int8)
    if values.dtype.is_numeric():
        out = values.cast(pl.Float64)
    else:
        out = values.cast(pl.Utf8).str.strip_chars().cast(pl.Float64, strict=False)
    _fail_at(out.is_null() | out.is_nan() | out.is_infinite(), df, col, path, lines, expected)
    return out


def _fail_at(bad: pl.Series, df: pl.DataFrame, col: str, path: Path, lines: pl.Series,
             expected: str) -> None:
    rows = bad.fill_null(True).arg_true()
    if len(rows):
        row = int(rows[0])
        value = df[col][row]
        got = "an empty value" if value is None or str(value).strip() == "" else shown(value)
        raise DataError(f"{_where(path, lines, row)}, column {col!r}: {got} is not {expected}")


def _first_per_pair(events: pl.DataFrame, path: Path, notes: list[str]) -> pl.DataFrame:
    """Keep the earliest row of each (user, item) pair (ties: file order), with a note."""
    repeated = repeated_rows(events, ["user_key", "item_key"], order_by="ts")
    if repeated is None:
        return events
    notes.append(f"{path.name}: {int(repeated.sum())} repeated (user, item) interactions "
                 "dropped; the earliest is kept")
    return events.filter(~repeated)
