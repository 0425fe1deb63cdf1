"""`mind`: the MIND news-click logs (Microsoft News), official train/dev layout.

Layout (one folder per split, e.g. `MINDsmall_train/`; tab-separated, no header, UTF-8):
- `news.tsv`: 8 columns `news_id, category, subcategory, title, abstract, url, title_entities,
  abstract_entities`. Titles contain `"` characters that are not CSV quotes, so the file is read
  with no quote character.
- `behaviors.tsv`: 5 columns `impression_id, user_id, time, history, impressions`. `time` is
  `11/12/2019 2:14:46 PM` (month/day/year, 12-hour clock); `history` is the user's clicks before
  the logging period, space-separated news ids, oldest first (may be empty); `impressions` is the
  list shown, `N1234-1` (clicked) / `N1234-0` (not clicked). The test split has no `-label`
  suffixes; it cannot be benchmarked and is refused with a clear error.

Processing decisions:
- Items are the rows of `news.tsv`: text = `title`; `category` and `subcategory` are kept as item
  attributes. News ids referenced by behaviors.tsv without a row in news.tsv (many in a subset)
  are counted in the notes; the protocol drops their events, impression rows and history entries.
- `ts` is the impression time in epoch seconds (the logged wall-clock time read as UTC).
- CTR rows come from the impression log (negatives="impressions"): one row per shown item with its
  label, the impression id, time and the history column of that line.
- Events (behaviour sequences for SeqRec, and the users of CTR) are the user's positives in time
  order: the history of the user's earliest impression (ties: file order), placed just before it
  (`ts - len + i`, so strictly earlier and in order), then every clicked impression item at its
  impression time (ties: file order, then position in the list). A repeated (user, news) positive
  keeps its first occurrence.
- If the folder holds several splits (e.g. `MINDsmall_train/` and `MINDsmall_dev/` below it), the
  one directly in the folder wins, then a sub-folder whose name contains "train"; the choice is
  noted. news.tsv is always taken from the same folder as behaviors.tsv.

A user's history is the same on each of the user's lines, so the history text is split once per
distinct history (~2.5x fewer tokens at MIND scale) and shared by the lines that carry it.

The loader takes no options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.keys import encode_keys, lookup_rows, repeated_rows
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked, shown

NEWS_COLUMNS = ("news_id", "category", "subcategory", "title", "abstract", "url",
                "title_entities", "abstract_entities")
BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
DEFAULTS: dict[str, Any] = {}


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read MIND's news.tsv + behaviors.tsv into `RawTables` (see the module docstring)."""
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for mind; valid: "
                        f"{', '.join(DEFAULTS) or 'none (mind takes no options)'}")
    notes: list[str] = []
    folder = _split_folder(raw_dir, notes)
    behaviors_path = find_file(folder, "behaviors.tsv")
    news_path = folder / "news.tsv"
    if not news_path.is_file():
        raise MissingRawFilesError(f"{folder}: behaviors.tsv has no news.tsv beside it (MIND "
                                   "splits ship both files in one folder)")

    items = _news(news_path, notes)
    behaviors, histories = _behaviors(behaviors_path, notes)
    shown = _shown_items(behaviors, behaviors_path)
    events = _positive_events(behaviors, histories, shown, notes)
    _report_coverage(behaviors, histories, shown, items, notes)

    # The history is given once per impression, not copied onto each of its shown items.
    impressions = shown.lazy().select("user_key", "impression", "ts", "item_key", "label")
    per_line = behaviors.lazy().select(
        "impression", pl.lit(histories).gather(pl.col("history")).alias("history"))
    return RawTables(items=items, events=events.lazy(), negatives="impressions",
                     impressions=impressions, impression_histories=per_line,
                     source_files=[news_path, behaviors_path], notes=notes,
                     text_attribute="title")


def _split_folder(raw_dir: Path, notes: list[str]) -> Path:
    """The folder holding the split's behaviors.tsv (see the module docstring for the choice)."""
    if (raw_dir / "behaviors.tsv").is_file():
        return raw_dir
    below = sorted(p.parent for p in raw_dir.glob("*/behaviors.tsv") if p.is_file())
    if not below:
        raise MissingRawFilesError(f"{raw_dir}: expected MIND's behaviors.tsv and news.tsv (in "
                                   "this folder or one below, e.g. MINDsmall_train/)")
    if len(below) == 1:
        return below[0]
    train = [p for p in below if "train" in p.name.lower()]
    chosen = train[0] if train else below[0]
    notes.append(f"several MIND splits found ({', '.join(p.name for p in below)}); "
                 f"using {chosen.name}")
    return chosen


def _news(path: Path, notes: list[str]) -> pl.DataFrame:
    news = read_csv_checked(
        path, {"news_id": pl.Utf8, "category": pl.Utf8, "subcategory": pl.Utf8,
               "title": pl.Utf8},
        separator="\t", has_header=False, new_columns=NEWS_COLUMNS, quote_char=None, notes=notes)
    missing_id = news.select(pl.col("news_id").is_null().arg_true()).to_series()
    if len(missing_id):
        raise DataError(f"{path}: line {int(missing_id[0]) + 1}, column 'news_id' is empty")
    return news.select(pl.col("news_id").alias("item_key"), pl.col("title").alias("text"),
                       "category", "subcategory")


def _behaviors(path: Path, notes: list[str]) -> tuple[pl.DataFrame, pl.Series]:
    """The impressions, and the distinct histories (lists of news ids) they carry.

    One row per impression: line, impression, user_key, ts, history (a row of the distinct
    histories), impressions (the raw list). A line repeating an earlier impression id is
    dropped (the first is kept) and counted in `notes`: one impression id, one impression.
    """
    raw = read_csv_checked(
        path, {"impression_id": pl.Int64, "user_id": pl.Utf8, "time": pl.Utf8,
               "history": pl.Utf8, "impressions": pl.Utf8},
        separator="\t", has_header=False, new_columns=BEHAVIOR_COLUMNS, quote_char=None,
        notes=notes)
    df = raw.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("line"),
        pl.col("impression_id").alias("impression"),
        pl.col("user_id").alias("user_key"),
        pl.col("time"),
        pl.col("time").str.strptime(pl.Datetime("us"), TIME_FORMAT, strict=False)
        .dt.epoch("s").alias("ts"),
        pl.col("history"),
        pl.col("impressions"),
    )
    # polars fills the missing fields of a short line with nulls: every column but history
    # must be present, so a null there is a malformed line (named by its number).
    for column, bad in (
        ("impression_id", pl.col("impression").is_null()),
        ("user_id", pl.col("user_key").is_null()),
        ("time", pl.col("time").is_null()),
        ("impressions", pl.col("impressions").is_null()),
    ):
        rows = df.filter(bad)
        if rows.height:
            raise DataError(f"{path}: line {rows['line'][0]}, column {column!r} is empty "
                            f"(expected {len(BEHAVIOR_COLUMNS)} tab-separated columns: "
                            f"{', '.join(BEHAVIOR_COLUMNS)})")
    rows = df.filter(pl.col("ts").is_null())
    if rows.height:
        raise DataError(f"{path}: line {rows['line'][0]}, column 'time': "
                        f"{shown(rows['time'][0])} is not a time like 11/12/2019 2:14:46 PM")
    repeated = ~df["impression"].is_first_distinct()
    if repeated.any():
        notes.append(f"{path.name}: {int(repeated.sum())} lines with a repeated impression "
                     "id dropped (the first line of each id is kept)")
        df = df.filter(~repeated)
    (codes,), texts = encode_keys([df["history"]], sort=False)
    histories = _split_on_whitespace(texts).fill_null(pl.lit([], dtype=pl.List(pl.Utf8)))
    return df.drop("time").with_columns(pl.Series("history", codes)), histories


def _split_on_whitespace(text: pl.Series) -> pl.Series:
    """The runs of non-whitespace of each text, as `str.extract_all(r"\\S+")` finds them.

    5x faster than that regex when spaces are the only whitespace, as in MIND.
    """
    if text.str.contains(r"[^\S ]").any():  # tabs, CR, non-breaking spaces, ...: the regex
        return text.str.extract_all(r"\S+")
    parts = text.str.split(" ")
    if (text.str.contains("  ", literal=True) | text.str.starts_with(" ")
            | text.str.ends_with(" ")).any():
        parts = parts.list.eval(pl.element().filter(pl.element() != ""))
    return parts


def _shown_items(behaviors: pl.DataFrame, path: Path) -> pl.DataFrame:
    """One row per shown item: line, impression, user_key, ts, item_key, label, in file order."""
    tokens = (
        behaviors.select("line", "impression", "user_key", "ts",
                         _split_on_whitespace(behaviors["impressions"]).alias("token"))
        .explode("token")
        .drop_nulls("token")
    )
    if tokens.height == 0:
        raise DataError(f"{path}: no impression lists: nothing to benchmark")
    token = pl.col("token")
    # NEWSID-1 / NEWSID-0 with no other "-": the news id is all but the last two characters.
    well_formed = (
        (token.str.ends_with("-0") | token.str.ends_with("-1"))
        & (token.str.find("-", literal=True).cast(pl.Int64)
           == token.str.len_bytes().cast(pl.Int64) - 2)
    ).fill_null(False)
    if tokens.select(well_formed.all()).item():
        return tokens.select("line", "impression", "user_key", "ts",
                             token.str.head(-2).alias("item_key"),
                             token.str.ends_with("-1").cast(pl.Int8).alias("label"))
    tokens = (
        tokens.with_columns(token.str.splitn("-", 2).alias("parts"))
        .unnest("parts")
        .rename({"field_0": "item_key", "field_1": "label_text"})
    )
    bad = tokens.filter(~pl.col("label_text").is_in(["0", "1"]) | pl.col("label_text").is_null())
    if bad.height:
        first = bad.row(0, named=True)
        if first["label_text"] is None:
            raise DataError(
                f"{path}: line {first['line']}: impression {shown(first['token'])} has no click "
                "label (expected NEWSID-1 or NEWSID-0). This looks like the MIND test split, "
                "which is released without labels; recbench needs labelled impressions: use the "
                "train or dev split")
        raise DataError(f"{path}: line {first['line']}, column 'impressions': "
                        f"{shown(first['token'])} is not NEWSID-1 or NEWSID-0")
    return tokens.select("line", "impression", "user_key", "ts", "item_key",
                         pl.col("label_text").cast(pl.Int8).alias("label"))


def _positive_events(behaviors: pl.DataFrame, histories: pl.Series, shown: pl.DataFrame,
                     notes: list[str]) -> pl.DataFrame:
    """Positives, oldest first: earliest impression's history, then clicks (first per pair)."""
    earliest = (
        behaviors.sort("ts", "line", maintain_order=True)
        .unique("user_key", keep="first", maintain_order=True)
        .select("user_key", "ts", "history")
    )
    earliest = earliest.with_columns(histories.gather(earliest["history"]).alias("history"))
    earliest = earliest.with_columns(
        pl.int_ranges(0, pl.col("history").list.len()).alias("position"),
        pl.col("history").list.len().alias("length"))
    history = (
        earliest.explode("history", "position")
        .drop_nulls("history")
        .select("user_key", pl.col("history").alias("item_key"),
                (pl.col("ts") - pl.col("length") + pl.col("position")).alias("ts"))
    )
    clicks = shown.filter(pl.col("label") == 1).select("user_key", "item_key", "ts")
    both = pl.concat([history, clicks]).sort("ts", maintain_order=True)
    repeated = repeated_rows(both, ["user_key", "item_key"])
    events = both if repeated is None else both.filter(~repeated)
    events = events.with_columns(pl.lit(1, pl.Int8).alias("label"))
    notes.append(f"events: {history.height} history clicks of each user's earliest impression "
                 f"+ {clicks.height} impression clicks; {both.height - events.height} repeated "
                 "(user, news) positives dropped (the first is kept)")
    return events


def _report_coverage(behaviors: pl.DataFrame, histories: pl.Series, shown: pl.DataFrame,
                     items: pl.DataFrame, notes: list[str]) -> None:
    """Note how many of the news ids that behaviors.tsv references have no news.tsv row."""
    news = items["item_key"].unique()
    found = np.zeros(len(news), dtype=bool)
    missing = []
    for keys in (histories.explode(empty_as_null=False, keep_nulls=False).drop_nulls(),
                 shown["item_key"]):
        rows = lookup_rows(keys, news)
        found[rows.drop_nulls().to_numpy()] = True
        missing.append(keys.filter(rows.is_null()))
    n_missing = pl.concat(missing).n_unique()
    referenced = int(found.sum()) + n_missing
    notes.append(
        f"behaviors.tsv: {behaviors.height} impressions of {behaviors['user_key'].n_unique()} "
        f"users, {shown.height} shown items ({int(shown['label'].sum())} clicks); "
        f"news.tsv: {items.height} news. {n_missing} of the {referenced} news ids in "
        "behaviors.tsv have no news.tsv row: their clicks, impression rows and history entries "
        "are dropped")
