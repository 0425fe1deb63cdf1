"""The RecBench processing protocol, shared by every source (paper 001, §4.3 and Table 2).

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
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from recbench.core.errors import DataError
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


@dataclass
class PreparedTables:
    """The output of the protocol, ready to be written as Parquet."""

    items: pl.DataFrame
    ctr: dict[str, pl.DataFrame]
    seq: dict[str, pl.DataFrame]
    seq_test_negatives: pl.DataFrame
    stats: dict
    notes: list[str]


def build_splits(raw: RawTables, size: str, seed: int) -> PreparedTables:
    """Apply the protocol to one source's tables. See the module docstring for the rules."""
    sizes = SIZES[size]
    rng = np.random.default_rng(seed)
    notes = list(raw.notes)

    items = _clean_items(raw.items, notes)
    events = _clean_events(raw.events, items, notes)
    impressions = histories = None
    if raw.negatives == "impressions":
        if raw.impressions is None:
            raise DataError("source declared impression negatives but gave no impressions table")
        impressions, histories = _clean_impressions(raw.impressions, raw.impression_histories,
                                                    items, notes)

    items, key_to_id = _assign_item_ids(items, events, histories, impressions)
    n_items = items.height
    if n_items < N_SAMPLED_NEGATIVES + MAX_HISTORY + 2:
        raise DataError(
            f"only {n_items} items with text remain after filtering; the protocol needs at least "
            f"{N_SAMPLED_NEGATIVES + MAX_HISTORY + 2} (100 sampled negatives per test row)"
        )
    users = _user_ids(events, impressions)
    positives = _positive_sequences(events, key_to_id, users)

    ctr_rows, ctr_histories = _ctr_rows(raw.negatives, positives, events, impressions, histories,
                                        key_to_id, users, n_items, rng)
    del impressions, histories
    ctr = _split_by_user(ctr_rows, sizes.ctr_test, sizes.ctr_finetune, rng, "CTR", "rows", notes)
    # Histories are attached after the split: only the kept rows (~120k) carry a list.
    ctr = {name: _with_history(df, ctr_histories) for name, df in ctr.items()}
    seq_rows = _seq_rows(positives)
    seq = _split_by_user(seq_rows, sizes.seq_test, sizes.seq_finetune, rng, "SeqRec", "sequences",
                         notes)
    negatives = _sample_test_negatives(seq["test"], n_items, rng)

    stats = {
        "n_items": n_items,
        "n_users": users.height,
        "n_events": int(events.select(pl.len()).item()),
        "ctr": {name: _split_stats(df) for name, df in ctr.items()},
        "seq": {name: _split_stats(df) for name, df in seq.items()},
        "sizes_requested": asdict(sizes),
    }
    return PreparedTables(items, ctr, seq, negatives, stats, notes)


# --- cleaning ---------------------------------------------------------------------------------

def _clean_items(items: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
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


def _clean_events(events: pl.LazyFrame, items: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """Keep events on items with text, numbered in input order for stable time ties."""
    events = events.with_row_index("order").select(
        pl.col("user_key").cast(pl.Utf8),
        pl.col("item_key").cast(pl.Utf8),
        pl.col("ts").cast(pl.Int64),
        pl.col("label").cast(pl.Int8),
        pl.col("order").cast(pl.Int64),
    )
    total = events.select(pl.len()).collect().item()
    kept = events.join(items.lazy().select("item_key"), on="item_key", how="semi").collect()
    if kept.height < total:
        notes.append(f"dropped {total - kept.height} of {total} interactions on items without text")
    if kept.filter(pl.col("label") == 1).height == 0:
        raise DataError("no positive interaction remains after filtering: empty result")
    return kept


def _clean_impressions(imps: pl.LazyFrame, histories: pl.LazyFrame | None, items: pl.DataFrame,
                       notes: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Impression rows on items with text, and one history per remaining impression."""
    imps = imps.collect()
    if histories is None:
        # The history rides on every shown row: keep it once per impression.
        histories = imps.lazy().select("impression", "history")
        imps = imps.drop("history")
    keys = items.select("item_key")
    before = imps.height
    imps = imps.join(keys, on="item_key", how="semi")
    # History items without text are dropped later, when histories are mapped to ids.
    histories = (
        histories.unique("impression", keep="first", maintain_order=True).collect()
        .join(imps.select("impression").unique(), on="impression", how="semi",
              maintain_order="left")
    )
    if imps.height < before:
        notes.append(f"dropped {before - imps.height} of {before} impression rows on items "
                     "without text")
    return imps, histories


def _assign_item_ids(items, events, histories, impressions) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Dense ids over the items that occur anywhere, sorted by raw key (deterministic)."""
    used = events.select("item_key")
    if impressions is not None:
        used = pl.concat([
            used,
            impressions.select("item_key"),
            histories.select(pl.col("history").explode().alias("item_key")).drop_nulls(),
        ])
    used = used.unique()
    items = (
        items.join(used, on="item_key", how="semi")
        .sort("item_key")
        .with_row_index("item_id")
        .with_columns(pl.col("item_id").cast(pl.Int32))
    )
    return items, items.select("item_key", "item_id")


def _user_ids(events: pl.DataFrame, impressions: pl.DataFrame | None) -> pl.DataFrame:
    keys = events.select("user_key")
    if impressions is not None:
        keys = pl.concat([keys, impressions.select("user_key")])
    return (
        keys.unique().sort("user_key").with_row_index("user_id")
        .with_columns(pl.col("user_id").cast(pl.Int32))
    )


def _positive_sequences(events, key_to_id, users) -> pl.DataFrame:
    """One row per user: `items`, the user's positives oldest first."""
    return (
        events.filter(pl.col("label") == 1)
        .join(key_to_id, on="item_key")
        .join(users, on="user_key")
        .sort("user_id", "ts", "order")
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id").alias("items"))
    )


# --- rows ---------------------------------------------------------------------------------------

def _last_history(items: pl.Expr, drop_last: int) -> pl.Expr:
    """The positives before the last `drop_last`, newest `MAX_HISTORY` kept, oldest first."""
    return items.list.head(items.list.len() - drop_last).list.tail(MAX_HISTORY)


def _ctr_rows(mode, positives, events, impressions, histories, key_to_id, users, n_items, rng):
    """CTR rows (user_id, hist_key, item_id, label) and their histories (hist_key, history).

    The history is kept apart, keyed by user (sampled, real) or impression (impressions), and
    attached by `_with_history` once the users are split: sorting and filtering millions of
    rows that each carry a list is what made `prepare` slow and memory-hungry.
    """
    if mode == "impressions":
        return _ctr_rows_from_impressions(impressions, histories, key_to_id, users)
    # Users need at least one history item besides the two held-out positives.
    eligible = positives.filter(pl.col("items").list.len() >= 3).with_columns(
        _last_history(pl.col("items"), 2).alias("history"),
        pl.col("items").list.tail(2).alias("pos"),
    )
    pos_rows = eligible.select("user_id", pl.col("pos").alias("item_id")).explode(
        "item_id").with_columns(pl.lit(1, pl.Int8).alias("label"))
    if mode == "real":
        neg = (
            events.filter(pl.col("label") == 0)
            .join(key_to_id, on="item_key").join(users, on="user_key")
            .sort("user_id", "ts", "order")
            .select("user_id", "item_id")
            .group_by("user_id", maintain_order=True).tail(MAX_REAL_NEGATIVES)
        )
        # maintain_order: the negatives' order must not depend on the join's threading.
        neg_rows = eligible.select("user_id").join(
            neg, on="user_id", maintain_order="right"
        ).with_columns(pl.lit(0, pl.Int8).alias("label"))
        # A user needs both labels to have a group AUC.
        with_neg = neg_rows.select("user_id").unique()
        pos_rows = pos_rows.join(with_neg, on="user_id", how="semi")
    elif mode == "sampled":
        neg_items = _sample_unseen(eligible["items"], 2, n_items, rng)
        neg_rows = eligible.select("user_id").with_columns(
            pl.Series("item_id", neg_items).cast(pl.List(pl.Int32))).explode("item_id")
        neg_rows = neg_rows.with_columns(pl.lit(0, pl.Int8).alias("label"))
    else:
        raise DataError(f"unknown negative mode {mode!r}")
    rows = pl.concat([pos_rows.select(neg_rows.columns), neg_rows])
    rows = rows.sort("user_id", maintain_order=True).select(
        "user_id", pl.col("user_id").cast(pl.Int64).alias("hist_key"), "item_id", "label")
    hists = eligible.select(pl.col("user_id").cast(pl.Int64).alias("hist_key"), "history")
    return rows, hists


def _ctr_rows_from_impressions(imps, histories, key_to_id, users):
    hists = (
        histories.explode("history").rename({"history": "item_key"})
        .join(key_to_id, on="item_key", how="left", maintain_order="left")
        .group_by("impression", maintain_order=True)
        .agg(pl.col("item_id").drop_nulls().tail(MAX_HISTORY).alias("history"))
        .filter(pl.col("history").list.len() > 0)
        .rename({"impression": "hist_key"})
    )
    rows = (
        imps.select("user_key", "impression", "ts", "item_key", "label")
        .with_row_index("pos")
        .join(hists.select("hist_key"), left_on="impression", right_on="hist_key", how="semi")
        .join(key_to_id, on="item_key").join(users, on="user_key")
        .sort("user_id", "ts", "impression", "pos")
        .select("user_id", pl.col("impression").alias("hist_key"), "item_id", "label")
    )
    return rows, hists


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

def _split_by_user(rows, test_target, finetune_target, rng, task, unit, notes):
    """User-disjoint test / train / valid splits, filled user by user in a seeded order."""
    per_user = rows.group_by("user_id").len().sort("user_id")
    if per_user.height < 3:
        raise DataError(f"{task}: only {per_user.height} users qualify; need at least 3 "
                        "(each needs 3 positives for CTR or 2 for SeqRec)")
    order = rng.permutation(per_user.height)
    users = per_user["user_id"].to_numpy()[order]
    counts = per_user["len"].to_numpy()[order]
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
    valid_users = fine_users[:n_valid]
    train_users = fine_users[n_valid:]

    def pick(ids: np.ndarray) -> pl.DataFrame:
        keep = pl.Series("user_id", np.sort(ids), dtype=pl.Int32)
        return rows.filter(pl.col("user_id").is_in(keep.implode()))

    return {"train": pick(train_users), "valid": pick(valid_users), "test": pick(test_users)}


def _sample_unseen(seen: pl.Series, k: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """(n_rows, k) distinct items per row, uniform over the items that row has not seen.

    Rejection sampling in vectorised rounds: every row draws as many items as it still needs,
    draws that were seen, already chosen or repeated within the round are dropped, and the
    survivors are kept in draw order.
    """
    n = len(seen)
    lengths = seen.list.len().to_numpy()
    if np.any(lengths + k > n_items):
        raise DataError(f"a user has seen so many of the {n_items} items that {k} unseen ones "
                        "cannot be sampled")
    row_of_seen = np.repeat(np.arange(n, dtype=np.int64), lengths)
    seen_keys = row_of_seen * n_items + seen.explode().drop_nulls().to_numpy().astype(np.int64)
    chosen = np.empty(0, dtype=np.int64)
    need = np.full(n, k, dtype=np.int64)
    while need.any():
        rows = np.repeat(np.arange(n, dtype=np.int64), need)
        keys = rows * n_items + rng.integers(0, n_items, size=len(rows))
        keys = keys[~np.isin(keys, seen_keys) & ~np.isin(keys, chosen)]
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
        chosen = np.concatenate([chosen, keys])
        need -= np.bincount(keys // n_items, minlength=n)
    order = np.argsort(chosen // n_items, kind="stable")
    return (chosen[order] % n_items).astype(np.int32).reshape(n, k)


def _sample_test_negatives(test: pl.DataFrame, n_items: int, rng) -> pl.DataFrame:
    """The frozen sampled100 candidates: never the target nor a history item."""
    seen = pl.Series([
        h + [t] for h, t in zip(test["history"].to_list(), test["target"].to_list(), strict=True)
    ], dtype=pl.List(pl.Int64))
    negs = _sample_unseen(seen, N_SAMPLED_NEGATIVES, n_items, rng)
    return pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32),
        "user_id": test["user_id"],
        "negatives": pl.Series(negs).cast(pl.List(pl.Int32)),
    })


def _split_stats(df: pl.DataFrame) -> dict:
    item_col = "item_id" if "item_id" in df.columns else "target"
    out = {"rows": df.height, "users": df["user_id"].n_unique(), "items": df[item_col].n_unique()}
    if "label" in df.columns:
        out["positives"] = int(df["label"].sum())
    return out
