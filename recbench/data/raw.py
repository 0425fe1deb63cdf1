"""The canonical form every source module produces before an evaluation protocol runs.

A source reads one raw layout (MIND tsv, Amazon json, RecBole atomic, ...) and returns `RawTables`;
everything after that (ids, sequences, negatives, splits) is the protocol's
(`recbench.data.protocols`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

NegativeMode = Literal["sampled", "real", "impressions"]

EVENT_SCHEMA = {"user_key": pl.Utf8, "item_key": pl.Utf8, "ts": pl.Int64, "label": pl.Int8}
IMPRESSION_SCHEMA = {
    "user_key": pl.Utf8,
    "impression": pl.Int64,
    "ts": pl.Int64,
    "history": pl.List(pl.Utf8),
    "item_key": pl.Utf8,
    "label": pl.Int8,
}


@dataclass
class RawTables:
    """What a source hands to the protocol.

    Attributes:
        items: one row per item: `item_key` (raw id, str), `text` (the Table 2 text attribute),
            plus any other attribute columns (category, brand, ...). Items with empty text are
            dropped by the protocol and counted.
        events: user-item interactions: `user_key`, `item_key`, `ts` (int64; any monotone time,
            or the row position where the source has no time), `label` (1 positive, 0 negative).
            Ties in `ts` keep the order of the rows.
        negatives: how CTR negatives are obtained: "sampled" (2 random unseen items per user),
            "real" (the user's label-0 events) or "impressions" (rows of `impressions`).
        impressions: MIND-style impression logs, one row per shown item, with the history the
            log itself carries; required when negatives == "impressions". The `history` column
            may be left out when `impression_histories` is given.
        impression_histories: (impression, history), one row per impression: the history the
            log carries for it. Stored once per impression rather than once per shown item
            (a MIND line shows ~10-40 items), which keeps 10M-row logs in a few GiB.
        source_files: raw files read, for the manifest's sha256 list.
        notes: facts worth reporting (rows dropped and why, caveats of the layout).
        timestamps: False where `ts` is a position in the files, not a time (the P5 layout):
            time-based protocols then say that file order stands in for time.
    """

    items: pl.DataFrame
    events: pl.LazyFrame
    negatives: NegativeMode
    impressions: pl.LazyFrame | None = None
    impression_histories: pl.LazyFrame | None = None
    source_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_attribute: str = "title"
    timestamps: bool = True
