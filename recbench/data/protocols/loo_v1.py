"""`loo-v1`: leave-one-out per user, as in SASRec and LLMEmb (and paper 000, which reuses it).

From `RawTables` to the frozen splits:
- the positive interactions on items with text; a user's sequence is oldest first (equal times
  keep the input order);
- count filter (LLMEmb's `filter_common`, the default): one pass over the unfiltered counts
  keeps an interaction iff its user has >= `user_k` and its item >= `item_k` interactions;
  `filter=k-core` repeats until stable instead. Then users with fewer than `min_seq_len`
  interactions left are dropped (LLMEmb's `filter_minmum`);
- sizes: `paper` keeps every user; `small` / `tiny` draw 5,000 / 600 users (seeded);
- user and item ids are re-indexed densely (int32, raw-key order) over what is left, so no
  id is a gap;
- per user: test target = the last item (history = every item before it), valid target = the
  second-to-last (history = the items before it), train row = the rest (target = the third to
  last, history = the items before it; a user whose rest is a single item gives no train row);
  histories keep the newest `max_len` (50) items, oldest first;
- 100 negatives per valid and per test row, drawn uniformly from the items the user never
  interacted with (the whole sequence is excluded), seeded, frozen in
  `seq/valid_negatives.parquet` and `seq/test_negatives.parquet`.

There are no CTR rows. Differences from LLMEmb's code, on purpose: ids are dense after the
filter (LLMEmb numbers before `filter_minmum`, leaving gaps), and the negatives are drawn once
and frozen (LLMEmb re-draws them on every evaluation pass).
"""

from __future__ import annotations

from typing import Literal

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
    users_with_at_least,
)
from recbench.data.protocols.negatives import negatives_frame, sample_unseen
from recbench.data.raw import RawTables

PROTOCOL_VERSION = "loo-v1"


class LooConfig(ClosedConfig):
    """loo-v1's options (`prepare --protocol loo -p key=value`); the defaults are LLMEmb's
    Beauty setting (5/5 one-pass)."""

    k: int = Field(5, ge=1, description="the count threshold of users and items")
    user_k: int | None = Field(None, ge=1, description="users' threshold (default: k)")
    item_k: int | None = Field(None, ge=1, description="items' threshold (default: k)")
    filter: Literal["one-pass", "k-core"] = "one-pass"
    min_seq_len: int = Field(3, ge=3, description="users with fewer interactions are dropped")
    max_len: int = Field(50, ge=1, description="newest history items kept per row")
    negatives: int = Field(100, ge=1, description="sampled negatives per valid and test row")

    @property
    def user_threshold(self) -> int:
        return self.user_k if self.user_k is not None else self.k

    @property
    def item_threshold(self) -> int:
        return self.item_k if self.item_k is not None else self.k


def build_splits(raw: RawTables, size: str, seed: int, config: LooConfig | None = None
                 ) -> PreparedTables:
    """Apply loo-v1 to one source's tables. See the module docstring for the rules."""
    cfg = config or LooConfig()
    rng = np.random.default_rng(seed)
    notes = list(raw.notes)
    pos = positives(raw, notes)
    n_raw = pos.events.height
    user_k, item_k = cfg.user_threshold, cfg.item_threshold
    filtered = pos.events.filter(pl.Series(count_filter(pos.events, user_k, item_k,
                                                        cfg.filter == "k-core")))
    n_counted = filtered.height
    filtered = filtered.filter(pl.Series(users_with_at_least(filtered, cfg.min_seq_len)))
    if filtered.height == 0:
        raise DataError(f"loo-v1: no user keeps {cfg.min_seq_len} interactions after the "
                        f"{cfg.filter} filter (users >= {user_k}, items >= {item_k})")
    filter_stats = {
        "interactions_before": n_raw, "after_count_filter": n_counted,
        "after_min_seq_len": filtered.height,
        "users_after": int(filtered["user"].n_unique()),
        "items_after": int(filtered["item"].n_unique()),
    }
    notes.append(
        f"{cfg.filter} count filter (users >= {user_k}, items >= {item_k}), then users "
        f">= {cfg.min_seq_len}: {n_raw:,} -> {filtered.height:,} interactions, "
        f"{filter_stats['users_after']:,} users, {filter_stats['items_after']:,} items")
    sampled = sample_users(filtered, size, rng, notes)
    items, events = dense_ids(pos, sampled)
    n_items = items.height
    seqs = sequences(events)

    seq = {
        "train": leave_last_out(seqs, cfg.max_len, drop_last=2),
        "valid": leave_last_out(seqs, cfg.max_len, drop_last=1),
        "test": leave_last_out(seqs, cfg.max_len),
    }
    no_train = seqs.height - seq["train"].height
    if no_train:
        notes.append(f"{no_train:,} users give no train row: their training part is a single "
                     "item (they keep their valid and test rows)")
    seen = seqs["items"].list.unique()
    valid_negatives = negatives_frame(seq["valid"], sample_unseen(seen, cfg.negatives, n_items,
                                                                  rng))
    test_negatives = negatives_frame(seq["test"], sample_unseen(seen, cfg.negatives, n_items,
                                                                rng))
    stats = {
        "n_items": n_items,
        "n_users": seqs.height,
        "n_events": events.height,
        "filter": filter_stats,
        "users_per_size": USERS_PER_SIZE[size],
        "seq": {name: split_stats(df) for name, df in seq.items()},
    }
    return PreparedTables(items, {}, seq, test_negatives, stats, notes,
                          extra={"seq/valid_negatives": valid_negatives},
                          protocol=_description(cfg, seed, raw))


def _description(cfg: LooConfig, seed: int, raw: RawTables) -> dict:
    def candidates(split: str) -> dict:
        return {"file": f"seq/{split}_negatives.parquet", "n": cfg.negatives,
                "sampler": "uniform", "pool": "every item",
                "excludes": "every item of the user's sequence", "seed": seed}

    return {
        "parameters": {**cfg.model_dump(mode="json"), "user_k": cfg.user_threshold,
                       "item_k": cfg.item_threshold},
        "candidates": {"valid": candidates("valid"), "test": candidates("test")},
        "ties": TIE_RULE,
        "time": time_source(raw),
        "rows": "per user: test = last item, valid = second to last, train = the rest",
    }


PROTOCOL = Protocol(name=PROTOCOL_VERSION, family="loo", tasks=("seq",), Config=LooConfig,
                    build=build_splits)
