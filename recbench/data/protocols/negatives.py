"""Sampled candidates: distinct items per row, uniform over what that row has not seen.

Every protocol freezes its sampled negatives in Parquet at `prepare` time (one file per split,
columns `row`, `user_id`, `negatives`), so every model is scored against the same candidates.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recbench.core.errors import DataError


def sample_unseen(seen: pl.Series, k: int, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """(n_rows, k) distinct items per row, uniform over the items that row has not seen.

    Rejection sampling in vectorised rounds: every row draws as many items as it still needs,
    draws that were seen, already chosen or repeated within the round are dropped, and the
    survivors are kept in draw order.
    """
    n = len(seen)
    lengths = seen.list.len().to_numpy()
    if np.any(lengths + k > n_items):
        raise DataError(f"a row has seen {int(lengths.max())} of the {n_items} candidate items, "
                        f"so {k} unseen ones cannot be sampled: the dataset is too small for "
                        f"{k} sampled negatives per row")
    row_of_seen = np.repeat(np.arange(n, dtype=np.int64), lengths)
    seen_keys = np.sort(row_of_seen * n_items
                        + seen.explode().drop_nulls().to_numpy().astype(np.int64))
    chosen = np.empty(0, dtype=np.int64)
    need = np.full(n, k, dtype=np.int64)
    while need.any():
        rows = np.repeat(np.arange(n, dtype=np.int64), need)
        keys = rows * n_items + rng.integers(0, n_items, size=len(rows))
        keys = keys[~_member(keys, seen_keys) & ~_member(keys, np.sort(chosen))]
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
        chosen = np.concatenate([chosen, keys])
        need -= np.bincount(keys // n_items, minlength=n)
    order = np.argsort(chosen // n_items, kind="stable")
    return (chosen[order] % n_items).astype(np.int32).reshape(n, k)


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """`np.isin(values, sorted_set)` by binary search: numpy's hash-based `isin` takes ~2 s per
    call on a few million int64 keys, this ~0.1 s."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, values), len(sorted_set) - 1)
    return sorted_set[pos] == values



def sample_from_pool(seen: pl.Series, k: int, pool: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray:
    """(n_rows, k) distinct items of `pool` (sorted item ids) per row, none of them in `seen`.

    Uniform over the pool items the row has not seen; seen items outside the pool are ignored.
    """
    pool = np.asarray(pool, dtype=np.int64)
    flat = seen.explode().drop_nulls().to_numpy().astype(np.int64)
    pos = np.searchsorted(pool, flat)
    in_pool = (pos < len(pool)) & (pool[np.minimum(pos, len(pool) - 1)] == flat)
    rows = np.repeat(np.arange(len(seen)), seen.list.len().fill_null(0).to_numpy())
    as_pool = pl.DataFrame({"row": rows[in_pool], "pos": pos[in_pool]}).group_by(
        "row", maintain_order=True).agg(pl.col("pos").unique(maintain_order=True))
    positions = (pl.DataFrame({"row": np.arange(len(seen))})
                 .join(as_pool, on="row", how="left", maintain_order="left")
                 .get_column("pos").fill_null(pl.lit([], dtype=pl.List(pl.Int64))))
    return pool[sample_unseen(positions, k, len(pool), rng)].astype(np.int32)


def negatives_frame(rows: pl.DataFrame, negatives: np.ndarray) -> pl.DataFrame:
    """The frozen-candidates table of `rows` (in their order): row, user_id, negatives."""
    return pl.DataFrame({
        "row": np.arange(rows.height, dtype=np.int32),
        "user_id": rows["user_id"],
        "negatives": pl.Series(negatives).cast(pl.List(pl.Int32)),
    })
