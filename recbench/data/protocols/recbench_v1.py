"""`recbench-v1`: the RecBench processing protocol (paper 001, §4.3 and Table 2).

From `RawTables` to the frozen splits:
- items without text are dropped (counted); ids are dense int32, sorted by raw key;
- a user's positives, oldest first (ties keep row order), form the behaviour sequence;
  histories keep the last `max_history` (20) items;
- CTR rows per user: the last 2 positives (label 1) with history = the positives before them,
  plus negatives: 2 sampled unseen items ("sampled", H&M/MicroLens), the user's real negatives
  ("real", Goodreads/CDs: rating <= 2), or the impression log's rows ("impressions", MIND);
- SeqRec rows per user: target = the last positive, history = the positives before it;
- users are split disjointly: test first, then finetune; valid = 10% of finetune users (the
  CTR and SeqRec tasks are split independently: a user may be a CTR test user and a SeqRec
  training user, as the two tasks never share a model);
- each SeqRec test row gets 100 frozen negatives (never the target or a history item).
Everything is driven by one seeded numpy Generator, so the same input gives identical output.

How it stays fast at paper scale (10M interactions on 2 cores): raw keys are turned into integer
codes once, at the start (items by a join with the item table, users by `encode_keys`); every
later step works on integers. The users of each split are drawn from per-user row counts
(`np.bincount`), and the sorted sequences, histories and rows are built for the drawn users
only (~70k of them), not for every user of the log.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from recbench.core.config import ClosedConfig
from recbench.core.errors import DataError
from recbench.data.keys import encode_keys, lookup_rows
from recbench.data.protocols import TIE_RULE, PreparedTables, Protocol, split_stats
from recbench.data.protocols.events import clean_events, clean_items
from recbench.data.protocols.negatives import sample_unseen
from recbench.data.raw import RawTables

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "recbench-v1"
MAX_HISTORY = 20
N_SAMPLED_NEGATIVES = 100
VALID_FRACTION = 0.1
# Real negatives kept per user (the newest): without a cap, one heavy rater can fill a whole
# small split. RecBench's Goodreads test set has ~11.5 rows per user (2 positives + ~9.5).
MAX_REAL_NEGATIVES = 10


@dataclass(frozen=True)
class SplitSizes:
    """Target sizes; CTR counts are rows, SeqRec counts are sequences (one per user)."""

    ctr_test: int
    ctr_finetune: int
    seq_test: int
    seq_finetune: int


SIZES: dict[str, SplitSizes] = {
    "tiny": SplitSizes(ctr_test=200, ctr_finetune=1_000, seq_test=100, seq_finetune=500),
    "small": SplitSizes(ctr_test=2_000, ctr_finetune=10_000, seq_test=500, seq_finetune=4_000),
    "paper": SplitSizes(ctr_test=20_000, ctr_finetune=100_000, seq_test=5_000, seq_finetune=40_000),
}
SPLITS = ("train", "valid", "test")


class RecbenchConfig(ClosedConfig):
    """recbench-v1 has no options: its parameters are the paper's (the constants above)."""


@dataclass
class _Log:
    """A MIND-style impression log, with its histories as flat item tokens.

    rows: user (`user_key`, later `user_id`), impression, ts, item (`item`: row of the item
        catalog, later `item_id`), label; in source order, shown items with text only.
    impressions: impression, hist: the impressions that kept a shown row, and their history.
    tokens: hist, item: the entries with text of each distinct history, in history order.
        (A MIND user's history repeats on each of the user's lines: stored once.)
    """

    rows: pl.DataFrame
    impressions: pl.DataFrame
    tokens: pl.DataFrame


def build_splits(raw: RawTables, size: str, seed: int,
                 config: RecbenchConfig | None = None) -> PreparedTables:
    """Apply the protocol to one source's tables. See the module docstring for the rules."""
    sizes = SIZES[size]
    rng = np.random.default_rng(seed)
    notes = list(raw.notes)

    catalog = clean_items(raw.items, notes).sort("item_key")
    events = clean_events(raw.events, catalog, notes)
    log_ = None
    if raw.negatives == "impressions":
        if raw.impressions is None:
            raise DataError("source declared impression negatives but gave no impressions table")
        log_ = _clean_impressions(raw.impressions, raw.impression_histories, catalog, notes)

    items, events = _assign_item_ids(catalog, events, log_)
    del catalog
    n_items = items.height
    if n_items < N_SAMPLED_NEGATIVES + MAX_HISTORY + 2:
        raise DataError(
            f"only {n_items} items with text remain after filtering; the protocol needs at least "
            f"{N_SAMPLED_NEGATIVES + MAX_HISTORY + 2} (100 sampled negatives per test row)"
        )
    events, log_, n_users = _assign_user_ids(events, log_)
    positives = events.filter(pl.col("label") == 1).select("user_id", "item_id", "ts", "order")
    n_pos = np.bincount(positives["user_id"].to_numpy(), minlength=n_users)

    ctr = _ctr_splits(raw.negatives, events, positives, n_pos, log_, n_items, sizes, rng, notes)
    del log_
    seq_eligible = np.flatnonzero(n_pos >= 2)  # one sequence each
    seq_users = _split_by_user(seq_eligible, np.ones(len(seq_eligible), dtype=np.int64),
                               sizes.seq_test, sizes.seq_finetune, rng, "SeqRec", "sequences",
                               notes)
    seq_rows = _seq_rows(_sequences(positives, _mask(seq_users, n_users)))
    seq = {name: _pick(seq_rows, ids) for name, ids in seq_users.items()}
    negatives = _sample_test_negatives(seq["test"], n_items, rng)

    stats = {
        "n_items": n_items,
        "n_users": n_users,
        "n_events": events.height,
        "ctr": {name: split_stats(df) for name, df in ctr.items()},
        "seq": {name: split_stats(df) for name, df in seq.items()},
        "sizes_requested": asdict(sizes),
    }
    return PreparedTables(items, ctr, seq, negatives, stats, notes,
                          protocol=_description(seed))


def _description(seed: int) -> dict:
    return {
        "parameters": {"max_history": MAX_HISTORY, "sampled_negatives": N_SAMPLED_NEGATIVES,
                       "max_real_negatives": MAX_REAL_NEGATIVES,
                       "valid_fraction": VALID_FRACTION},
        "candidates": {"test": {
            "file": "seq/test_negatives.parquet", "n": N_SAMPLED_NEGATIVES,
            "sampler": "uniform", "pool": "every item",
            "excludes": "the row's history and target", "seed": seed}},
        "ties": TIE_RULE,
        "time": "the source's ts; ties keep the input order",
    }


# --- cleaning ---------------------------------------------------------------------------------


def _clean_impressions(imps: pl.LazyFrame, histories: pl.LazyFrame | None,
                       catalog: pl.DataFrame, notes: list[str]) -> _Log:
    """Impression rows on items with text, and one history per remaining impression.

    History entries without text are left out here (they never reach a history list).
    """
    imps = imps.collect()
    if histories is None:
        # The history rides on every shown row: keep it once per impression.
        histories = imps.lazy().select("impression", "history")
        imps = imps.drop("history")
    before = imps.height
    imps = imps.select(
        "user_key", "impression", "ts",
        lookup_rows(imps["item_key"], catalog["item_key"]).alias("item"),
        "label",
    ).drop_nulls("item")
    histories = histories.collect()
    # Equal lists (a MIND user's history repeats on each of the user's lines) are looked up once.
    (hist,), lists = encode_keys([histories["history"]], sort=False)
    impression = histories["impression"]
    kept = impression.is_first_distinct() & impression.is_in(imps["impression"].unique().implode())
    histories = pl.DataFrame([impression, pl.Series("hist", hist)]).filter(kept)
    referenced = np.zeros(len(lists), dtype=bool)
    referenced[histories["hist"].to_numpy()] = True
    tokens = pl.DataFrame({
        "hist": np.repeat(np.arange(len(lists), dtype=np.uint32),
                          lists.list.len().fill_null(0).to_numpy()),
        "item": lookup_rows(lists.explode(empty_as_null=False, keep_nulls=False),
                            catalog["item_key"]),
    })
    tokens = tokens.filter(pl.Series(referenced).gather(tokens["hist"])).drop_nulls("item")
    if imps.height < before:
        notes.append(f"dropped {before - imps.height} of {before} impression rows on items "
                     "without text")
    return _Log(imps, histories, tokens)




# --- raw keys -> dense ids ----------------------------------------------------------------------

def _assign_item_ids(catalog: pl.DataFrame, events: pl.DataFrame, log_: _Log | None
                     ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dense ids over the items that occur anywhere, sorted by raw key (deterministic).

    `catalog` is sorted by key; `item` columns (catalog rows) become `item_id`, in place for
    the log.
    """
    used = np.zeros(catalog.height, dtype=bool)
    used[events["item"].to_numpy()] = True
    if log_ is not None:
        used[log_.rows["item"].to_numpy()] = True
        used[log_.tokens["item"].to_numpy()] = True
    id_of_row = pl.Series(np.cumsum(used, dtype=np.int64) - 1, dtype=pl.Int32)
    items = (
        catalog.filter(pl.Series(used))
        .with_row_index("item_id")
        .with_columns(pl.col("item_id").cast(pl.Int32))
    )

    def ids(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(id_of_row.gather(df["item"]).alias("item")).rename(
            {"item": "item_id"})

    if log_ is not None:
        log_.rows, log_.tokens = ids(log_.rows), ids(log_.tokens)
    return items, ids(events)


def _assign_user_ids(events: pl.DataFrame, log_: _Log | None
                     ) -> tuple[pl.DataFrame, _Log | None, int]:
    """Dense user ids over the users of the events and impressions, sorted by raw key."""
    columns = [events["user_key"]] + ([] if log_ is None else [log_.rows["user_key"]])
    codes, keys = encode_keys(columns)
    n_users = len(keys)
    events = events.drop("user_key").insert_column(
        0, pl.Series("user_id", codes[0]).cast(pl.Int32))
    if log_ is not None:
        log_.rows = log_.rows.drop("user_key").insert_column(
            0, pl.Series("user_id", codes[1]).cast(pl.Int32))
    return events, log_, n_users

# --- rows ---------------------------------------------------------------------------------------

def _last_history(items: pl.Expr, drop_last: int) -> pl.Expr:
    """The positives before the last `drop_last`, newest `MAX_HISTORY` kept, oldest first."""
    return items.list.head(items.list.len() - drop_last).list.tail(MAX_HISTORY)


def _mask(users: dict[str, np.ndarray], n_users: int) -> np.ndarray:
    mask = np.zeros(n_users, dtype=bool)
    for ids in users.values():
        mask[ids] = True
    return mask


def _of_users(df: pl.DataFrame, mask: np.ndarray | None) -> pl.DataFrame:
    """The rows of `df` whose user is in `mask` (all rows for None)."""
    if mask is None:
        return df
    return df.filter(pl.Series(mask).gather(df["user_id"]))


def _sequences(events: pl.DataFrame, mask: np.ndarray | None) -> pl.DataFrame:
    """One row per user (of `mask`): `items`, the user's events oldest first (ties: order)."""
    return (
        _of_users(events, mask)
        .sort("user_id", "ts", "order")
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id").alias("items"))
    )


def _pick(rows: pl.DataFrame, ids: np.ndarray) -> pl.DataFrame:
    keep = pl.Series("user_id", np.sort(ids), dtype=pl.Int32)
    return rows.filter(pl.col("user_id").is_in(keep.implode()))


def _ctr_splits(mode, events, positives, n_pos, log_, n_items, sizes, rng, notes
                ) -> dict[str, pl.DataFrame]:
    """The CTR train/valid/test rows (user_id, history, item_id, label).

    Users are drawn from per-user row counts; rows and histories are then built for the drawn
    users only. (Sorting millions of rows that each carry a list is what once made `prepare`
    slow and memory-hungry.)
    """
    n_users = len(n_pos)
    if mode == "impressions":
        rows, impression_histories = _impression_rows(log_)
        counts = np.bincount(rows["user_id"].to_numpy(), minlength=n_users)
    elif mode == "real":
        negatives = events.filter(pl.col("label") == 0).select("user_id", "item_id", "ts",
                                                                "order")
        n_neg = np.bincount(negatives["user_id"].to_numpy(), minlength=n_users)
        # Users need a history item besides the two held-out positives, and a negative so that
        # the user has both labels (a group AUC).
        counts = np.where((n_pos >= 3) & (n_neg >= 1),
                          2 + np.minimum(n_neg, MAX_REAL_NEGATIVES), 0)
    elif mode == "sampled":
        # The sampled negatives draw from the generator before the split: every eligible user.
        eligible = _sequences(positives, n_pos >= 3)
        rows, hists = _sampled_rows(eligible, n_items, rng)
        counts = np.bincount(rows["user_id"].to_numpy(), minlength=n_users)
    else:
        raise DataError(f"unknown negative mode {mode!r}")
    users = _split_by_user(np.flatnonzero(counts), counts[counts > 0], sizes.ctr_test,
                           sizes.ctr_finetune, rng, "CTR", "rows", notes)
    mask = _mask(users, n_users)
    if mode == "real":
        rows, hists = _real_rows(_sequences(positives, mask), _of_users(negatives, mask))
    elif mode == "impressions":
        rows = _of_users(rows, mask).sort("user_id", "ts", "impression", "pos").select(
            "user_id", pl.col("impression").alias("hist_key"), "item_id", "label")
        hists = impression_histories(rows["hist_key"])
    # Histories are attached after the split: only the kept rows (~120k) carry a list.
    return {name: _with_history(_pick(rows, ids), hists) for name, ids in users.items()}


def _real_rows(eligible: pl.DataFrame, negatives: pl.DataFrame):
    """Last 2 positives + the newest real negatives of each user (the users all have both)."""
    eligible = eligible.with_columns(
        _last_history(pl.col("items"), 2).alias("history"),
        pl.col("items").list.tail(2).alias("pos"),
    )
    pos_rows = eligible.select("user_id", pl.col("pos").alias("item_id")).explode(
        "item_id").with_columns(pl.lit(1, pl.Int8).alias("label"))
    neg_rows = (
        negatives.sort("user_id", "ts", "order")
        .select("user_id", "item_id")
        .group_by("user_id", maintain_order=True).tail(MAX_REAL_NEGATIVES)
        .with_columns(pl.lit(0, pl.Int8).alias("label"))
    )
    rows = _keyed_by_user(pl.concat([pos_rows.select(neg_rows.columns), neg_rows]))
    hists = eligible.select(pl.col("user_id").cast(pl.Int64).alias("hist_key"), "history")
    return rows, hists


def _sampled_rows(eligible: pl.DataFrame, n_items: int, rng):
    """Last 2 positives + 2 sampled unseen items of every eligible user."""
    eligible = eligible.with_columns(
        _last_history(pl.col("items"), 2).alias("history"),
        pl.col("items").list.tail(2).alias("pos"),
    )
    pos_rows = eligible.select("user_id", pl.col("pos").alias("item_id")).explode(
        "item_id").with_columns(pl.lit(1, pl.Int8).alias("label"))
    neg_items = sample_unseen(eligible["items"], 2, n_items, rng)
    neg_rows = eligible.select("user_id").with_columns(
        pl.Series("item_id", neg_items).cast(pl.List(pl.Int32))).explode("item_id")
    neg_rows = neg_rows.with_columns(pl.lit(0, pl.Int8).alias("label"))
    rows = _keyed_by_user(pl.concat([pos_rows.select(neg_rows.columns), neg_rows]))
    hists = eligible.select(pl.col("user_id").cast(pl.Int64).alias("hist_key"), "history")
    return rows, hists


def _keyed_by_user(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.sort("user_id", maintain_order=True).select(
        "user_id", pl.col("user_id").cast(pl.Int64).alias("hist_key"), "item_id", "label")


def _impression_rows(log_: _Log):
    """Impression rows whose history keeps an item with text, and a history builder.

    The builder maps impression ids to (hist_key, history): the newest `MAX_HISTORY` history
    items with text, oldest first; it runs for the impressions of the drawn users only.
    """
    with_history = log_.impressions.join(log_.tokens.select(pl.col("hist").unique()),
                                         on="hist", how="semi")
    rows = log_.rows.with_row_index("pos").join(
        with_history.select("impression"), on="impression", how="semi", maintain_order="left")

    def histories(impressions: pl.Series) -> pl.DataFrame:
        wanted = with_history.join(impressions.unique().to_frame("impression"), on="impression",
                                   how="semi")
        lists = (
            log_.tokens.join(wanted.select(pl.col("hist").unique()), on="hist", how="semi",
                             maintain_order="left")
            .group_by("hist", maintain_order=True)
            .agg(pl.col("item_id").tail(MAX_HISTORY).alias("history"))
        )
        return wanted.join(lists, on="hist").select(pl.col("impression").alias("hist_key"),
                                                    "history")

    return rows, histories


def _with_history(rows: pl.DataFrame, histories: pl.DataFrame) -> pl.DataFrame:
    rows = rows.join(histories, on="hist_key", how="left", maintain_order="left")
    return _typed_ctr(rows.select("user_id", "history", "item_id", "label"))


def _typed_ctr(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.select(
        pl.col("user_id").cast(pl.Int32),
        pl.col("history").cast(pl.List(pl.Int32)),
        pl.col("item_id").cast(pl.Int32),
        pl.col("label").cast(pl.Int8),
    )


def _seq_rows(positives: pl.DataFrame) -> pl.DataFrame:
    return positives.filter(pl.col("items").list.len() >= 2).select(
        pl.col("user_id").cast(pl.Int32),
        _last_history(pl.col("items"), 1).cast(pl.List(pl.Int32)).alias("history"),
        pl.col("items").list.last().cast(pl.Int32).alias("target"),
    )

# --- splitting and sampling -----------------------------------------------------------------

def _split_by_user(user_ids: np.ndarray, counts: np.ndarray, test_target: int,
                   finetune_target: int, rng, task: str, unit: str, notes: list[str]
                   ) -> dict[str, np.ndarray]:
    """User-disjoint test / train / valid users, filled user by user in a seeded order.

    `user_ids` (ascending) are the users with rows, `counts` their row counts.
    """
    if len(user_ids) < 3:
        raise DataError(f"{task}: only {len(user_ids)} users qualify; need at least 3 "
                        "(each needs 3 positives for CTR or 2 for SeqRec)")
    order = rng.permutation(len(user_ids))
    users = user_ids[order]
    counts = np.asarray(counts)[order]
    cum = np.cumsum(counts)
    total = int(cum[-1])
    wanted = test_target + finetune_target
    if total < wanted:
        # Too small for the requested size: keep the test:finetune proportion and say so.
        test_target = max(1, round(total * test_target / wanted))
        finetune_target = total - test_target
        notes.append(f"{task}: only {total} {unit} available, fewer than the {wanted} requested; "
                     f"scaled down to test {test_target} / finetune {finetune_target}")
    n_test = int(np.searchsorted(cum, test_target) + 1)
    n_test = min(n_test, len(users) - 2)
    n_fine = int(np.searchsorted(cum, cum[n_test - 1] + finetune_target) + 1) - n_test
    n_fine = max(2, min(n_fine, len(users) - n_test))
    test_users = users[:n_test]
    fine_users = users[n_test:n_test + n_fine]
    n_valid = max(1, round(len(fine_users) * VALID_FRACTION))
    return {"train": fine_users[n_valid:], "valid": fine_users[:n_valid], "test": test_users}


def _sample_test_negatives(test: pl.DataFrame, n_items: int, rng) -> pl.DataFrame:
    """The frozen sampled100 candidates: never the target nor a history item."""
    seen = pl.Series([
        h + [t] for h, t in zip(test["history"].to_list(), test["target"].to_list(), strict=True)
    ], dtype=pl.List(pl.Int64))
    negs = sample_unseen(seen, N_SAMPLED_NEGATIVES, n_items, rng)
    return pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32),
        "user_id": test["user_id"],
        "negatives": pl.Series(negs).cast(pl.List(pl.Int32)),
    })


PROTOCOL = Protocol(name=PROTOCOL_VERSION, family="recbench", tasks=("ctr", "seq"),
                    Config=RecbenchConfig, build=build_splits)
