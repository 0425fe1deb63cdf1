"""From a source's `RawTables` to clean integer events: the first step of every protocol.

- items without text are dropped (counted); text whitespace is collapsed; duplicate keys keep
  the first row;
- events on items without text are dropped (counted); each event gets `order`, its input
  position, which breaks ties of equal times everywhere later.

The per-user protocols (loo-v1, temporal-v1) then share: positives as integer codes, the count
filters, the seeded user sample of a size, dense re-indexing and leave-last-out rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recbench.core.errors import DataError
from recbench.data.keys import encode_keys, lookup_rows
from recbench.data.raw import RawTables


def clean_items(items: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """The items with text, one row per `item_key` (the first), text whitespace collapsed."""
    for col in ("item_key", "text"):
        if col not in items.columns:
            raise DataError(f"items table has no {col!r} column (columns: {items.columns})")
    items = items.with_columns(
        pl.col("item_key").cast(pl.Utf8),
        pl.col("text").cast(pl.Utf8).str.replace_all(r"\s+", " ").str.strip_chars(),
    )
    before = items.height
    items = items.filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    items = items.unique("item_key", keep="first", maintain_order=True)
    if items.height < before:
        notes.append(f"dropped {before - items.height} items with empty text or duplicate ids")
    if items.height == 0:
        raise DataError("no item has a text attribute: nothing to benchmark")
    return items


def clean_events(events: pl.LazyFrame, catalog: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """Events on items with text: user_key, item (row of `catalog`), ts, label, order.

    `order` numbers the events in input order, the tie-break of equal times.
    """
    events = events.select(
        pl.col("user_key").cast(pl.Utf8),
        pl.col("item_key").cast(pl.Utf8),
        pl.col("ts").cast(pl.Int64),
        pl.col("label").cast(pl.Int8),
    ).collect()
    total = events.height
    kept = events.select(
        "user_key",
        lookup_rows(events["item_key"], catalog["item_key"]).alias("item"),
        "ts", "label",
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("order"),
    ).drop_nulls("item")
    del events
    if kept.height < total:
        notes.append(f"dropped {total - kept.height} of {total} interactions on items without text")
    if kept.filter(pl.col("label") == 1).height == 0:
        raise DataError("no positive interaction remains after filtering: empty result")
    return kept



# --- the per-user protocols (loo-v1, temporal-v1) -----------------------------------------------

# Users (sequences) kept per size; `paper` keeps every user. The sample is drawn after the
# count filter, so the filter sees the whole log.
USERS_PER_SIZE: dict[str, int | None] = {"tiny": 600, "small": 5_000, "paper": None}


@dataclass
class Positives:
    """The positive interactions as integer codes, before any filter.

    Attributes:
        catalog: the items with text, sorted by key (`item` below is a row of it).
        user_keys: the distinct user keys, sorted (`user` below indexes it).
        events: user, item, ts, order (input position: the tie-break of equal times).
    """

    catalog: pl.DataFrame
    user_keys: pl.Series
    events: pl.DataFrame


def positives(raw: RawTables, notes: list[str]) -> Positives:
    """A source's positive interactions on items with text, keys turned into codes."""
    catalog = clean_items(raw.items, notes).sort("item_key")
    events = clean_events(raw.events, catalog, notes)
    n_negative = events.height
    events = events.filter(pl.col("label") == 1)
    n_negative -= events.height
    if n_negative:
        notes.append(f"{n_negative} negative interactions (label 0) left out: the sequences "
                     "are the positives")
    (codes,), user_keys = encode_keys([events["user_key"]])
    events = events.select(pl.Series("user", codes, dtype=pl.UInt32),
                           pl.col("item").cast(pl.UInt32), "ts", "order")
    return Positives(catalog, user_keys, events)


def count_filter(events: pl.DataFrame, user_k: int, item_k: int, iterative: bool
                 ) -> np.ndarray:
    """A keep-mask: interactions whose user has >= `user_k` and item >= `item_k` of them.

    One pass (LLMEmb's `filter_common`) counts once, on the unfiltered log; `iterative`
    (k-core) repeats on what is left until nothing changes.
    """
    users = events["user"].to_numpy()
    items = events["item"].to_numpy()
    keep = np.ones(len(users), dtype=bool)
    while True:
        user_n = np.bincount(users[keep], minlength=int(users.max(initial=0)) + 1)
        item_n = np.bincount(items[keep], minlength=int(items.max(initial=0)) + 1)
        kept = keep & (user_n[users] >= user_k) & (item_n[items] >= item_k)
        if not iterative or kept.sum() == keep.sum():
            return kept
        keep = kept


def users_with_at_least(events: pl.DataFrame, n: int) -> np.ndarray:
    """A keep-mask: interactions of users with >= `n` interactions in `events`."""
    users = events["user"].to_numpy()
    return np.bincount(users, minlength=int(users.max(initial=0)) + 1)[users] >= n


def sample_users(events: pl.DataFrame, size: str, rng: np.random.Generator, notes: list[str]
                 ) -> pl.DataFrame:
    """The interactions of `USERS_PER_SIZE[size]` users drawn uniformly (seeded); all for paper."""
    users = np.unique(events["user"].to_numpy())
    wanted = USERS_PER_SIZE[size]
    if wanted is None or wanted >= len(users):
        if wanted is not None:
            notes.append(f"size {size}: all {len(users):,} users kept (fewer than {wanted:,})")
        return events
    drawn = np.sort(users[rng.permutation(len(users))[:wanted]])
    notes.append(f"size {size}: {wanted:,} of {len(users):,} users drawn (seeded)")
    return events.filter(pl.col("user").is_in(pl.Series(drawn, dtype=pl.UInt32).implode()))


def dense_ids(pos: Positives, events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dense int32 ids over the users and items left in `events`, both in raw-key order.

    Returns:
        (items table: item_id, item_key, text, attributes; events: user_id, item_id, ts, order).
    """
    used_items = np.zeros(pos.catalog.height, dtype=bool)
    used_items[events["item"].to_numpy()] = True
    item_id = np.cumsum(used_items, dtype=np.int64) - 1
    used_users = np.zeros(len(pos.user_keys), dtype=bool)
    used_users[events["user"].to_numpy()] = True
    user_id = np.cumsum(used_users, dtype=np.int64) - 1
    items = (pos.catalog.filter(pl.Series(used_items)).with_row_index("item_id")
             .with_columns(pl.col("item_id").cast(pl.Int32)))
    events = events.select(
        pl.Series("user_id", user_id[events["user"].to_numpy()], dtype=pl.Int32),
        pl.Series("item_id", item_id[events["item"].to_numpy()], dtype=pl.Int32),
        "ts", "order")
    return items, events


def sequences(events: pl.DataFrame) -> pl.DataFrame:
    """One row per user: `items` oldest first (ties: input order), `last_ts`, `last_order`."""
    return (
        events.sort("user_id", "ts", "order")
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id").alias("items"), pl.col("ts").last().alias("last_ts"),
             pl.col("order").last().alias("last_order"))
    )


def leave_last_out(seqs: pl.DataFrame, max_len: int, drop_last: int = 0) -> pl.DataFrame:
    """SeqRec rows (user_id, history, target) from `items` without its last `drop_last`:
    target = the last item left, history = the `max_len` items before it, oldest first.

    Sequences left with fewer than 2 items give no row.
    """
    items = pl.col("items").list.head(pl.col("items").list.len() - drop_last)
    return (
        seqs.select("user_id", items.alias("items"))
        .filter(pl.col("items").list.len() >= 2)
        .select(
            pl.col("user_id").cast(pl.Int32),
            pl.col("items").list.head(pl.col("items").list.len() - 1).list.tail(max_len)
            .cast(pl.List(pl.Int32)).alias("history"),
            pl.col("items").list.last().cast(pl.Int32).alias("target"),
        )
    )


def time_source(raw: RawTables) -> str:
    """What orders a user's interactions, for the manifest and the CLI."""
    if raw.timestamps:
        return "the source's timestamps; equal times keep the input order"
    return ("file order: the source has no timestamps, so the position in its files stands in "
            "for time")
