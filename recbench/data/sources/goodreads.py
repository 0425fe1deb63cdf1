"""`goodreads`: the UCSD Goodreads dump (Wan & McAuley, RecSys 2018), JSON lines, plain or .gz.

Layout:
- `goodreads_interactions_dedup.json[.gz]`: one shelf event per line, `user_id` (hex),
  `book_id` (an edition id), `review_id`, `is_read`, `rating` (1-5; 0 = shelved, not rated),
  `review_text_incomplete`, `date_added` ("Tue Oct 17 23:39:37 -0700 2017"), `date_updated`,
  `read_at`, `started_at`. A genre subset (`goodreads_interactions_<genre>.json.gz`, same
  fields) is used when it is the only interactions file, or named with the option
  `interactions`. The CSV variant (`goodreads_interactions.csv`, re-numbered ids and no dates)
  cannot give chronological histories and is refused.
- Titles: `goodreads_books.json[.gz]` (`book_id`, `title`: every edition has its own record)
  and/or `goodreads_book_works.json[.gz]` (`best_book_id`, `original_title`: one record per
  work, titling only its best edition). The book record's `title` is preferred (Table 2's
  "title"); the work's `original_title` fills editions the books file lacks or leaves untitled.
  Items are editions (`book_id`), as in the interactions; editions are not merged into works.

Events: `ts` = `date_added` as Unix seconds (the moment the book was shelved; ties keep file
order). rating 0 is dropped (no explicit feedback); rating >= `pos_threshold` (4) positive,
<= `neg_threshold` (2) a real negative, 3 dropped; CTR negatives are the real ones. A repeated
(user, book) pair keeps its earliest event. A final line cut off mid-record is dropped with a
note; any other malformed line is an error naming its line number.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, shown

DEFAULTS: dict[str, Any] = {"interactions": None, "pos_threshold": 4, "neg_threshold": 2}
DATE_FORMAT = "%a %b %d %H:%M:%S %z %Y"
INTERACTION_FIELDS = ("user_id", "book_id", "rating", "date_added")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read the Goodreads interactions and book titles in `raw_dir` into `RawTables`."""
    o = _options(options)
    notes: list[str] = []
    inter_path = _interactions_file(raw_dir, o["interactions"])
    books_path = find_file(raw_dir, "goodreads_books.json", "goodreads_books.json.gz",
                           required=False)
    works_path = find_file(raw_dir, "goodreads_book_works.json", "goodreads_book_works.json.gz",
                           required=False)
    if books_path is None and works_path is None:
        raise MissingRawFilesError(
            f"{raw_dir}: no book titles; expected goodreads_books.json[.gz] and/or "
            "goodreads_book_works.json[.gz] (in this folder or one below)")

    events = _events(inter_path, o, notes)
    items = _items(books_path, works_path, notes)
    files = [p for p in (inter_path, books_path, works_path) if p is not None]
    return RawTables(items=items, events=events.lazy(), negatives="real", source_files=files,
                     notes=notes, text_attribute="title")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for goodreads; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    if o["interactions"] is not None and not isinstance(o["interactions"], str):
        raise DataError(f"option interactions must be a file name, not {o['interactions']!r}")
    for key in ("pos_threshold", "neg_threshold"):
        if isinstance(o[key], bool) or not isinstance(o[key], int | float):
            raise DataError(f"option {key} must be a number, not {o[key]!r}")
    if o["neg_threshold"] >= o["pos_threshold"] or o["neg_threshold"] < 1:
        raise DataError(f"options need 1 <= neg_threshold < pos_threshold; got "
                        f"{o['neg_threshold']} and {o['pos_threshold']}")
    return o


def _interactions_file(raw_dir: Path, name: str | None) -> Path:
    if name:
        return find_file(raw_dir, name)
    path = find_file(raw_dir, "goodreads_interactions_dedup.json",
                     "goodreads_interactions_dedup.json.gz", required=False)
    if path is not None:
        return path
    subsets = sorted({p for pattern in ("goodreads_interactions_*.json",
                                        "goodreads_interactions_*.json.gz",
                                        "*/goodreads_interactions_*.json",
                                        "*/goodreads_interactions_*.json.gz")
                      for p in raw_dir.glob(pattern) if p.is_file()})
    if len(subsets) == 1:
        return subsets[0]
    if len(subsets) > 1:
        names = ", ".join(p.name for p in subsets)
        raise DataError(f"{raw_dir}: several interaction files ({names}); choose one with "
                        "--option interactions=FILE")
    hint = ""
    if find_file(raw_dir, "goodreads_interactions.csv", required=False):
        hint = (" (goodreads_interactions.csv is present, but it has re-numbered ids and no "
                "dates, so it cannot give chronological histories)")
    raise MissingRawFilesError(
        f"{raw_dir}: expected goodreads_interactions_dedup.json[.gz] or one "
        f"goodreads_interactions_<genre>.json[.gz] (in this folder or one below){hint}")


def _events(path: Path, o: dict[str, Any], notes: list[str]) -> pl.DataFrame:
    df = read_json_fields(path, INTERACTION_FIELDS, notes)
    ids = [pl.col(c).is_not_null() & (pl.col(c).str.strip_chars() != "")
           for c in ("user_id", "book_id", "rating")]
    complete = df.filter(pl.all_horizontal(ids))
    if complete.height < df.height:
        notes.append(f"{path.name}: {df.height - complete.height} records lacking user_id, "
                     "book_id or rating (absent or empty) dropped")
        df = complete
    rating = df["rating"].cast(pl.Float64, strict=False)
    _fail_at_first(path, df, rating.is_null() & df["rating"].is_not_null(), "rating",
                   "a number")
    ts = df["date_added"].str.to_datetime(DATE_FORMAT, strict=False).dt.epoch("s")
    filled = df["date_added"].is_not_null() & (df["date_added"].str.strip_chars() != "")
    _fail_at_first(path, df, ts.is_null() & filled, "date_added",
                   'a date like "Tue Oct 17 23:39:37 -0700 2017"')
    df = df.with_columns(rating.alias("rating"), ts.alias("ts"))
    undated = df.height - int(filled.sum())
    if undated:
        notes.append(f"{path.name}: {undated} records without date_added dropped")
    unrated = df.filter(pl.col("rating") == 0).height
    if unrated:
        notes.append(f"{path.name}: {unrated} of {df.height} shelf events without a rating "
                     "(rating 0) dropped")
    df = df.filter(pl.col("ts").is_not_null() & (pl.col("rating") > 0))
    between = df.filter((pl.col("rating") > o["neg_threshold"])
                        & (pl.col("rating") < o["pos_threshold"])).height
    if between:
        notes.append(f"{between} ratings between {o['neg_threshold']} and {o['pos_threshold']} "
                     "(exclusive) dropped: neither positive nor negative")
    r = pl.col("rating")
    events = df.select(
        pl.col("user_id").alias("user_key"),
        pl.col("book_id").alias("item_key"),
        pl.col("ts").cast(pl.Int64),
        pl.when(r >= o["pos_threshold"]).then(1).when(r <= o["neg_threshold"]).then(0)
        .otherwise(None).cast(pl.Int8).alias("label"),
    )
    before = events.height
    events = events.sort("ts", maintain_order=True).unique(
        ["user_key", "item_key"], keep="first", maintain_order=True)
    if events.height < before:
        notes.append(f"{before - events.height} repeated (user, book) events dropped; the "
                     "earliest is kept")
    return events.filter(pl.col("label").is_not_null())


def _items(books_path: Path | None, works_path: Path | None, notes: list[str]) -> pl.DataFrame:
    def nonempty(col: str) -> pl.Expr:
        return pl.when(pl.col(col).str.strip_chars() != "").then(pl.col(col))

    tables = []
    if books_path is not None:
        books = read_json_fields(books_path, ("book_id", "title"), notes)
        tables.append(books.select(pl.col("book_id").alias("item_key"),
                                   nonempty("title").alias("text")))
    if works_path is not None:
        works = read_json_fields(works_path, ("best_book_id", "original_title"), notes)
        tables.append(works.select(pl.col("best_book_id").alias("item_key"),
                                   nonempty("original_title").alias("work_title")))
    tables = [t.filter(pl.col("item_key").is_not_null()).unique("item_key", keep="first",
                                                                 maintain_order=True)
              for t in tables]
    if len(tables) == 1:
        return tables[0].rename({"work_title": "text"}, strict=False)
    books, works = tables
    items = books.join(works, on="item_key", how="full", coalesce=True, maintain_order="left")
    filled = items.filter(pl.col("text").is_null() & pl.col("work_title").is_not_null()).height
    if filled:
        notes.append(f"{filled} books titled by their work's original_title "
                     f"({works_path.name}); the rest by {books_path.name}")
    return items.select("item_key", pl.coalesce("text", "work_title").alias("text"))


def read_json_fields(path: Path, fields: tuple[str, ...], notes: list[str]) -> pl.DataFrame:
    """`fields` of a JSON-lines file (plain or .gz) as text columns, plus `_record` (0-based).

    Values of any JSON type are read as their text ("5", "true"). A field no record has is an
    error naming it; a final line cut off mid-record is dropped with a note; any other line that
    is not JSON is an error naming its line number.
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    schema = {f: pl.Utf8 for f in fields}
    try:
        df = pl.scan_ndjson(path, schema=schema).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        try:
            df = _read_after_error(path, schema, notes, exc)
        except (OSError, EOFError) as err:  # e.g. a damaged .gz
            raise DataError(f"{path}: could not be read ({err})") from None
    if df.height == 0:
        raise DataError(f"{path}: no records")
    absent = [f for f in fields if df[f].null_count() == df.height]
    if absent:
        raise DataError(f"{path}: no record has the field(s) {absent} (expected {list(fields)})")
    return df.with_row_index("_record")


def _read_after_error(path: Path, schema: dict[str, pl.DataType], notes: list[str],
                      exc: Exception) -> pl.DataFrame:
    """Slow pass after the fast reader failed: name the bad line, or drop a cut-off last one."""
    good_bytes = 0
    with _open_binary(path) as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path}: line {number} is not valid UTF-8 text "
                                    f"({shown(line)}); expected a UTF-8 file") from None
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    text = shown(line.decode("utf-8"))
                    if not line.endswith(b"\n"):  # only the last line can lack one
                        notes.append(f"{path.name}: line {number} is cut off (no newline, "
                                     f"{text}); dropped")
                        break
                    raise DataError(f"{path}: line {number} is not valid JSON "
                                    f"({text})") from None
            good_bytes += len(line)
        else:
            raise DataError(f"{path}: could not be read as JSON lines "
                            f"({shown(str(exc).splitlines()[0], 120)})") from None
    if good_bytes == 0:
        return pl.DataFrame(schema=schema)
    with _open_binary(path) as fh:
        head = fh.read(good_bytes)
    return pl.read_ndjson(io.BytesIO(head), schema=schema)


def _fail_at_first(path: Path, df: pl.DataFrame, bad: pl.Series, field: str, expected: str):
    rows = bad.arg_true()
    if len(rows) == 0:
        return
    record = int(df["_record"][int(rows[0])])
    raise DataError(f"{path}: line {_line_of_record(path, record)}, field {field!r}: "
                    f"{shown(df[field][int(rows[0])])} is not {expected}")


def _line_of_record(path: Path, record: int) -> int:
    """1-based line number of the record-th (0-based) non-blank line; only used for errors."""
    seen = -1
    with _open_text(path) as fh:
        for number, line in enumerate(fh, start=1):
            if line.strip():
                seen += 1
                if seen == record:
                    return number
    return record + 1


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="\n")
    return open(path, encoding="utf-8", errors="replace", newline="\n")


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
