"""Raw keys -> integer codes, fast at 10M rows and exact under hash collisions.

Used by the sources (to group and de-duplicate raw rows) and by every protocol (to turn item and
user keys into dense ids). Raw keys are hashed once; every later step works on integers, and a
hash collision is always detected and sent to an exact (slower) path, never merged.
"""

from __future__ import annotations

import functools
import logging
import operator

import numpy as np
import polars as pl

log = logging.getLogger(__name__)

# Seed of the hashes that group raw keys (any fixed value: collisions are checked).
_KEY_HASH_SEED = 20_240_901


def lookup_rows(keys: pl.Series, dictionary: pl.Series) -> pl.Series:
    """The row of each key in `dictionary` (distinct strings), null where it is absent.

    Keys are matched by hash (a third faster than matching the strings), then each match is
    checked against the dictionary's string, so a hash collision sends the work to the exact
    string join. Consecutive equal keys (a file grouped by item) are looked up once.
    """
    keys = keys.cast(pl.Utf8)
    dictionary = dictionary.cast(pl.Utf8)
    starts = _run_starts(keys)
    heads = keys if starts is None else keys.gather(starts)
    hashes = _key_hash(dictionary)
    rows = None
    if hashes.n_unique() == len(hashes):
        rows = (
            _key_hash(heads).to_frame("key")
            .join(hashes.to_frame("key").with_row_index("row"), on="key", how="left",
                  maintain_order="left")
            .get_column("row")
        )
        rows = pl.select(pl.when(heads.is_not_null()).then(rows)).to_series()
        if not (dictionary.gather(rows) == heads).fill_null(True).all():
            rows = None
    if rows is None:
        log.warning("hash collision among the keys: matching the strings instead")
        rows = (
            heads.to_frame("key")
            .join(dictionary.to_frame("key").with_row_index("row"), on="key", how="left",
                  maintain_order="left")
            .get_column("row")
        )
    return rows if starts is None else rows.gather(_run_of_row(starts, len(keys)))


def encode_keys(columns: list[pl.Series], *, sort: bool = True
                ) -> tuple[list[np.ndarray], pl.Series]:
    """Integer codes for the distinct values of `columns` together, and those values.

    Returns (codes of each column, as uint32 numpy arrays; the distinct values, so that
    `values[code]` is the value). With `sort`, codes follow the values' sorted order (null
    first), else an arbitrary but deterministic one. Values are hashed once and grouped by hash;
    every row is then compared with its group's value, so a hash collision cannot merge two
    values: it sends the work to an exact (slower) path.
    """
    columns = [c if c.dtype.is_nested() else c.cast(pl.Utf8) for c in columns]
    runs = [_run_starts(c) for c in columns]
    heads = pl.concat([c if r is None else c.gather(r)
                       for c, r in zip(columns, runs, strict=True)])
    group = (_key_hash(heads).rank("dense") - 1).to_numpy()
    n = int(group.max()) + 1 if len(group) else 0
    first = np.empty(n, dtype=np.int64)
    first[group] = np.arange(len(group))  # any member of the group will do
    values = heads.gather(first)
    if sort:
        # The gathered strings still point into the buffers of all rows, scattered: sorting a
        # compact copy is 3-4x faster at 10M rows.
        values = pl.from_arrow(values.to_arrow(compat_level=pl.CompatLevel.oldest()))
        lex = values.arg_sort().to_numpy()  # null first, as `sort` puts it
        rank = np.empty(n, dtype=np.uint32)
        rank[lex] = np.arange(n, dtype=np.uint32)
        codes = rank[group]
        values = values.gather(lex)
    else:
        codes = group.astype(np.uint32, copy=False)
    if not values.gather(codes).eq_missing(heads).all():
        log.warning("hash collision among %d keys: encoding them exactly", n)
        values = heads.unique(maintain_order=not sort)
        values = values.sort() if sort else values
        codes = (heads.to_frame("key")
                 .join(values.to_frame("key").with_row_index("code"), on="key", how="left",
                       maintain_order="left", nulls_equal=True)["code"].to_numpy())
    out, offset = [], 0
    for col, starts in zip(columns, runs, strict=True):
        size = len(col) if starts is None else len(starts)
        part = codes[offset:offset + size]
        offset += size
        out.append(part if starts is None else part[_run_of_row(starts, len(col))])
    return out, values


def repeated_rows(df: pl.DataFrame, subset: list[str], *, order_by: str | None = None
                  ) -> pl.Series | None:
    """A boolean mask of the rows whose `subset` values occurred before (None when none did).

    "Before" is frame order, or `order_by` order with ties in frame order. Only rows whose hash
    of `subset` occurs twice can repeat (found by sorting the hashes: at 10M rows the cheapest
    way); the exact comparison runs on those few rows, so a hash collision is harmless.
    """
    pair = functools.reduce(operator.xor, [_key_hash(df[c], salt=k)
                                           for k, c in enumerate(subset)])
    ordered = pair.sort()
    twice = ordered.filter(ordered == ordered.shift(1))
    if twice.len() == 0:
        return None
    candidates = df.with_row_index("row").filter(pair.is_in(twice.unique().implode()))
    if order_by is not None:
        candidates = candidates.sort(order_by, maintain_order=True)
    first = candidates.unique(subset, keep="first")["row"]
    if len(first) == candidates.height:
        return None
    repeated = np.zeros(df.height, dtype=bool)
    repeated[candidates["row"].to_numpy()] = True
    repeated[first.to_numpy()] = False  # the first of each is kept
    return pl.Series("repeated", repeated)


def _key_hash(values: pl.Series, salt: int = 0) -> pl.Series:
    """A 64-bit hash per value (the one place keys are hashed; tests replace it to collide)."""
    return values.hash(_KEY_HASH_SEED + salt)


def _run_starts(keys: pl.Series) -> np.ndarray | None:
    """Start of each run of equal consecutive keys, or None when runs are too short to pay."""
    if len(keys) < 2 or keys.dtype.is_nested():
        return None
    change = keys.ne_missing(keys.shift(1))
    if change.sum() > len(keys) // 2:
        return None
    return np.concatenate([[0], change.slice(1).arg_true().to_numpy() + 1])


def _run_of_row(starts: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))

