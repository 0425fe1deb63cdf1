"""`temporal-v1`: the temporal split of paper 002 (Boz et al., §7.1.1 and §7.1.4).

As the authors' `TemporalSplit` (dh-r/LLM-Sequential-Recommendation) does it:
- a session is a user's positive interactions, oldest first (no source here has sessions of
  its own); optionally an iterative `k`-core filter first (the paper's p-core = 5; off by
  default, as the P5 Beauty files are 5-core already);
- sizes: `paper` keeps every session; `small` / `tiny` draw 5,000 / 600 users (seeded);
- a session's time is its last interaction's (equal times: the later input row); sessions
  are sorted by it;
- test = the last ceil(`test_fraction` (20%)) sessions. Test interactions whose item never
  occurs in a training session are dropped, then test sessions with fewer than 2 items;
- leave-last-out inside each test session: history = every item but the last (the newest
  `max_len` kept), target = the last;
- tuning folds ("chain", 3 folds): the training sessions, sorted, are cut into 4 bins
  (`np.array_split`); fold k trains on bins 1..k and validates on bin k+1, with the same
  unseen-item and length filters against its own training bins. Written as
  `seq/folds/fold{1,2,3}/{train,valid}.parquet`; a training session gives one row
  (history = all but its last item, target = the last);
- ordinary runs (`recbench run`) use fold 3: `seq/train` = bins 1..3, `seq/valid` = bin 4
  (filtered against bins 1..3), `seq/test` = the test sessions (filtered against all 4 bins,
  as in the paper);
- 100 frozen negatives per test row (`seq/test_negatives.parquet`, for the shared evaluator's
  sampled metric), uniform over the items of the training sessions that the test session
  never contains. (Test targets are training items by construction; the paper itself ranks
  the full catalogue.)

Sources without timestamps (the P5 layout) order by file position instead: the manifest's
`protocol.time` and the CLI say so. Ids: dense int32 over the users and items left after the
filter and the sample, in raw-key order. There are no CTR rows.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from pydantic import Field

from recbench.core.config import ClosedConfig
from recbench.core.errors import DataError
from recbench.data.protocols import TIE_RULE, PreparedTables, Protocol, split_stats
from recbench.data.protocols.events import (
    USERS_PER_SIZE,
    count_filter,
    dense_ids,
    leave_last_out,
    positives,
    sample_users,
    sequences,
    time_source,
)
from recbench.data.protocols.negatives import negatives_frame, sample_from_pool
from recbench.data.raw import RawTables

PROTOCOL_VERSION = "temporal-v1"
N_BINS = 4  # three chained folds
MIN_SESSION_LEN = 2


class TemporalConfig(ClosedConfig):
    """temporal-v1's options (`prepare --protocol temporal -p key=value`)."""

    k: int = Field(0, ge=0, description="iterative k-core on users and items first (0: none)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of sessions in test")
    max_len: int = Field(50, ge=1, description="newest history items kept per row")
    negatives: int = Field(100, ge=1, description="sampled negatives per test row")


def build_splits(raw: RawTables, size: str, seed: int, config: TemporalConfig | None = None
                 ) -> PreparedTables:
    """Apply temporal-v1 to one source's tables. See the module docstring for the rules."""
    cfg = config or TemporalConfig()
    rng = np.random.default_rng(seed)
    notes = list(raw.notes)
    pos = positives(raw, notes)
    events = pos.events
    if cfg.k > 0:
        before = events.height
        events = events.filter(pl.Series(count_filter(events, cfg.k, cfg.k, iterative=True)))
        notes.append(f"iterative {cfg.k}-core: {before:,} -> {events.height:,} interactions")
    if events.height == 0:
        raise DataError("temporal-v1: no interaction is left to split")
    items, events = dense_ids(pos, sample_users(events, size, rng, notes))
    # sessions in time order: by their last interaction (equal times: the later input row)
    sessions = sequences(events).sort("last_ts", "last_order")
    n = sessions.height
    n_test = math.ceil(cfg.test_fraction * n)
    if n - n_test < N_BINS:
        raise DataError(f"temporal-v1: {n} sessions leave {n - n_test} for training; the "
                        f"{N_BINS} time bins of the validation folds need at least {N_BINS}")
    train_sessions, test_sessions = sessions.head(n - n_test), sessions.tail(n_test)
    train_items = _items_of(train_sessions)
    test, test_counts = _filtered_rows(test_sessions, train_items, cfg.max_len)
    notes.append(
        f"test = the last {n_test:,} of {n:,} sessions by time; {test_counts['interactions']:,} "
        f"test interactions on items unseen in training dropped, then "
        f"{test_counts['sessions']:,} sessions with fewer than {MIN_SESSION_LEN} items: "
        f"{test.height:,} test rows")
    if test.height == 0:
        raise DataError("temporal-v1: no test session keeps 2 items seen in training")

    bins = np.array_split(np.arange(train_sessions.height), N_BINS)
    folds, fold_stats = {}, {}
    for k in range(1, N_BINS):
        fold_train = train_sessions[np.concatenate(bins[:k])]
        fold_valid, _ = _filtered_rows(train_sessions[bins[k]], _items_of(fold_train),
                                       cfg.max_len)
        folds[k] = {"train": leave_last_out(fold_train, cfg.max_len), "valid": fold_valid}
        fold_stats[f"fold{k}"] = {s: split_stats(df) for s, df in folds[k].items()}
    seq = {"train": folds[N_BINS - 1]["train"], "valid": folds[N_BINS - 1]["valid"],
           "test": test}
    # a row's whole session (before the unseen-item filter) is excluded from its candidates
    seen = test.select("user_id").join(test_sessions.select("user_id", "items"), on="user_id",
                                       how="left", maintain_order="left")["items"].list.unique()
    negatives = negatives_frame(test, sample_from_pool(seen, cfg.negatives, train_items, rng))

    extra = {f"seq/folds/fold{k}/{s}": df for k, parts in folds.items() for s, df in parts.items()}
    stats = {
        "n_items": items.height,
        "n_users": n,
        "n_events": events.height,
        "sessions": {"all": n, "train": train_sessions.height, "test": n_test,
                     "train_per_bin": [len(b) for b in bins],
                     "distinct_end_times": int(sessions["last_ts"].n_unique())},
        "test_filter": {"dropped_interactions": test_counts["interactions"],
                        "dropped_sessions": test_counts["sessions"]},
        "train_items": len(train_items),
        "users_per_size": USERS_PER_SIZE[size],
        "seq": {name: split_stats(df) for name, df in seq.items()},
        "folds": fold_stats,
    }
    if stats["sessions"]["distinct_end_times"] < n:
        notes.append(f"{n:,} sessions share {stats['sessions']['distinct_end_times']:,} distinct "
                     "end times; equal times are ordered by input position")
    return PreparedTables(items, {}, seq, negatives, stats, notes, extra=extra,
                          protocol=_description(cfg, seed, raw))


def _items_of(sessions: pl.DataFrame) -> np.ndarray:
    """The distinct items of `sessions`, sorted."""
    return np.unique(sessions["items"].explode().drop_nulls().to_numpy())


def _filtered_rows(sessions: pl.DataFrame, known: np.ndarray, max_len: int
                   ) -> tuple[pl.DataFrame, dict[str, int]]:
    """Leave-last-out rows of `sessions` after dropping items not in `known`, then sessions
    with fewer than 2 items; with the counts of both drops."""
    known_items = pl.Series(known, dtype=pl.Int32).implode()
    kept = sessions.with_columns(
        pl.col("items").list.eval(pl.element().filter(pl.element().is_in(known_items))))
    dropped = int((sessions["items"].list.len() - kept["items"].list.len()).sum())
    rows = leave_last_out(kept, max_len)
    return rows, {"interactions": dropped, "sessions": sessions.height - rows.height}


def _description(cfg: TemporalConfig, seed: int, raw: RawTables) -> dict:
    return {
        "parameters": {**cfg.model_dump(mode="json"), "bins": N_BINS, "folds": N_BINS - 1,
                       "min_session_len": MIN_SESSION_LEN},
        "candidates": {"test": {
            "file": "seq/test_negatives.parquet", "n": cfg.negatives, "sampler": "uniform",
            "pool": "the items of the training sessions",
            "excludes": "every item of the test session", "seed": seed}},
        "ties": TIE_RULE,
        "time": time_source(raw),
        "rows": ("seq/train = time bins 1-3, seq/valid = bin 4 (filtered against bins 1-3), "
                 "seq/test = the last sessions (filtered against bins 1-4); tuning folds in "
                 "seq/folds/fold{1,2,3}"),
    }


PROTOCOL = Protocol(name=PROTOCOL_VERSION, family="temporal", tasks=("seq",),
                    Config=TemporalConfig, build=build_splits)
