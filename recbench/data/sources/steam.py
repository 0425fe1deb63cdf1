"""`steam`: Steam reviews (UCSD), in the shared derived Parquet layout or the official files.

Reviews, one of (detected from the files present, or chosen with the option `layout`):
- `parquet`: `user_reviews.parquet` (`user_id`, `item_id` = Steam app id, `recommend` (bool or
  0/1), `posted_year`, ...), a flattening of australian_user_reviews.json. Time is the year
  only; within a year the file's row order is kept (it is grouped by game, so it says nothing
  about time).
- `australian`: the official `australian_user_reviews.json[.gz]`, one Python-literal dict per
  user (`user_id`, `user_url`, `reviews`: a list of {`item_id`, `recommend`, `posted`:
  "Posted November 5, 2011.", ...}, newest first). `ts` = the posted date as YYYYMMDD. Steam
  omits the year for reviews of the crawl's own year ("Posted March 3."), so those get the
  latest year that occurs plus one (they are newer than every dated review). Reviews with the
  same date keep chronological order (the list is reversed).
- `reviews`: the official `steam_reviews.json[.gz]` (Kang & McAuley's 7.8M reviews; Python
  literals with `username`, `product_id`, `date` "2017-12-17", ...). It has no recommend flag:
  every review is a positive and CTR negatives are sampled (2 unseen games per user), and the
  user key is `username` (the one id every line has). It is read with vectorised regular
  expressions, not line by line.

Labels: recommend = True is a positive, False a real negative (CTR negatives are the real ones).
A repeated (user, game) pair keeps its earliest review.

Game titles, one of: `steam_games.parquet` (`item_id`, `app_name`, `title`, genre one-hot
columns) or the official `steam_games.json[.gz]` (Python literals: `id`, `app_name`, `title`,
`genres`, `tags`, ...). Text = `app_name` (falling back to `title`, which escapes "&" as
"&amp;"), HTML entities decoded; `genres` (pipe-separated) is kept as an attribute. These ids
join every review of the shared subset (2,892 of 2,892 games).

`item_metadata.csv` (ItemId, Name, Category, Tag, class; from dh-r/LLM-Sequential-
Recommendation) is optional and only adds attributes: its `ItemId` is that project's own
re-numbering (0..11783), not a Steam app id (on the shared subset 178 review ids coincide with an
ItemId, and none of those names match), so it is joined by game name instead (HTML-decoded,
exact; 2,727 of 2,892 reviewed games). Its `Tag` and `Category` ("_"-separated) become `tags`
and `categories` ("|"-separated). It cannot title games by itself.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.raw import NegativeMode, RawTables
from recbench.data.rawfiles import POLARS_ERRORS, check_utf8, find_file, read_csv_checked, shown

DEFAULTS: dict[str, Any] = {"layout": "auto"}
LAYOUTS = {
    "parquet": ("user_reviews.parquet",),
    "australian": ("australian_user_reviews.json", "australian_user_reviews.json.gz"),
    "reviews": ("steam_reviews.json", "steam_reviews.json.gz"),
}
ENTITIES = (["&amp;", "&quot;", "&#39;", "&apos;", "&lt;", "&gt;"],
            ["&", '"', "'", "'", "<", ">"])
MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"], start=1)}
MONTHS.update({m[:3]: i for m, i in list(MONTHS.items())})
NOT_GENRES = {"price", "release_year", "__index_level_0__", "item_id", "id", "early_access",
              "sentiment", "metascore"}
# steam_reviews.json fields, as Python 2 literals: u'...' or u"..." when the text has a quote.
_STR = r"""u?(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")"""
_USER = r"'username': " + _STR
_ITEM = r"'product_id': u?'(\d+)'"
_DATE = r"'date': u?'(\d{4})-(\d{2})-(\d{2})'"


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read Steam reviews + game titles (+ item_metadata.csv attributes) into `RawTables`."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for steam; valid: layout "
                        f"(auto, {', '.join(LAYOUTS)}; default auto)")
    layout = options.get("layout", "auto")
    if layout not in ("auto", *LAYOUTS):
        raise DataError(f"option layout={layout!r}: choose one of auto, {', '.join(LAYOUTS)}")
    notes: list[str] = []
    if layout == "auto":
        layout = _detect(raw_dir)
    reviews_path = find_file(raw_dir, *LAYOUTS[layout])
    items, games_path = _games(raw_dir, notes)
    negatives: NegativeMode = "real"
    if layout == "parquet":
        events = _parquet_reviews(reviews_path, notes)
    elif layout == "australian":
        events = _australian_reviews(reviews_path, notes)
    else:
        events = _steam_reviews(reviews_path, notes)
        negatives = "sampled"
        notes.append(f"{reviews_path.name} has no recommend flag: every review is a positive; "
                     "CTR negatives are sampled")
    notes.insert(0, f"steam layout {layout} ({reviews_path.name} + {games_path.name})")

    before = events.height
    events = events.sort("ts", maintain_order=True).unique(
        ["user_key", "item_key"], keep="first", maintain_order=True)
    if events.height < before:
        notes.append(f"{before - events.height} repeated (user, game) reviews dropped; the "
                     "earliest is kept")
    reviewed = events.select("item_key").unique()
    titled = reviewed.join(items.filter(pl.col("text").is_not_null()), on="item_key",
                           how="semi").height
    notes.append(f"{games_path.name}: {titled} of {reviewed.height} reviewed games have a title")

    files = [reviews_path, games_path]
    meta_path = find_file(raw_dir, "item_metadata.csv", required=False)
    if meta_path is not None:
        files.append(meta_path)
        items = _with_metadata(items, meta_path, reviewed, notes)
    return RawTables(items=items, events=events.lazy(), negatives=negatives, source_files=files,
                     notes=notes, text_attribute="title")


def _detect(raw_dir: Path) -> str:
    found = {name: path for name, names in LAYOUTS.items()
             if (path := find_file(raw_dir, *names, required=False))}
    if not found:
        raise MissingRawFilesError(
            f"{raw_dir}: no Steam reviews; expected user_reviews.parquet, "
            "australian_user_reviews.json[.gz] or steam_reviews.json[.gz] (in this folder or "
            "one below)")
    if len(found) > 1:
        listing = ", ".join(f"{p.name} ({n})" for n, p in found.items())
        raise DataError(f"{raw_dir}: several Steam review files found: {listing}; choose one "
                        "with --option layout=NAME")
    return next(iter(found))


# --- reviews ------------------------------------------------------------------------------------

def _parquet_reviews(path: Path, notes: list[str]) -> pl.DataFrame:
    df = _read_parquet(path, ["user_id", "item_id", "recommend", "posted_year"])
    label = _recommend_label(path, df["recommend"], lambda i: f"row {i + 1}")
    year = df["posted_year"].cast(pl.Int64, strict=False)
    events = pl.DataFrame({
        "user_key": df["user_id"].cast(pl.Utf8), "item_key": df["item_id"].cast(pl.Utf8),
        "ts": year, "label": label,
    })
    before = events.height
    events = events.drop_nulls()
    if events.height < before:
        notes.append(f"{path.name}: {before - events.height} reviews without user, game or "
                     "year dropped")
    notes.append(f"{path.name}: time is the posted year only; reviews of one year keep file "
                 "order")
    return events


def _australian_reviews(path: Path, notes: list[str]) -> pl.DataFrame:
    lines, users, reviews = [], [], []
    for number, record in _literal_lines(path, notes):
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a record ({shown(str(record)[:200])})")
        lines.append(number)
        users.append(record.get("user_id"))
        reviews.append(record.get("reviews"))
    review = pl.Struct({"item_id": pl.Utf8, "recommend": pl.Utf8, "posted": pl.Utf8})
    try:
        df = pl.DataFrame({"line": lines, "user_key": users, "reviews": reviews},
                          schema={"line": pl.Int64, "user_key": pl.Utf8,
                                  "reviews": pl.List(review)}, strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: `reviews` should be a list of records with item_id, "
                        f"recommend and posted ({str(exc).splitlines()[0][:120]})") from None
    if df["user_key"].null_count() == df.height:
        raise DataError(f"{path}: no record has the field 'user_id'")
    df = (df.with_columns(pl.col("reviews").list.len().alias("n"))
          .explode("reviews")
          .filter(pl.col("reviews").is_not_null())
          .with_columns(pl.int_range(pl.len()).over("line").alias("pos"))
          .unnest("reviews"))
    for field in ("item_id", "recommend", "posted"):
        missing = df.filter(pl.col(field).is_null())
        if missing.height:
            raise DataError(f"{path}: line {missing['line'][0]}: a review has no {field!r}")
    df = df.with_columns(_recommend_label(path, df["recommend"],
                                          lambda i: f"line {df['line'][i]}").alias("label"))
    parts = df["posted"].str.extract_groups(
        r"^\s*Posted\s+([A-Za-z]+)\.?\s+(\d{1,2})(?:,\s*(\d{4}))?")
    month = parts.struct.field("1").str.to_lowercase().replace_strict(
        MONTHS, default=None, return_dtype=pl.Int64)
    day = parts.struct.field("2").cast(pl.Int64)
    year = parts.struct.field("3").cast(pl.Int64)
    bad = (month.is_null() | day.is_null()).arg_true()
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}: line {df['line'][i]}: posted {shown(df['posted'][i])} is not "
                        "like 'Posted November 5, 2011.'")
    undated = int(year.is_null().sum())
    if undated:
        fill = int(year.max() or 2017) + 1
        notes.append(f"{path.name}: {undated} reviews posted without a year (Steam omits the "
                     f"current year) dated {fill}, after the latest dated review")
        year = year.fill_null(fill)
    df = df.with_columns((year * 10_000 + month * 100 + day).alias("ts"))
    # Each user's list is newest first: reverse it so equal dates keep chronological order.
    df = df.sort(["line", "pos"], descending=[False, True])
    return df.select("user_key", pl.col("item_id").alias("item_key"), "ts", "label")


def _steam_reviews(path: Path, notes: list[str]) -> pl.DataFrame:
    try:
        lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None,
                            new_columns=["text"], schema={"text": pl.Utf8})
    except (*POLARS_ERRORS, OSError) as exc:
        if path.suffix != ".gz":
            check_utf8(path)
        raise DataError(f"{path}: could not be read as UTF-8 text lines "
                        f"({shown(str(exc).splitlines()[0], 120)})") from None
    df = (lines.with_row_index("line", offset=1)
          .filter(pl.col("text").is_not_null() & (pl.col("text").str.strip_chars() != "")))
    if df.height == 0:
        raise DataError(f"{path}: no records")
    user = pl.coalesce(pl.col("text").str.extract(_USER, 1), pl.col("text").str.extract(_USER, 2))
    date = pl.col("text").str.extract_groups(_DATE)
    df = df.with_columns(
        user.alias("user_key"),
        pl.col("text").str.extract(_ITEM, 1).alias("item_key"),
        (date.struct.field("1").cast(pl.Int64) * 10_000 + date.struct.field("2").cast(pl.Int64)
         * 100 + date.struct.field("3").cast(pl.Int64)).alias("ts"),
    )
    for column, field in (("user_key", "username"), ("item_key", "product_id"), ("ts", "date")):
        if df[column].null_count() == df.height:
            raise DataError(f"{path}: no line has the field {field!r} (expected Python-literal "
                            "records with username, product_id and date 'YYYY-MM-DD')")
    ok = pl.all_horizontal(pl.col(c).is_not_null() for c in ("user_key", "item_key", "ts"))
    bad = df.filter(~ok)
    if bad.height and bad["line"][0] == df["line"][-1] and not _ends_with_newline(path):
        notes.append(f"{path.name}: line {bad['line'][0]} is cut off (no newline, "
                     f"{shown(bad['text'][0])}); dropped")
        df, bad = df.head(df.height - 1), bad.head(0)
    if bad.height:
        raise DataError(f"{path}: line {bad['line'][0]}: expected username, product_id and "
                        f"date 'YYYY-MM-DD' ({shown(bad['text'][0])})")
    return df.select("user_key", "item_key", "ts", pl.lit(1, pl.Int8).alias("label"))


def _recommend_label(path: Path, values: pl.Series, where) -> pl.Series:
    """True/False (bool, 0/1 or text) -> 1/0; anything else is an error naming its place."""
    text = values.cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    label = text.replace_strict({"true": 1, "1": 1, "false": 0, "0": 0}, default=None,
                                return_dtype=pl.Int8)
    bad = label.is_null().arg_true()
    if len(bad):
        i = int(bad[0])
        raise DataError(f"{path}: {where(i)}: recommend {shown(values[i])} is not True or False")
    return label


# --- games --------------------------------------------------------------------------------------

def _games(raw_dir: Path, notes: list[str]) -> tuple[pl.DataFrame, Path]:
    parquet = find_file(raw_dir, "steam_games.parquet", required=False)
    if parquet is not None:
        return _games_parquet(parquet), parquet
    path = find_file(raw_dir, "steam_games.json", "steam_games.json.gz", required=False)
    if path is not None:
        return _games_json(path, notes), path
    hint = ""
    if find_file(raw_dir, "item_metadata.csv", required=False):
        hint = (" (item_metadata.csv is present, but its ItemId is a re-numbering that does not "
                "match Steam app ids, so it cannot title the reviewed games)")
    raise MissingRawFilesError(f"{raw_dir}: no game titles; expected steam_games.parquet or "
                               f"steam_games.json[.gz] (in this folder or one below){hint}")


def _games_parquet(path: Path) -> pl.DataFrame:
    schema = _parquet_schema(path)
    id_col = next((c for c in ("item_id", "id") if c in schema), None)
    if id_col is None:
        raise DataError(f"{path}: missing column 'item_id' (or 'id'); found {list(schema)}")
    names = [c for c in ("app_name", "title") if c in schema]
    if not names:
        raise DataError(f"{path}: missing column 'app_name' (or 'title'); found {list(schema)}")
    genres = [c for c, t in schema.items() if t.is_integer() and c not in NOT_GENRES]
    df = _read_parquet(path, [id_col, *names, *genres])
    # One-hot columns hold only 0/1; a column with other values is not a genre.
    genres = [c for c in genres if df[c].drop_nulls().is_in([0, 1]).all()]
    flags = [pl.when(pl.col(c) == 1).then(pl.lit(c)) for c in genres]
    return df.select(
        pl.col(id_col).cast(pl.Utf8).alias("item_key"),
        _title(names).alias("text"),
        (pl.concat_str(flags, separator="|", ignore_nulls=True) if flags
         else pl.lit(None, pl.Utf8)).alias("genres"),
    ).with_columns(pl.when(pl.col("genres") != "").then(pl.col("genres")).alias("genres"))


def _games_json(path: Path, notes: list[str]) -> pl.DataFrame:
    ids, app_names, titles, genres = [], [], [], []
    for number, record in _literal_lines(path, notes):
        if not isinstance(record, dict):
            raise DataError(f"{path}: line {number} is not a record ({shown(str(record)[:200])})")
        ids.append(record.get("id"))
        app_names.append(record.get("app_name"))
        titles.append(record.get("title"))
        genres.append(record.get("genres"))
    df = pl.DataFrame({"id": ids, "app_name": app_names, "title": titles, "genres": genres},
                      schema={"id": pl.Utf8, "app_name": pl.Utf8, "title": pl.Utf8,
                              "genres": pl.List(pl.Utf8)}, strict=False)
    if df["id"].null_count() == df.height:
        raise DataError(f"{path}: no record has the field 'id'")
    no_id = df["id"].null_count()
    if no_id:
        notes.append(f"{path.name}: {no_id} games without an id skipped")
    return df.filter(pl.col("id").is_not_null()).select(
        pl.col("id").alias("item_key"),
        _title(["app_name", "title"]).alias("text"),
        pl.col("genres").list.join("|").alias("genres"),
    ).with_columns(pl.when(pl.col("genres") != "").then(pl.col("genres")).alias("genres"))


def _title(columns: list[str]) -> pl.Expr:
    nonempty = [pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)) for c in columns]
    return pl.coalesce(nonempty).str.replace_many(*ENTITIES)


def _with_metadata(items: pl.DataFrame, path: Path, reviewed: pl.DataFrame,
                   notes: list[str]) -> pl.DataFrame:
    meta = read_csv_checked(path, {"Name": pl.Utf8, "Category": pl.Utf8, "Tag": pl.Utf8},
                            notes=notes)
    meta = meta.select(
        pl.col("Name").str.replace_many(*ENTITIES).str.strip_chars().alias("_name"),
        pl.col("Tag").str.replace_all("_", "|", literal=True).alias("tags"),
        pl.col("Category").str.replace_all("_", "|", literal=True).alias("categories"),
    ).filter(pl.col("_name").is_not_null()).unique("_name", keep="first", maintain_order=True)
    items = items.with_columns(pl.col("text").str.strip_chars().alias("_name")).join(
        meta, on="_name", how="left", maintain_order="left").drop("_name")
    joined = reviewed.join(items.filter(pl.col("tags").is_not_null()), on="item_key",
                           how="semi").height
    notes.append(f"{path.name}: tags joined by game name to {joined} of {reviewed.height} "
                 "reviewed games (its ItemId is not a Steam app id)")
    return items


# --- reading ------------------------------------------------------------------------------------

def _parquet_schema(path: Path) -> dict[str, pl.DataType]:
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    try:
        return dict(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file "
                        f"({str(exc).splitlines()[0][:120]})") from None


def _read_parquet(path: Path, columns: list[str]) -> pl.DataFrame:
    schema = _parquet_schema(path)
    missing = [c for c in columns if c not in schema]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(schema)}")
    try:
        return pl.read_parquet(path, columns=columns)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"{path}: could not be read ({str(exc).splitlines()[0][:120]})") from None


def _literal_lines(path: Path, notes: list[str]) -> Iterator[tuple[int, Any]]:
    """(line number, record) of a file of JSON or Python-literal lines (never `eval`).

    A final line cut off mid-record is dropped with a note; any other bad line is an error.
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="\n") as fh:
        for number, line in _numbered(fh, path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = _literal(line)
            if record is not _BAD:
                yield number, record
                continue
            if not line.endswith("\n"):  # only the last line can lack one
                notes.append(f"{path.name}: line {number} is cut off (no newline, "
                             f"{shown(line)}); dropped")
                return
            raise DataError(f"{path}: line {number} is neither JSON nor a Python literal "
                                f"({shown(line.strip())})")


_BAD = object()


def _numbered(fh, path: Path) -> Iterator[tuple[int, str]]:
    number = 0
    try:
        for number, line in enumerate(fh, start=1):  # noqa: B007 (used after the loop)
            yield number, line
    except (OSError, EOFError) as exc:  # e.g. a damaged .gz
        raise DataError(f"{path}: could not be read after line {number} ({exc})") from None
    except UnicodeDecodeError:  # the text stream decodes ahead: check_utf8 names the line
        if path.suffix != ".gz":
            check_utf8(path)
        raise DataError(f"{path}: not valid UTF-8 text after line {number}; expected a UTF-8 "
                        "file") from None


def _literal(line: str) -> Any:
    try:
        return ast.literal_eval(line.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return _BAD


def _ends_with_newline(path: Path) -> bool:
    if path.suffix == ".gz":
        last = b"\n"
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                last = block[-1:]
        return last == b"\n"
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"
