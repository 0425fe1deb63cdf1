"""`hm`: H&M Personalized Fashion Recommendations (Kaggle competition files).

Layout (comma-separated, header line, standard CSV quoting, UTF-8):
- `articles.csv`: `article_id, product_code, prod_name, product_type_no, product_type_name,
  product_group_name, ..., colour_group_name, ..., department_name, index_name, index_group_name,
  section_name, garment_group_name, detail_desc`. Some re-published copies (the shared subset
  among them) carry an extra leading unnamed index column (`,article_id,...`); it is ignored.
- `transactions_train.csv`: `t_dat, customer_id, article_id, price, sales_channel_id`, one row
  per article bought, `t_dat` as `YYYY-MM-DD`, sorted by day.
- `customers.csv` is not used.

Processing decisions:
- Article ids: the official files write them with a leading zero (`0108775015`), copies re-saved
  by pandas without (`108775015`). Both files' ids are parsed as integers and written back as
  decimal strings, so `0108775015` and `108775015` are the same item and the two files always
  join. A non-integer id is an error naming its line.
- Text = `detail_desc` (Table 2). Articles with an empty `detail_desc` (~0.4% officially) fall
  back to `prod_name` (option `text_fallback`, default true), so their purchases are kept rather
  than silently dropped; the count is noted. With `text_fallback: false` they are dropped by the
  protocol. `prod_name`, product type/group, colour, department, index, section and garment group
  are kept as item attributes when present.
- `ts` = the day (days since 1970-01-01). Purchases of one day keep the file's row order (the
  protocol breaks `ts` ties by row order; the shared subset is a single day).
- Every purchase is a positive; a repeated (customer, article) purchase (the file has one row per
  unit bought, and re-purchases) keeps its first row, so a sequence never repeats an item and a
  held-out positive never appears in its own history. CTR negatives are sampled
  (negatives="sampled": 2 unseen articles per user).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked, shown

DEFAULTS: dict[str, Any] = {"text_fallback": True}
# articles.csv columns kept as item attributes when present.
ATTRIBUTES = ("prod_name", "product_type_name", "product_group_name", "colour_group_name",
              "department_name", "index_name", "index_group_name", "section_name",
              "garment_group_name")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read H&M's articles.csv + transactions_train.csv into `RawTables`."""
    o = _options(options)
    notes: list[str] = []
    articles_path = find_file(raw_dir, "articles.csv")
    transactions_path = find_file(raw_dir, "transactions_train.csv")
    items = _articles(articles_path, o["text_fallback"], notes)
    events = _transactions(transactions_path, notes)
    return RawTables(items=items, events=events.lazy(), negatives="sampled",
                     source_files=[articles_path, transactions_path], notes=notes,
                     text_attribute="detail_desc")


def _options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise DataError(f"unknown option(s) {sorted(unknown)} for hm; valid: "
                        f"{', '.join(f'{k} (default {v})' for k, v in DEFAULTS.items())}")
    o = {**DEFAULTS, **options}
    if not isinstance(o["text_fallback"], bool):
        raise DataError(f"option text_fallback must be true or false, not "
                        f"{o['text_fallback']!r}")
    return o


def _articles(path: Path, text_fallback: bool, notes: list[str]) -> pl.DataFrame:
    header = _header(path)
    wanted: dict[str, pl.DataType] = {"article_id": pl.Int64, "prod_name": pl.Utf8,
                                      "detail_desc": pl.Utf8}
    wanted.update({c: pl.Utf8 for c in ATTRIBUTES if c in header and c not in wanted})
    articles = read_csv_checked(path, wanted, notes=notes)
    if header and header[0] == "":
        notes.append(f"{path.name}: leading unnamed index column ignored")
    missing_id = articles.select(pl.col("article_id").is_null().arg_true()).to_series()
    if len(missing_id):
        raise DataError(f"{path}: line {int(missing_id[0]) + 2}, column 'article_id' is empty")
    desc = pl.col("detail_desc").str.strip_chars()
    no_desc = (desc.is_null() | (desc == ""))
    n_no_desc = articles.select(no_desc.sum()).item()
    if n_no_desc:
        if text_fallback:
            notes.append(f"{path.name}: {n_no_desc} of {articles.height} articles have no "
                         "detail_desc; their prod_name is the text instead")
        else:
            notes.append(f"{path.name}: {n_no_desc} of {articles.height} articles have no "
                         "detail_desc (text_fallback: false): they and their purchases are "
                         "dropped")
    text = (pl.when(no_desc).then(pl.col("prod_name")).otherwise(pl.col("detail_desc"))
            if text_fallback else pl.col("detail_desc"))
    return articles.select(
        pl.col("article_id").cast(pl.Utf8).alias("item_key"),
        text.alias("text"),
        *[c for c in ATTRIBUTES if c in articles.columns],
    )


def _transactions(path: Path, notes: list[str]) -> pl.DataFrame:
    raw = read_csv_checked(
        path, {"t_dat": pl.Utf8, "customer_id": pl.Utf8, "article_id": pl.Int64}, notes=notes)
    events = raw.select(
        pl.col("customer_id").alias("user_key"),
        pl.col("article_id").cast(pl.Utf8).alias("item_key"),
        pl.col("t_dat").str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        .cast(pl.Int64).alias("ts"),
        pl.lit(1, pl.Int8).alias("label"),
    )
    bad = events.select(
        pl.any_horizontal(pl.col("ts").is_null(), pl.col("user_key").is_null(),
                          pl.col("item_key").is_null()).arg_true()).to_series()
    if len(bad):
        row = int(bad[0])
        column = next(c for c, v in (("customer_id", events["user_key"][row]),
                                     ("article_id", events["item_key"][row]),
                                     ("t_dat", events["ts"][row])) if v is None)
        value = raw[column][row]
        if value is None:
            raise DataError(f"{path}: line {row + 2}, column {column!r} is empty (expected "
                            "t_dat,customer_id,article_id,price,sales_channel_id)")
        raise DataError(f"{path}: line {row + 2}, column {column!r}: {shown(value)} is not a valid "
                        "date like 2018-09-20")
    if raw.height == 0:
        raise DataError(f"{path}: no transactions")
    before = events.height
    events = events.sort("ts", maintain_order=True).unique(
        ["user_key", "item_key"], keep="first", maintain_order=True)
    n_days = events["ts"].n_unique()
    notes.append(f"{path.name}: {before} purchases over {n_days} day(s); "
                 f"{before - events.height} repeated (customer, article) "
                 "purchases dropped (the first is kept)"
                 + ("; one day only, so order within a customer is file order"
                    if n_days == 1 else ""))
    return events


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: empty file (expected a header line)")
    return [c.strip() for c in next(csv.reader([first]))]
