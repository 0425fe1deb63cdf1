"""`microlens`: MicroLens micro-video clicks (Westlake University), 50k or 100k release.

Layout (UTF-8), in this folder or one below:
- interactions, one of:
  - `MicroLens-50k_pairs.csv` / `MicroLens-100k_pairs.csv`: header `user,item,timestamp`
    (timestamp in epoch milliseconds), one row per click. A header-less copy is accepted too.
  - `MicroLens-50k_pairs.tsv` / `MicroLens-100k_pairs.tsv` (fallback): `user<TAB>item item ...`,
    each user's clicks in chronological order with no time; `ts` is then the position.
- titles: `MicroLens-50k_titles.csv` (header `item,title`, CSV quoting: titles contain commas) or
  `MicroLens-100k_title_en.csv` (no header, `item, title`; split on the first comma only, so a
  title may contain commas; a `MicroLens-100k_titles.csv` with the 50k layout is accepted too).

The option `variant` picks the release: `auto` (default: the 50k pairs if present, else 100k),
`50k` or `100k`; titles are always taken from the same release as the pairs.

Processing decisions:
- Items are the titled videos: text = `title`. Item and user ids are parsed as integers and
  written back as decimal strings, so `007` and `7` are one id in both files.
- Every click is a positive; a repeated (user, item) click keeps its earliest row (ties: file
  order). Ties in `timestamp` keep file order. CTR negatives are sampled (negatives="sampled").
- Clicks on videos without a title are dropped by the protocol and counted there.
- A folder with titles only (as some mirrors publish) cannot be benchmarked: the error names the
  missing pairs file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import check_utf8, find_file, read_csv_checked, shown

DEFAULTS: dict[str, Any] = {"variant": "auto"}
VARIANTS = ("auto", "50k", "100k")
PAIRS = {"50k": ("MicroLens-50k_pairs.csv", "MicroLens-50k_pairs.tsv"),
         "100k": ("MicroLens-100k_pairs.csv", "MicroLens-100k_pairs.tsv")}
TITLES = {"50k": ("MicroLens-50k_titles.csv",),
          "100k": ("MicroLens-100k_title_en.csv", "MicroLens-100k_titles.csv")}


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read MicroLens pairs + titles into `RawTables` (see the module docstring)."""
    o = _options(options)
    notes: list[str] = []
    variant, pairs_path = _find_pairs(raw_dir, o["variant"])
    titles_path = find_file(raw_dir, *TITLES[variant], required=False)
    if titles_path is None:
        raise MissingRawFilesError(
            f"{raw_dir}: {pairs_path.name} needs the titles of the same release: expected "
            f"{' or '.join(TITLES[variant])}")
    items = _titles(titles_path, notes)
    if pairs_path.suffix == ".tsv":
        events = _sequences(pairs_path, notes)
    else:
        events = _pairs(pairs_path, notes)
    events = _first_per_pair(events, pairs_path, notes)
    return RawTables(items=items, events=events.lazy(), negatives="sampled",
                     source_files=[pairs_path, titles_path], notes=notes, text_attribute="title")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for microlens; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    o["variant"] = str(o["variant"]).lower()
    if o["variant"] not in VARIANTS:
        raise DataError(f"option variant must be one of {', '.join(VARIANTS)}, not "
                        f"{options['variant']!r}")
    return o


def _find_pairs(raw_dir: Path, variant: str) -> tuple[str, Path]:
    for name in (("50k", "100k") if variant == "auto" else (variant,)):
        path = find_file(raw_dir, *PAIRS[name], required=False)
        if path is not None:
            return name, path
    wanted = [f for v in (("50k", "100k") if variant == "auto" else (variant,)) for f in PAIRS[v]]
    titles = [p.name for v in TITLES for n in TITLES[v] for p in raw_dir.glob(n)]
    found = f" (only titles found: {', '.join(titles)}; titles alone cannot be benchmarked)" \
        if titles else ""
    raise MissingRawFilesError(f"{raw_dir}: no MicroLens interaction file: expected "
                               f"{' or '.join(wanted)}{found}")


def _first_line(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: empty first line (expected a header or a record)")
    return [c.strip() for c in next(csv.reader([first]))]


def _pairs(path: Path, notes: list[str]) -> pl.DataFrame:
    first = _first_line(path)
    has_header = not first[0].isdigit()
    columns = {"user": pl.Int64, "item": pl.Int64, "timestamp": pl.Int64}
    if not has_header:
        notes.append(f"{path.name}: no header line; columns read as user,item,timestamp")
    raw = read_csv_checked(path, columns, has_header=has_header,
                           new_columns=None if has_header else list(columns), notes=notes)
    _no_nulls(raw, path, int(has_header))
    return raw.select(pl.col("user").alias("user_key"), pl.col("item").alias("item_key"),
                      pl.col("timestamp").alias("ts"))


def _sequences(path: Path, notes: list[str]) -> pl.DataFrame:
    raw = read_csv_checked(path, {"user": pl.Utf8, "items": pl.Utf8}, separator="\t",
                           has_header=False, new_columns=["user", "items"], quote_char=None,
                           notes=notes).with_row_index("line", offset=1)
    if raw.height and not (raw["user"][0] or "").isdigit():
        raw = raw.slice(1)  # a header line
    tokens = (
        raw.select("line", pl.col("user").cast(pl.Int64, strict=False).alias("user_id"),
                   pl.col("user"), pl.col("items").str.extract_all(r"\S+").alias("item"))
        .explode("item")
        .drop_nulls("item")
        .with_columns(pl.col("item").cast(pl.Int64, strict=False).alias("item_id"))
    )
    bad = tokens.filter(pl.col("user_id").is_null() | pl.col("item_id").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        column, value = ("user", row["user"]) if row["user_id"] is None else ("items", row["item"])
        raise DataError(f"{path}: line {row['line']}, column {column!r}: {shown(value)} is not an "
                        "integer id")
    notes.append(f"{path.name}: sequences without time; ts is the position in the sequence")
    return tokens.select(
        pl.col("user_id").alias("user_key"),
        pl.col("item_id").alias("item_key"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("ts"),
    )


def _no_nulls(df: pl.DataFrame, path: Path, header_lines: int) -> None:
    bad = df.select(pl.any_horizontal(pl.all().is_null()).arg_true()).to_series()
    if len(bad):
        row = int(bad[0])
        column = next(c for c in df.columns if df[c][row] is None)
        raise DataError(f"{path}: line {row + 1 + header_lines}, column {column!r} is empty")


def _titles(path: Path, notes: list[str]) -> pl.DataFrame:
    first = _first_line(path)
    if first[:2] == ["item", "title"]:
        titles = read_csv_checked(path, {"item": pl.Int64, "title": pl.Utf8}, notes=notes)
        _no_nulls(titles.select("item"), path, 1)
    else:
        titles = _headerless_titles(path, has_header=not first[0].isdigit())
    return titles.select(pl.col("item").cast(pl.Utf8).alias("item_key"),
                         pl.col("title").alias("text"))


def _headerless_titles(path: Path, has_header: bool) -> pl.DataFrame:
    """`item, title` lines split on the first comma: titles may hold unquoted commas."""
    check_utf8(path)
    text = path.read_text(encoding="utf-8")
    lines = (
        pl.DataFrame({"raw": pl.Series(text.split("\n"), dtype=pl.Utf8)})
        .with_row_index("line", offset=1)
        .with_columns(pl.col("raw").str.strip_chars_end("\r"))
        .filter(pl.col("raw").str.strip_chars() != "")
    )
    if has_header:
        lines = lines.filter(pl.col("line") > 1)
    parts = lines.with_columns(pl.col("raw").str.splitn(",", 2).alias("parts")).unnest("parts")
    titles = parts.select(
        "line", "raw",
        pl.col("field_0").str.strip_chars().cast(pl.Int64, strict=False).alias("item"),
        pl.col("field_1").str.strip_chars().alias("title"),
    )
    bad = titles.filter(pl.col("item").is_null() | pl.col("title").is_null())
    if bad.height:
        raise DataError(f"{path}: line {bad['line'][0]}: {shown(bad['raw'][0])} is not "
                        "`item, title` (an integer id, a comma, the title)")
    return titles.select("item", "title")


def _first_per_pair(events: pl.DataFrame, path: Path, notes: list[str]) -> pl.DataFrame:
    """Earliest click per (user, item), deduplicated on the integer ids (fast), then as text."""
    before = events.height
    if before == 0:
        raise DataError(f"{path}: no interactions")
    events = (events.sort("ts", maintain_order=True)
              .unique(["user_key", "item_key"], keep="first", maintain_order=True)
              .select(pl.col("user_key").cast(pl.Utf8), pl.col("item_key").cast(pl.Utf8), "ts",
                      pl.lit(1, pl.Int8).alias("label")))
    notes.append(f"{path.name}: {before} clicks; {before - events.height} repeated (user, item) "
                 "clicks dropped (the first is kept)")
    return events
