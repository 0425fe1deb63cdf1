"""`amazon-<category>`: Amazon reviews + metadata in any of their public layouts.

Layouts (file names use the `category` option, e.g. `Beauty`, `Video_Games`; names are matched
case-insensitively, in the raw folder or one folder below; `.gz` versions are read too, except
for the ratings CSV, which is only published plain):

- `2023` (McAuley lab, Amazon Reviews'23): `{Category}.jsonl` with `user_id`, `parent_asin`,
  `rating`, `timestamp` (milliseconds); `meta_{Category}.jsonl` with `parent_asin`, `title`
  (`store` kept as `brand`). Items are parent ASINs, the key the metadata uses.
- `2018` (Ni et al., "Amazon review data (2018)"): `{Category}_5.json` (5-core, preferred) or
  `{Category}.json`, strict JSON lines with `reviewerID`, `asin`, `overall`, `unixReviewTime`
  (seconds); `meta_{Category}.json`, strict JSON lines with `asin`, `title` (`brand` kept).
- `2014` (McAuley et al., SNAP): `reviews_{Category}_5.json` (preferred) or
  `reviews_{Category}.json`, same review fields as 2018; `meta_{Category}.json`, whose lines are
  Python literals (`{'asin': '...', 'title': "L'Oreal ..."}`), parsed with `ast.literal_eval`
  (never `eval`) when a line is not JSON.
- `ratings` (the 2014 "ratings only" files): `ratings_{Category}.csv`, header-less
  `user,item,rating,timestamp`. It carries no titles, so `meta_{Category}.json` is required.
- `p5`: `sequential_data.txt` + `datamaps.json` (+ item names): delegated to
  `recbench.data.sources.p5`.
- `recbole`: `NAME.item` + `NAME[.split].inter` atomic files: delegated to
  `recbench.data.sources.recbole`.

Detection order, when the `layout` option does not force one: 2023, 2018, 2014, ratings, p5,
recbole; the first layout whose interaction file is present wins. Raw review dumps come first
because they carry ratings (real negatives) and timestamps, which the preprocessed P5 and RecBole
layouts have lost; newer dumps come before older ones, 5-core files before full ones. Other
layouts found beside the chosen one are named in the notes. A layout's interaction file without
its metadata file is an error (titles are the text attribute), not a reason to try the next one.

Review layouts: rating >= 4 is a positive, <= 2 a real negative, 3 is dropped (counted); CTR
negatives are the user's real negatives. Records lacking a needed field are dropped and counted;
a field absent from every record is an error naming the file and field. A repeated
(user, item) pair keeps its earliest review. `unixReviewTime` has day resolution, so same-day
reviews keep file order. Metadata is restricted to reviewed items; a repeated item keeps its
first record with a title; items without a metadata record or title are counted here and dropped
by the protocol.

Options: `category` (set by the catalog), `layout` (one of `LAYOUTS`). With a delegated layout,
other options go to that loader (e.g. `text_field` for recbole).
"""

from __future__ import annotations

import ast
import fnmatch
import gzip
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.keys import repeated_rows
from recbench.data.raw import RawTables
from recbench.data.rawfiles import (
    iter_json_lines,
    read_csv_checked,
    read_ndjson_blocks,
    shown,
)

LAYOUTS = ("2023", "2018", "2014", "ratings", "p5", "recbole")
OWN_OPTIONS = ("category", "layout")
POS_THRESHOLD = 4.0
NEG_THRESHOLD = 2.0


@dataclass(frozen=True)
class ReviewLayout:
    """Field names of one review-dump layout."""

    name: str
    user: str
    item: str
    rating: str
    time: str
    time_unit: str
    meta_key: str
    brand: str
    meta_loose: bool  # metadata lines may be Python literals


REVIEW_LAYOUTS = {
    "2023": ReviewLayout("2023", "user_id", "parent_asin", "rating", "timestamp", "milliseconds",
                         "parent_asin", "store", meta_loose=False),
    "2018": ReviewLayout("2018", "reviewerID", "asin", "overall", "unixReviewTime", "seconds",
                         "asin", "brand", meta_loose=True),
    "2014": ReviewLayout("2014", "reviewerID", "asin", "overall", "unixReviewTime", "seconds",
                         "asin", "brand", meta_loose=True),
}


DELEGATED = ("p5", "recbole")


def expected_files(category: str | None) -> dict[str, tuple[list[str], list[str]]]:
    """layout -> (interaction file names in order of preference, metadata file names)."""
    c = category or "{Category}"
    gz = ("", ".gz")
    meta_json = [f"meta_{c}.json{z}" for z in gz]
    return {
        "2023": ([f"{c}.jsonl{z}" for z in gz], [f"meta_{c}.jsonl{z}" for z in gz]),
        "2018": ([f"{c}_5.json{z}" for z in gz] + [f"{c}.json{z}" for z in gz], meta_json),
        "2014": ([f"reviews_{c}_5.json{z}" for z in gz] + [f"reviews_{c}.json{z}" for z in gz],
                 meta_json),
        "ratings": ([f"ratings_{c}.csv"], meta_json),
        "p5": (["sequential_data.txt"], ["datamaps.json"]),
        "recbole": (["*.inter"], ["*.item"]),
    }


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Detect the layout of `raw_dir` (or use `options["layout"]`) and read it."""
    category = None if options.get("category") is None else str(options["category"])
    forced = None if options.get("layout") is None else str(options["layout"])
    if forced is not None and forced not in LAYOUTS:
        raise DataError(f"unknown amazon layout {forced!r}; choose one of {', '.join(LAYOUTS)}")
    rest = {k: v for k, v in options.items() if k not in OWN_OPTIONS}
    files = _FileIndex(raw_dir)
    expected = expected_files(category)
    layout, interactions, note = _detect(raw_dir, files, expected, category, forced)

    if layout in DELEGATED:
        import importlib

        module = importlib.import_module(f"recbench.data.sources.{layout}")
        tables = module.load(raw_dir, rest)
        tables.notes.insert(0, note)
        return tables
    if rest:
        raise DataError(f"unknown option(s) {sorted(rest)} for the amazon {layout} layout; "
                        f"valid: {', '.join(OWN_OPTIONS)}")
    meta_path = files.first(expected[layout][1])
    if meta_path is None:
        raise MissingRawFilesError(
            f"{raw_dir}: found {interactions.name} ({layout} layout) but no item metadata; "
            f"expected {' or '.join(expected[layout][1])} (titles are the text attribute)")
    notes = [note]
    if layout == "ratings":
        events = _ratings_csv(interactions, notes)
        spec = REVIEW_LAYOUTS["2014"]
    else:
        spec = REVIEW_LAYOUTS[layout]
        events = _reviews(interactions, spec, notes)
    items = _meta(meta_path, spec, events, notes)
    return RawTables(items=items, events=events.lazy(), negatives="real",
                     source_files=[interactions, meta_path], notes=notes, text_attribute="title")


def _detect(raw_dir: Path, files: _FileIndex, expected: dict, category: str | None,
            forced: str | None) -> tuple[str, Path, str]:
    """(layout, its interaction file, a note saying how it was chosen)."""
    if category is None and forced is not None and forced not in DELEGATED:
        raise DataError(f"the amazon {forced} layout needs the `category` option "
                        "(e.g. -o category=Beauty) to find its files")
    # Without a category only the layouts whose file names do not contain it can be found.
    candidates = [forced] if forced else [
        lay for lay in LAYOUTS if category is not None or lay in DELEGATED]
    found = {lay: files.first(expected[lay][0]) for lay in candidates}
    present = [lay for lay in candidates if found[lay] is not None]
    if not present:
        # Globs are shown as the atomic-file convention: NAME.inter, NAME.item.
        listing = "; ".join(
            f"{lay}: {' or '.join(expected[lay][0])} + {' or '.join(expected[lay][1])}"
            .replace("*.", "NAME.") for lay in (candidates if forced else LAYOUTS))
        what = f"the amazon {forced} layout" if forced else "any amazon layout"
        raise MissingRawFilesError(f"{raw_dir}: no files of {what} for category "
                                   f"{category!r}; expected {listing}")
    layout = present[0]
    how = "forced by the layout option" if forced else "detected"
    note = f"amazon layout {layout} ({how}, from {found[layout].name})"
    if len(present) > 1:
        note += f"; also present: {', '.join(present[1:])} (choose one with -o layout=NAME)"
    return layout, found[layout], note


# --- review dumps ---------------------------------------------------------------------------

def _reviews(path: Path, spec: ReviewLayout, notes: list[str]) -> pl.DataFrame:
    fields = {spec.user: pl.Utf8, spec.item: pl.Utf8, spec.rating: pl.Float64,
              spec.time: pl.Int64}
    df = read_json_fields(path, fields, required=list(fields), notes=notes)
    # An empty id is no id: such a review is dropped and counted like one without the field.
    df = df.with_columns(pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)).alias(c)
                         for c in (spec.user, spec.item))
    df = _drop_incomplete(df, path, notes, what="reviews")
    notes.append(f"{path.name}: {df.height} reviews; ts = {spec.time} ({spec.time_unit})")
    return _labelled(df.rename({spec.user: "user_key", spec.item: "item_key",
                                spec.rating: "rating", spec.time: "ts"}), path, notes)


def _ratings_csv(path: Path, notes: list[str]) -> pl.DataFrame:
    cols = {"user": pl.Utf8, "item": pl.Utf8, "rating": pl.Float64, "timestamp": pl.Int64}
    df = read_csv_checked(path, cols, has_header=False, new_columns=list(cols), notes=notes)
    df = _drop_incomplete(df, path, notes, what="ratings")
    notes.append(f"{path.name}: {df.height} ratings; ts = timestamp (seconds)")
    return _labelled(df.rename({"user": "user_key", "item": "item_key", "timestamp": "ts"}),
                     path, notes)


def _labelled(df: pl.DataFrame, path: Path, notes: list[str]) -> pl.DataFrame:
    """user_key, item_key, ts, label from ratings; 3s dropped, repeated pairs keep the first.

    Rows stay in file order (the protocol orders each user's events by time, ties by row).
    """
    r = pl.col("rating")
    neutral = df.select(((r > NEG_THRESHOLD) & (r < POS_THRESHOLD)).sum()).item()
    if neutral:
        notes.append(f"{path.name}: {neutral} ratings between {NEG_THRESHOLD:g} and "
                     f"{POS_THRESHOLD:g} (exclusive) dropped: neither positive nor negative")
    df = df.select(
        "user_key", "item_key", "ts",
        pl.when(r >= POS_THRESHOLD).then(1).when(r <= NEG_THRESHOLD).then(0)
        .otherwise(None).cast(pl.Int8).alias("label"),
    ).drop_nulls("label")
    before = df.height
    repeated = repeated_rows(df, ["user_key", "item_key"], order_by="ts")
    if repeated is not None:
        df = df.filter(~repeated)
    if df.height < before:
        notes.append(f"{path.name}: {before - df.height} repeated (user, item) reviews dropped; "
                     "the earliest is kept")
    return df


def _drop_incomplete(df: pl.DataFrame, path: Path, notes: list[str], what: str) -> pl.DataFrame:
    before = df.height
    if any(df.null_count().row(0)):
        df = df.drop_nulls()
    if df.height < before:
        notes.append(f"{path.name}: {before - df.height} {what} lacking a needed field "
                     "(absent, null or an empty id) dropped")
    if df.height == 0:
        raise DataError(f"{path}: no usable record")
    return df


def _meta(path: Path, spec: ReviewLayout, events: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """item_key, text (title), brand for the reviewed items."""
    meta = read_meta(path, key=spec.meta_key, loose=spec.meta_loose, extra={spec.brand: "brand"},
                     notes=notes)
    keys = events["item_key"]
    # Dumps are grouped by item: the first key of each run is enough to find the distinct ones.
    reviewed = keys.filter(keys.ne_missing(keys.shift(1)).fill_null(True)).unique().to_frame()
    meta = meta.join(reviewed, on="item_key", how="semi")
    named = meta.filter(pl.col("text").str.strip_chars().str.len_chars() > 0)
    n_reviewed, n_meta = reviewed.height, meta["item_key"].n_unique()
    n_named = named["item_key"].n_unique()
    notes.append(f"{path.name}: titles for {n_named} of {n_reviewed} reviewed items "
                 f"({n_reviewed - n_meta} without a metadata record, {n_meta - n_named} with a "
                 "missing or empty title)")
    # A repeated item keeps its first record that has a title.
    untitled = pl.col("text").str.strip_chars().str.len_chars().fill_null(0) == 0
    return (meta.with_row_index("_row").sort(untitled, "_row")
            .unique("item_key", keep="first", maintain_order=True)
            .sort("_row").drop("_row"))


def read_meta(path: Path, *, key: str = "asin", loose: bool = True,
              extra: dict[str, str] | None = None, notes: list[str] | None = None
              ) -> pl.DataFrame:
    """Item metadata as `item_key`, `text` (the title) and the `extra` fields (renamed).

    Records without the key are dropped; a missing title stays null, so that the protocol counts
    it. Used by the amazon review layouts and by the p5 layout's `meta*.json`.
    """
    extra = extra or {}
    fields = {key: pl.Utf8, "title": pl.Utf8, **{f: pl.Utf8 for f in extra}}
    df = read_json_fields(path, fields, loose=loose, required=[key, "title"], notes=notes)
    df = df.filter(pl.col(key).is_not_null()).rename({key: "item_key", "title": "text", **extra})
    for name in extra.values():
        if df[name].null_count() == df.height:
            df = df.drop(name)
    return df


# --- JSON lines, plain or gzip --------------------------------------------------------------

def read_json_fields(path: Path, fields: dict[str, pl.DataType], *, loose: bool = False,
                     required: Sequence[str] = (), notes: list[str] | None = None
                     ) -> pl.DataFrame:
    """Read `fields` from a JSON-lines file (plain or `.gz`); absent fields are null.

    Fast path: polars parses the file with a schema of just these fields and their types, block
    by block (`rawfiles.read_ndjson_blocks`: a multi-GB dump never sits in memory whole). If a
    value does not have its type there (`"overall": "5"`, `"unixReviewTime": 1.3e9`), the file
    is parsed again with every field read as text, then cast, so that a bad value is reported
    with its line. A file polars cannot parse (a malformed line, or the Python-literal lines of
    the 2014 metadata) is read line by line, which names the offending line.

    Raises:
        DataError: a field of `required` absent from every record (naming file and field), a
            value that is not of its type (naming line and field), a malformed line.
    """
    try:
        # The common case, fastest: every value already has its type (numbers as numbers).
        out = (pl.read_ndjson(path, schema=fields) if path.suffix == ".gz"
               else read_ndjson_blocks(path, fields))
    except (pl.exceptions.PolarsError, OSError):  # a value of another type, a bad line, ...
        out = None
    if out is not None:
        _check_fields(out, path, fields, required, loose)
        return out
    text_schema = {f: pl.Utf8 for f in fields}
    try:
        raw = pl.read_ndjson(path, schema=text_schema)
    except (pl.exceptions.PolarsError, OSError):  # OSError: e.g. a truncated .gz
        raw = _read_line_by_line(path, list(fields), loose, notes)
    _check_fields(raw, path, fields, required, loose)
    out = raw.with_columns(_cast(pl.col(f), t) for f, t in fields.items())
    for f, t in fields.items():
        bad = (out[f].is_null() & raw[f].is_not_null()).arg_true()
        if len(bad):
            record = int(bad[0])
            line = _line_of_record(path, record, loose)
            raise DataError(f"{path}: line {line}, field {f!r}: {shown(raw[f][record])} is not a "
                            f"valid {t}")
    return out


def _check_fields(df: pl.DataFrame, path: Path, fields: dict[str, pl.DataType],
                  required: Sequence[str], loose: bool) -> None:
    if df.height == 0:
        raise DataError(f"{path}: no JSON record")
    missing = [f for f in required if df[f].null_count() == df.height]
    if missing:
        first = next(_records(path, loose, []))[1]
        raise DataError(f"{path}: no record has the field(s) {missing}; expected "
                        f"{', '.join(fields)}; the first record has {sorted(first)[:20]}")


def _cast(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Utf8:
        return col
    if dtype.is_integer():
        # "1388534400.0" is a valid timestamp in some dumps.
        return col.cast(pl.Float64, strict=False).cast(dtype, strict=False)
    return col.cast(dtype, strict=False)


def _read_line_by_line(path: Path, fields: list[str], loose: bool, notes: list[str] | None
                       ) -> pl.DataFrame:
    cols: dict[str, list[str | None]] = {f: [] for f in fields}
    for _, record in _records(path, loose, notes):
        for f in fields:
            value = record.get(f)
            cols[f].append(None if value is None else str(value))
    return pl.DataFrame(cols, schema={f: pl.Utf8 for f in fields})


def _records(path: Path, loose: bool, notes: list[str] | None = None
             ) -> Iterator[tuple[int, dict]]:
    """(line number, record) per non-empty line; `.gz` files are decompressed on the fly.

    A cut-off last line is dropped and noted in `notes` (an error without them)."""
    lines = (iter_json_lines(path, loose=loose, notes=notes) if path.suffix != ".gz"
             else _gz_records(path, loose, notes))
    for number, record in lines:
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a JSON object")
        yield number, record


def _gz_records(path: Path, loose: bool, notes: list[str] | None = None
                ) -> Iterator[tuple[int, Any]]:
    """`rawfiles.iter_json_lines` for a gzip file (same parsing, same messages)."""
    try:
        with gzip.open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise DataError(f"{path}: line {number} is not valid UTF-8 text "
                                    f"({shown(raw)}); expected a UTF-8 file") from None
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                    continue
                except json.JSONDecodeError:
                    pass
                if loose:
                    try:
                        yield number, ast.literal_eval(line)
                        continue
                    except (ValueError, SyntaxError):
                        pass
                if not raw.endswith(b"\n") and notes is not None:
                    notes.append(f"{path.name}: line {number} is cut off (no newline, "
                                 f"{shown(line)}); dropped")
                    return
                raise DataError(f"{path}: line {number} is not valid JSON "
                                f"({shown(line.strip())})")
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None


def _line_of_record(path: Path, index: int, loose: bool) -> int:
    for i, (number, _) in enumerate(_records(path, loose)):
        if i == index:
            return number
    return index + 1


# --- finding files ----------------------------------------------------------------------------

class _FileIndex:
    """The files of a raw folder and the folders one below, looked up case-insensitively."""

    def __init__(self, raw_dir: Path):
        top = sorted(p for p in raw_dir.iterdir() if p.is_file()) if raw_dir.is_dir() else []
        below = sorted(p for p in raw_dir.glob("*/*") if p.is_file())
        self.files = top + below  # the raw folder itself first

    def first(self, patterns: Sequence[str]) -> Path | None:
        """The first file matching the first pattern that matches any.

        A pattern with `*` is a glob; any other is an exact name (a category is never a glob).
        """
        for pattern in patterns:
            p = pattern.lower()
            for path in self.files:
                name = path.name.lower()
                if (fnmatch.fnmatchcase(name, p) if "*" in p else name == p):
                    return path
        return None
