"""MovieLens (GroupLens): the official ml-100k, ml-1m and ml-latest(-small) / ml-25m layouts.

The layout is detected from the ratings file present (in the raw folder or one folder below,
as the official zips unpack), or forced with the option `layout`:
- `ml-100k`: `u.data` (tab-separated `user item rating timestamp`, no header) and `u.item`
  (pipe-separated, latin-1: id | title | release date | video release date | IMDb URL | 19 genre
  flags). Genre names come from `u.genre` when present, else the documented 19 names. One movie
  is titled "unknown" (id 267, no date, no genre): it has no real title, so it gets no text and
  the protocol drops it (counted in the notes).
- `ml-1m`: `ratings.dat` (`UserID::MovieID::Rating::Timestamp`) and `movies.dat`
  (`MovieID::Title::Genres`), latin-1. ml-10m's `.dat` files have the same form and load too.
- `ml-latest`: `ratings.csv` (`userId,movieId,rating,timestamp`, header, half-star ratings) and
  `movies.csv` (`movieId,title,genres`, titles quoted when they contain commas), UTF-8:
  ml-latest-small, ml-latest, ml-20m, ml-25m, ml-32m.

Text = the title as released ("Toy Story (1995)"); `genres` (pipe-separated, null for "(no genres
listed)") is kept as an item attribute. `ts` = the Unix timestamp; ties keep file order.
Labels: rating >= `pos_threshold` (4) positive, <= `neg_threshold` (2) a real negative, those
between (3, and 2.5 / 3.5 on half-star scales) dropped; CTR negatives are the real ones.
Files are decoded as UTF-8, falling back to latin-1 (the encoding of the older releases). A
final line cut off mid-row is dropped with a note; any other malformed line is an error naming
its line number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked, shown

DEFAULTS: dict[str, Any] = {"layout": "auto", "pos_threshold": 4, "neg_threshold": 2}
# layout -> (ratings file, movies file); the ratings file identifies the layout.
LAYOUTS = {
    "ml-100k": ("u.data", "u.item"),
    "ml-1m": ("ratings.dat", "movies.dat"),
    "ml-latest": ("ratings.csv", "movies.csv"),
}
ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western"]
ML100K_ITEM_FIELDS = ["movie_id", "title", "release_date", "video_release_date", "imdb_url"]
RATING_FIELDS = ["user", "movie", "rating", "timestamp"]
RATING_TYPES: dict[str, pl.DataType] = {"user": pl.Int64, "movie": pl.Int64,
                                        "rating": pl.Float64, "timestamp": pl.Int64}


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Detect the MovieLens layout in `raw_dir` and read its ratings and movies."""
    o = _options(options)
    notes: list[str] = []
    layout = _detect(raw_dir) if o["layout"] == "auto" else o["layout"]
    ratings_name, movies_name = LAYOUTS[layout]
    ratings_path = find_file(raw_dir, ratings_name)
    movies_path = find_file(raw_dir, movies_name)
    files = [ratings_path, movies_path]
    notes.append(f"MovieLens layout {layout} ({ratings_path.name} + {movies_path.name})")

    if layout == "ml-latest":
        ratings = _complete_rows(read_csv_checked(
            ratings_path, {"userId": pl.Int64, "movieId": pl.Int64, "rating": pl.Float64,
                           "timestamp": pl.Int64}, notes=notes), ratings_path,
        ).rename({"userId": "user", "movieId": "movie"})
        movies = _complete_rows(read_csv_checked(
            movies_path, {"movieId": pl.Int64, "title": pl.Utf8, "genres": pl.Utf8}, notes=notes),
            movies_path, ["movieId"])
        items = movies.select(pl.col("movieId").alias("movie"), "title", "genres")
    elif layout == "ml-1m":
        ratings = read_delimited(ratings_path, RATING_FIELDS, RATING_TYPES, "::", notes)
        items = read_delimited(movies_path, ["movie", "title", "genres"],
                               {"movie": pl.Int64, "title": pl.Utf8, "genres": pl.Utf8}, "::",
                               notes)
    else:
        ratings = read_delimited(ratings_path, RATING_FIELDS, RATING_TYPES, "\t", notes)
        genre_path = find_file(raw_dir, "u.genre", required=False)
        genres = _ml100k_genres(genre_path, notes) if genre_path else ML100K_GENRES
        if genre_path:
            files.append(genre_path)
        items = _ml100k_items(movies_path, genres, notes)

    items = items.select(
        pl.col("movie").cast(pl.Utf8).alias("item_key"),
        pl.col("title").alias("text"),
        pl.when(pl.col("genres").is_in(["(no genres listed)", ""])).then(None)
        .otherwise(pl.col("genres")).alias("genres"),
    )
    between = ratings.filter((pl.col("rating") > o["neg_threshold"])
                             & (pl.col("rating") < o["pos_threshold"])).height
    if between:
        notes.append(f"{between} of {ratings.height} ratings between {o['neg_threshold']} and "
                     f"{o['pos_threshold']} (exclusive) dropped: neither positive nor negative")
    rating = pl.col("rating")
    events = ratings.select(
        pl.col("user").cast(pl.Utf8).alias("user_key"),
        pl.col("movie").cast(pl.Utf8).alias("item_key"),
        pl.col("timestamp").alias("ts"),
        pl.when(rating >= o["pos_threshold"]).then(1).when(rating <= o["neg_threshold"]).then(0)
        .otherwise(None).cast(pl.Int8).alias("label"),
    )
    events = _first_per_pair(events, notes).filter(pl.col("label").is_not_null())
    return RawTables(items=items, events=events.lazy(), negatives="real", source_files=files,
                     notes=notes, text_attribute="title")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for MovieLens; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    if o["layout"] not in ("auto", *LAYOUTS):
        raise DataError(f"option layout={o['layout']!r}: choose one of auto, "
                        f"{', '.join(LAYOUTS)}")
    for key in ("pos_threshold", "neg_threshold"):
        if isinstance(o[key], bool) or not isinstance(o[key], int | float):
            raise DataError(f"option {key} must be a number, not {o[key]!r}")
    if o["neg_threshold"] >= o["pos_threshold"]:
        raise DataError(f"option neg_threshold ({o['neg_threshold']}) must be below "
                        f"pos_threshold ({o['pos_threshold']})")
    return o


def _detect(raw_dir: Path) -> str:
    found = {name: path for name, (ratings, _) in LAYOUTS.items()
             if (path := find_file(raw_dir, ratings, required=False))}
    if not found:
        raise MissingRawFilesError(
            f"{raw_dir}: no MovieLens ratings file; expected u.data (ml-100k), ratings.dat "
            "(ml-1m) or ratings.csv (ml-latest, ml-25m), in this folder or one below")
    if len(found) > 1:
        listing = ", ".join(f"{p.relative_to(raw_dir)} ({n})" for n, p in found.items())
        raise DataError(f"{raw_dir}: several MovieLens layouts found: {listing}; choose one with "
                        "--option layout=NAME")
    return next(iter(found))


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


def _first_per_pair(events: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """Keep the earliest rating of each (user, movie) pair (ties: file order)."""
    before = events.height
    events = events.sort("ts", maintain_order=True).unique(
        ["user_key", "item_key"], keep="first", maintain_order=True)
    if events.height < before:
        notes.append(f"{before - events.height} repeated (user, movie) ratings dropped; the "
                     "earliest is kept")
    return events


def _ml100k_items(path: Path, genres: list[str], notes: list[str]) -> pl.DataFrame:
    names = ML100K_ITEM_FIELDS + [f"g{i}" for i in range(len(genres))]
    types: dict[str, pl.DataType] = {"movie_id": pl.Int64, "title": pl.Utf8}
    types.update({f"g{i}": pl.Int8 for i in range(len(genres))})
    raw = read_delimited(path, names, types, "|", notes)
    flags = [pl.when(pl.col(f"g{i}") == 1).then(pl.lit(g)) for i, g in enumerate(genres)]
    unknown = raw.filter(pl.col("title").str.strip_chars() == "unknown").height
    if unknown:
        notes.append(f"{path.name}: {unknown} movie(s) titled 'unknown' get no text")
    return raw.select(
        pl.col("movie_id").alias("movie"),
        pl.when(pl.col("title").str.strip_chars() == "unknown").then(None)
        .otherwise(pl.col("title")).alias("title"),
        pl.concat_str(flags, separator="|", ignore_nulls=True).alias("genres"),
    )


def _ml100k_genres(path: Path, notes: list[str]) -> list[str]:
    table = read_delimited(path, ["name", "index"], {"name": pl.Utf8, "index": pl.Int64}, "|",
                           notes)
    table = table.sort("index")
    if table["index"].to_list() != list(range(table.height)):
        raise DataError(f"{path}: genre indices should run 0..{table.height - 1}; found "
                        f"{table['index'].to_list()}")
    return table["name"].to_list()


def read_delimited(path: Path, names: list[str], types: dict[str, pl.DataType], separator: str,
                   notes: list[str]) -> pl.DataFrame:
    """The `types` columns of a header-less file whose fields are split by a literal separator.

    For the older GroupLens formats, which use no quoting, separators of several characters
    (`::`) and latin-1 text, none of which a CSV reader handles. Every line must have exactly
    `len(names)` fields; blank lines are skipped.
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    ends_nl = text.endswith("\n")
    lines = pl.Series("line", [text]).str.split("\n").explode()
    if ends_nl:
        lines = lines.head(len(lines) - 1)
    df = (pl.DataFrame({"line": lines}).with_row_index("lineno", offset=1)
          .with_columns(pl.col("line").str.strip_chars_end("\r"))
          .filter(pl.col("line").str.strip_chars() != ""))
    if df.height == 0:
        raise DataError(f"{path}: no data lines")
    df = df.with_columns(pl.col("line").str.split(separator).alias("fields"))
    raw = {c: pl.col("fields").list.get(names.index(c), null_on_oob=True).str.strip_chars()
           for c in types}
    df = df.with_columns(
        (pl.col("fields").list.len() == len(names)).alias("shape_ok"),
        *[e.cast(types[c], strict=False).alias(f"_v_{c}") for c, e in raw.items()],
        *[e.alias(f"_r_{c}") for c, e in raw.items()],
    )
    value_ok = [~(pl.col(f"_v_{c}").is_null() & pl.col(f"_r_{c}").is_not_null()) for c in types]
    df = df.with_columns((pl.col("shape_ok") & pl.all_horizontal(value_ok)).alias("ok"))
    if not ends_nl and not df["ok"][-1]:
        last = df.row(-1, named=True)
        notes.append(f"{path.name}: line {last['lineno']} is cut off (no newline, "
                     f"{shown(last['line'])}); dropped")
        df = df.head(df.height - 1)
    bad = df.filter(~pl.col("ok"))
    if bad.height:
        row = bad.row(0, named=True)
        where = f"{path}: line {row['lineno']}"
        if not row["shape_ok"]:
            raise DataError(f"{where}: expected {len(names)} fields separated by {separator!r} "
                            f"({', '.join(names)}), found {len(row['fields'])}: "
                            f"{shown(row['line'])}")
        col = next(c for c in types if row[f"_v_{c}"] is None and row[f"_r_{c}"] is not None)
        raise DataError(f"{where}, field {col!r}: {shown(row[f'_r_{col}'])} is not a valid "
                        f"{types[col]}")
    return df.select([pl.col(f"_v_{c}").alias(c) for c in types])
