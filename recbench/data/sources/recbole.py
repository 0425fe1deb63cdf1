"""`recbole`: RecBole atomic files (https://recbole.io/docs/user_guide/data/atomic_files.html).

Layout (tab-separated, UTF-8, no quoting; the header names each field with its type,
`field:type`, type one of token, token_seq, float, float_seq; the suffixes are stripped):
- `NAME.item`: `item_id:token` and the text field (`title:token_seq` by default; option
  `text_field`), plus any other item fields, which are ignored.
- interactions in `NAME.inter` and/or split files `NAME.<split>.inter` (e.g. `NAME.train.inter`,
  `NAME.valid.inter`, `NAME.test.inter`), in one of two forms:
  - plain: `user_id:token`, `item_id:token`, optional `rating:float`, optional
    `timestamp:float`. All files are concatenated (in the order NAME.inter, train, valid, test,
    then others by name). With a rating: >= 4 positive, <= 2 real negative, 3 dropped, CTR
    negatives real; without: all positives, CTR negatives sampled. Without a timestamp, `ts` is
    the row position in that concatenation.
  - sequence: `user_id:token`, `item_id_list:token_seq` (space-separated history),
    `item_id:token` (the target), as in LLMRank's Games-6k. A row's sequence is its list + its
    target. When several rows (in one file or several, e.g. the valid and test rows of a user)
    give sequences for the same user, the longest is used: the valid row is the test row's
    prefix, so the longest is the most complete history (ties: the later file, then the later
    row). `ts` is the position in that sequence; no ratings, so CTR negatives are sampled. Such
    files are often cut (Games-6k keeps the last 50 items of each history).
  All .inter files of a dataset must have the same form.

Options: `name` (the atomic files' stem; default: the only `*.item` file in the folder),
`text_field` (default `title`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.keys import repeated_rows
from recbench.data.raw import RawTables
from recbench.data.rawfiles import read_csv_checked, shown

DEFAULTS: dict[str, Any] = {"name": None, "text_field": "title"}
SPLIT_ORDER = {"": 0, "train": 1, "valid": 2, "test": 3}
POS_THRESHOLD = 4.0
NEG_THRESHOLD = 2.0
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read NAME.item + NAME[.split].inter into `RawTables`."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for recbole atomic files; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    item_path = _item_file(raw_dir, o["name"])
    name = item_path.name[: -len(".item")]
    inter_paths = _inter_files(item_path.parent, name)
    notes: list[str] = []
    items = _items(item_path, str(o["text_field"]), notes)

    headers = {p: _header(p) for p in inter_paths}
    forms = {p: "sequence" if "item_id_list" in h else "plain" for p, h in headers.items()}
    if len(set(forms.values())) > 1:
        listing = ", ".join(f"{p.name}: {f}" for p, f in forms.items())
        raise DataError(f"{item_path.parent}: the .inter files mix the plain and sequence forms "
                        f"({listing}); use one form")
    if forms[inter_paths[0]] == "sequence":
        events, negatives = _sequence_events(inter_paths, headers, notes), "sampled"
    else:
        events, negatives = _plain_events(inter_paths, headers, notes)
    return RawTables(items=items, events=events.lazy(), negatives=negatives,
                     source_files=[item_path, *inter_paths], notes=notes,
                     text_attribute=str(o["text_field"]))


# --- files and headers ------------------------------------------------------------------------

def _candidates(raw_dir: Path, pattern: str) -> list[Path]:
    top = sorted(p for p in raw_dir.glob(pattern) if p.is_file())
    return top or sorted(p for p in raw_dir.glob(f"*/{pattern}") if p.is_file())


def _item_file(raw_dir: Path, name: str | None) -> Path:
    hits = _candidates(raw_dir, f"{name}.item" if name else "*.item")
    if not hits:
        what = f"{name}.item" if name else "NAME.item"
        raise MissingRawFilesError(
            f"{raw_dir}: expected RecBole atomic files {what} (item_id:token, title:token_seq, "
            "...) and NAME.inter or NAME.<split>.inter (in this folder or one below)")
    if len(hits) > 1:
        raise DataError(f"{raw_dir}: several RecBole datasets ({', '.join(p.name for p in hits)});"
                        " choose one with -o name=NAME")
    return hits[0]


def _inter_files(folder: Path, name: str) -> list[Path]:
    paths = [p for p in folder.glob(f"{name}*.inter") if p.is_file()]
    splits = {}
    for p in paths:
        middle = p.name[len(name): -len(".inter")]
        if middle == "" or middle.startswith("."):
            splits[p] = middle.lstrip(".")
    if not splits:
        raise MissingRawFilesError(f"{folder}: found {name}.item but no interactions; expected "
                                   f"{name}.inter or {name}.<split>.inter (train/valid/test)")
    return sorted(splits, key=lambda p: (SPLIT_ORDER.get(splits[p], len(SPLIT_ORDER)),
                                         splits[p]))


def _header(path: Path) -> dict[str, str]:
    """stripped field name -> the header's column name (`item_id:token` -> `item_id`)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline().rstrip("\r\n")
    if not first.strip():
        raise DataError(f"{path}: empty file (expected a header like item_id:token<TAB>...)")
    out: dict[str, str] = {}
    for column in first.split("\t"):
        field, _, ftype = column.strip().partition(":")
        if ftype and ftype not in FIELD_TYPES:
            raise DataError(f"{path}: header column {shown(column)} has an unknown type "
                            f"{shown(ftype)}; expected one of {', '.join(FIELD_TYPES)}")
        if field in out:
            raise DataError(f"{path}: header names the field {shown(field)} twice")
        out[field] = column
    return out


def _read(path: Path, header: dict[str, str], fields: list[str],
          optional: tuple[str, ...] = (), may_be_empty: tuple[str, ...] = (),
          notes: list[str] | None = None) -> pl.DataFrame:
    """The `fields` (+ those of `optional` present) as text, renamed to their stripped names,
    plus `_line`, each row's line number.

    A row lacking a value (a short line) is an error naming its line, except for the fields of
    `may_be_empty` (an empty history list is valid).
    """
    missing = [f for f in fields if f not in header]
    if missing:
        raise DataError(f"{path}: no field(s) {missing} in the header; found "
                        f"{list(header.values())}")
    wanted = fields + [f for f in optional if f in header]
    df = read_csv_checked(path, {header[f]: pl.Utf8 for f in wanted}, separator="\t",
                          quote_char=None, notes=notes)
    df = df.rename({header[f]: f for f in wanted})
    # Rows keep their line (blank lines read as all-null rows), so row + 2 is the line number.
    blank = df.select(pl.all_horizontal(pl.all().is_null())).to_series()
    for f in wanted:
        if f in may_be_empty:
            continue
        empty = ((df[f].is_null() | (df[f].str.strip_chars() == "")) & ~blank).arg_true()
        if len(empty):
            raise DataError(f"{path}: line {int(empty[0]) + 2}: no value for the field {f!r} "
                            f"(expected {len(header)} tab-separated fields)")
    return df.with_columns(pl.int_range(2, df.height + 2).alias("_line")).filter(~blank)


# --- items ------------------------------------------------------------------------------------

def _items(path: Path, text_field: str, notes: list[str]) -> pl.DataFrame:
    header = _header(path)
    if text_field not in header:
        raise DataError(f"{path}: no text field {text_field!r}; found {list(header.values())[:20]} "
                        "(choose it with -o text_field=NAME)")
    df = _read(path, header, ["item_id", text_field], may_be_empty=(text_field,), notes=notes)
    return df.select(pl.col("item_id").alias("item_key"), pl.col(text_field).alias("text"))


# --- interactions -------------------------------------------------------------------------------

def _plain_events(paths: list[Path], headers: dict[Path, dict[str, str]],
                  notes: list[str]) -> tuple[pl.DataFrame, str]:
    frames = []
    for p in paths:
        df = _read(p, headers[p], ["user_id", "item_id"], optional=("rating", "timestamp"),
                   notes=notes)
        frames.append(_numeric(df, p))
    has = {c: all(c in f.columns for f in frames) for c in ("rating", "timestamp")}
    for c, present in has.items():
        if not present and any(c in f.columns for f in frames):
            raise DataError(f"some .inter files have a {c} field and others not: "
                            f"{', '.join(p.name for p in paths)}")
    df = pl.concat(frames, how="diagonal")
    names = ", ".join(p.name for p in paths)
    if has["timestamp"]:
        ts = pl.col("timestamp").cast(pl.Int64)
    else:
        ts = pl.int_range(pl.len(), dtype=pl.Int64)
        notes.append(f"{names}: no timestamp field; ts = row position")
    if has["rating"]:
        r = pl.col("rating")
        neutral = df.filter((r > NEG_THRESHOLD) & (r < POS_THRESHOLD)).height
        if neutral:
            notes.append(f"{neutral} ratings between {NEG_THRESHOLD:g} and {POS_THRESHOLD:g} "
                         "(exclusive) dropped: neither positive nor negative")
        label = (pl.when(r >= POS_THRESHOLD).then(1).when(r <= NEG_THRESHOLD).then(0)
                 .otherwise(None).cast(pl.Int8))
        negatives = "real"
    else:
        label = pl.lit(1, pl.Int8)
        negatives = "sampled"
        notes.append(f"{names}: no rating field; all interactions are positives, CTR negatives "
                     "sampled")
    events = df.select(pl.col("user_id").alias("user_key"), pl.col("item_id").alias("item_key"),
                       ts.alias("ts"), label.alias("label")).drop_nulls("label")
    repeated = repeated_rows(events, ["user_key", "item_key"], order_by="ts")
    if repeated is not None:
        notes.append(f"{names}: {int(repeated.sum())} repeated (user, item) interactions "
                     "dropped; the earliest is kept")
        events = events.filter(~repeated)
    notes.append(f"{names}: plain form, {df.height} interactions")
    return events, negatives


def _numeric(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """rating and timestamp (text) as floats, with the line of the first bad value."""
    for col in ("rating", "timestamp"):
        if col not in df.columns:
            continue
        cast = df[col].str.strip_chars().cast(pl.Float64, strict=False)
        bad = (cast.is_null() & df[col].is_not_null()).arg_true()
        if len(bad):
            row = int(bad[0])
            raise DataError(f"{path}: line {df['_line'][row]}, field {col!r}: "
                            f"{shown(df[col][row])} is not a number")
        df = df.with_columns(cast.alias(col))
    return df


def _sequence_events(paths: list[Path], headers: dict[Path, dict[str, str]],
                     notes: list[str]) -> pl.DataFrame:
    frames = []
    for rank, p in enumerate(paths):
        df = _read(p, headers[p], ["user_id", "item_id_list", "item_id"],
                   may_be_empty=("item_id_list",), notes=notes)
        frames.append(df.with_row_index("row").with_columns(pl.lit(rank).alias("file")))
    rows = pl.concat(frames)
    rows = rows.select(
        "user_id", "file", "row",
        pl.concat_list(
            pl.col("item_id_list").fill_null("").str.split(" ")
            .list.eval(pl.element().filter(pl.element() != "")),
            pl.col("item_id"),
        ).alias("items"),
    )
    longest = (
        rows.with_columns(pl.col("items").list.len().alias("n"))
        .sort(["n", "file", "row"], descending=True)
        .unique("user_id", keep="first", maintain_order=True)
        .sort("user_id")
    )
    repeated = rows.height - longest.height
    events = (
        longest.select("user_id", "items").explode("items")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int64).over("user_id").alias("ts"))
        .select(pl.col("user_id").alias("user_key"), pl.col("items").alias("item_key"), "ts",
                pl.lit(1, pl.Int8).alias("label"))
    )
    repeated_items = repeated_rows(events, ["user_key", "item_key"])
    if repeated_items is not None:  # a repeat would put a target in its own history
        notes.append(f"{int(repeated_items.sum())} repeated items within a user's sequence "
                     "dropped (the first is kept)")
        events = events.filter(~repeated_items)
    notes.append(f"{', '.join(p.name for p in paths)}: sequence form, {rows.height} rows, "
                 f"{longest.height} users; the longest sequence per user is used "
                 f"({repeated} shorter rows of the same users ignored); ts = position in the "
                 "sequence; no ratings (all positives, CTR negatives sampled)")
    return events
