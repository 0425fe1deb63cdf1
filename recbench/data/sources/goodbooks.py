"""`goodbooks-10k`: the official release of github.com/zygmuntz/goodbooks-10k.

Layout (comma-separated, with a header line, UTF-8):
- `ratings.csv`: `user_id,book_id,rating` (1-5). The current release is sorted by time but has
  no timestamp column, so `ts` is the row position. (The 2017 first release was sorted by user;
  that is detected, since `user_id` then never decreases, and reported in the notes: row order
  within a user is then not time order.)
- `books.csv`: `book_id` (the id used in ratings.csv, 1..10000), `goodreads_book_id`,
  `best_book_id`, `work_id`, ..., `authors`, `original_publication_year`, `original_title`,
  `title`, `language_code`, ... The text attribute is `title` (Table 2's "name", e.g.
  "The Hunger Games (The Hunger Games, #1)"); `authors`, `original_title`, `year` and
  `language_code` are kept as item attributes where present.
- `to_read.csv` (optional): `user_id,book_id` pairs of books users marked "to read", sorted by
  time. Ignored by default. With the option `to_read_as_positive: true` each pair becomes a
  positive placed after all of that user's ratings (its `ts` continues the row positions of
  ratings.csv, because the two files share no clock); pairs the user also rated keep the rating.

Labels: rating >= `pos_threshold` (4) positive, <= `neg_threshold` (2) a real negative, between
(3) dropped; CTR negatives are the user's real negatives. A repeated (user, book) pair keeps its
first row. A final line cut off mid-row (the shared subset is cut at a byte boundary) is dropped
and reported; any other malformed line is an error naming its line number.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked

DEFAULTS: dict[str, Any] = {"to_read_as_positive": False, "pos_threshold": 4, "neg_threshold": 2}
# books.csv columns kept as item attributes when present (renamed where the name is clumsy).
ATTRIBUTES = {"authors": "authors", "original_title": "original_title",
              "original_publication_year": "year", "language_code": "language_code"}


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read goodbooks-10k's ratings.csv + books.csv (+ to_read.csv) into `RawTables`."""
    o = _options(options)
    notes: list[str] = []
    ratings_path = find_file(raw_dir, "ratings.csv")
    books_path = find_file(raw_dir, "books.csv")
    files = [ratings_path, books_path]

    ratings = _complete_rows(read_csv_checked(
        ratings_path, {"user_id": pl.Int64, "book_id": pl.Int64, "rating": pl.Int64}, notes=notes),
        ratings_path)
    if ratings.height and ratings["user_id"].is_sorted():
        notes.append(f"{ratings_path.name}: sorted by user_id (the first release?): row order "
                     "within a user is file order, not necessarily time order")
    events = ratings.select(
        pl.col("user_id").cast(pl.Utf8).alias("user_key"),
        pl.col("book_id").cast(pl.Utf8).alias("item_key"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("ts"),
        _label(pl.col("rating"), o, notes, ratings).alias("label"),
    )

    if o["to_read_as_positive"]:
        to_read_path = find_file(raw_dir, "to_read.csv")
        files.append(to_read_path)
        to_read = _complete_rows(read_csv_checked(
            to_read_path, {"user_id": pl.Int64, "book_id": pl.Int64}, notes=notes), to_read_path)
        events = pl.concat([events, to_read.select(
            pl.col("user_id").cast(pl.Utf8).alias("user_key"),
            pl.col("book_id").cast(pl.Utf8).alias("item_key"),
            (pl.int_range(pl.len(), dtype=pl.Int64) + ratings.height).alias("ts"),
            pl.lit(1, pl.Int8).alias("label"),
        )])
        notes.append(f"{to_read_path.name}: {to_read.height} to-read pairs added as positives "
                     "after the ratings")

    events = _first_per_pair(events, notes)
    events = events.filter(pl.col("label").is_not_null())
    return RawTables(items=_books(books_path, notes), events=events.lazy(), negatives="real",
                     source_files=files, notes=notes, text_attribute="title",
                     timestamps=False)


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for goodbooks-10k; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    if not isinstance(o["to_read_as_positive"], bool):
        raise DataError(f"option to_read_as_positive must be true or false, not "
                        f"{o['to_read_as_positive']!r}")
    for key in ("pos_threshold", "neg_threshold"):
        if isinstance(o[key], bool) or not isinstance(o[key], int | float):
            raise DataError(f"option {key} must be a number, not {o[key]!r}")
    if o["neg_threshold"] >= o["pos_threshold"]:
        raise DataError(f"option neg_threshold ({o['neg_threshold']}) must be below "
                        f"pos_threshold ({o['pos_threshold']})")
    return o


def _label(rating: pl.Expr, o: dict[str, Any], notes: list[str], df: pl.DataFrame) -> pl.Expr:
    between = df.filter((pl.col("rating") > o["neg_threshold"])
                        & (pl.col("rating") < o["pos_threshold"])).height
    if between:
        notes.append(f"{between} ratings between {o['neg_threshold']} and {o['pos_threshold']} "
                     "(exclusive) dropped: neither positive nor negative")
    return (pl.when(rating >= o["pos_threshold"]).then(1)
            .when(rating <= o["neg_threshold"]).then(0).otherwise(None).cast(pl.Int8))


def _first_per_pair(events: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """Keep the earliest row of each (user, item) pair (ties: file order)."""
    before = events.height
    events = events.sort("ts", maintain_order=True).unique(
        ["user_key", "item_key"], keep="first", maintain_order=True)
    if events.height < before:
        notes.append(f"{before - events.height} repeated (user, book) rows dropped; the first "
                     "is kept")
    return events


def _books(path: Path, notes: list[str]) -> pl.DataFrame:
    header = _header(path)
    wanted: dict[str, pl.DataType] = {"book_id": pl.Int64, "title": pl.Utf8}
    wanted.update({c: pl.Utf8 for c in ATTRIBUTES if c in header})
    books = _complete_rows(read_csv_checked(path, wanted, notes=notes), path, ["book_id"])
    out = books.select(
        pl.col("book_id").cast(pl.Utf8).alias("item_key"),
        pl.col("title").alias("text"),
        *[pl.col(c).alias(name) for c, name in ATTRIBUTES.items() if c in books.columns],
    )
    if "year" in out.columns:
        # Years are written as floats ("2008.0"), empty when unknown.
        out = out.with_columns(pl.col("year").cast(pl.Float64, strict=False).cast(pl.Int32))
    return out


def _complete_rows(df: pl.DataFrame, path: Path, required: list[str] | None = None
                  ) -> pl.DataFrame:
    """Drop blank lines; a row lacking a `required` value (default: all) is an error.

    `read_csv_checked` pads a line with too few fields with nulls instead of failing, so a short
    middle line is caught here. Line numbers assume one line per row (no quoted newlines).
    """
    required = required or df.columns
    df = df.with_row_index("_line", offset=2)
    values = [c for c in df.columns if c != "_line"]
    df = df.filter(~pl.all_horizontal(pl.col(c).is_null() for c in values))
    bad = df.filter(pl.any_horizontal(pl.col(c).is_null() for c in required))
    if bad.height:
        row = bad.row(0, named=True)
        col = next(c for c in required if row[c] is None)
        raise DataError(f"{path}: line {row['_line']}: no value for column {col!r} (too few "
                        "fields or an empty field)")
    return df.drop("_line")


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: empty file (expected a header line)")
    return [c.strip() for c in next(csv.reader([first]))]
