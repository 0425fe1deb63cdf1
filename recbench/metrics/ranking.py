"""Top-k ranking metrics with one relevant item per row: NDCG@k, HR@k and MRR@k.

Both evaluation protocols reduce to the rank of the target:
- sampled candidates (`ranks_from_scores`): each row scores the target and its frozen negatives;
- full catalogue (`full_ranks`): each row scores every item, optionally with the user's
  history masked out.

Ties are broken *pessimistically*: rank = 1 + the number of other candidates whose score is
>= the target's. A model that gives every item the same score therefore gets the worst rank,
not the best, so constant or collapsed scorers cannot look good by accident. NaN scores count
as -inf. Score matrices are processed in row chunks of about 64 MB, so the extra memory stays
bounded whatever the catalogue size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from recbench.core.errors import UnknownNameError
from recbench.metrics import MetricError

__all__ = [
    "KS",
    "full_ranks",
    "per_row_metric",
    "ranking_metrics",
    "ranks_from_scores",
    "topk_items",
]

KS: tuple[int, ...] = (1, 5, 10, 20)

_CHUNK_BYTES = 64 * 2**20
_METRIC_NAME = re.compile(r"(ndcg|hr|mrr)@([1-9][0-9]*)|mrr")


def _rows_per_chunk(n_cols: int, bytes_per_cell: int) -> int:
    return max(1, _CHUNK_BYTES // max(1, n_cols * bytes_per_cell))


def _score_matrix(scores: ArrayLike, where: str) -> np.ndarray:
    """Return `scores` as a 2-D float array (float32 stays float32), or raise MetricError."""
    s = np.asarray(scores)
    if s.ndim != 2:
        raise MetricError(f"{where}: scores must be 2-D (n_rows, n_candidates), got {s.shape}")
    if s.shape[1] == 0:
        raise MetricError(f"{where}: scores have no candidate columns")
    if not np.issubdtype(s.dtype, np.floating):
        if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
            raise MetricError(f"{where}: scores must be numeric, got dtype {s.dtype}")
        s = s.astype(np.float64)
    return s


def _column_ids(ids: ArrayLike, n_rows: int, n_cols: int, where: str, what: str) -> np.ndarray:
    """Return `ids` as (n_rows,) int64 column indices in [0, n_cols), or raise MetricError."""
    c = np.asarray(ids)
    if c.shape != (n_rows,):
        raise MetricError(f"{where}: {what} must have shape ({n_rows},), got {c.shape}")
    if n_rows and not np.issubdtype(c.dtype, np.integer):
        raise MetricError(f"{where}: {what} must be integers, got dtype {c.dtype}")
    c = c.astype(np.int64, copy=False)
    if n_rows and (c.min() < 0 or c.max() >= n_cols):
        raise MetricError(
            f"{where}: {what} must lie in [0, {n_cols}), got range [{c.min()}, {c.max()}]"
        )
    return c


def _pessimistic_ranks(
    block: np.ndarray,
    target_col: np.ndarray,
    masked_rows: np.ndarray | None = None,
    masked_items: np.ndarray | None = None,
) -> np.ndarray:
    """Ranks of `target_col` in each row of `block`: the count of scores >= the target's.

    The count includes the target itself, hence 1 + #others. NaN compares false with
    everything, so a NaN candidate never counts against a real target. A target at -inf
    (or NaN) ties with every candidate, NaN and masked ones included, so its rank is the
    number of columns.

    Masked (row, item) pairs, distinct and never a row's target, act as if set to -inf:
    rather than copying the block to overwrite them, the ones that were counted (score >=
    target) are subtracted again.
    """
    target = block[np.arange(block.shape[0]), target_col]
    target = np.where(np.isnan(target), -np.inf, target).astype(block.dtype, copy=False)
    ranks = np.count_nonzero(block >= target[:, None], axis=1).astype(np.int64)
    if masked_rows is not None and masked_rows.size:
        counted = block[masked_rows, masked_items] >= target[masked_rows]
        ranks -= np.bincount(masked_rows[counted], minlength=block.shape[0])
    ranks[target == -np.inf] = block.shape[1]
    return ranks


def ranks_from_scores(scores: ArrayLike, target_col: ArrayLike) -> np.ndarray:
    """1-based pessimistic rank of each row's target among its candidates.

    Args:
        scores: (n_rows, n_cands) scores; NaN counts as -inf.
        target_col: (n_rows,) column of the target in each row.

    Returns:
        (n_rows,) int64 ranks: 1 + #(other candidates with score >= the target's score).

    Raises:
        MetricError: on bad shapes or target columns out of range.
    """
    s = _score_matrix(scores, "ranks_from_scores")
    n_rows, n_cols = s.shape
    col = _column_ids(target_col, n_rows, n_cols, "ranks_from_scores", "target_col")
    ranks = np.empty(n_rows, dtype=np.int64)
    step = _rows_per_chunk(n_cols, s.itemsize)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        ranks[start:stop] = _pessimistic_ranks(s[start:stop], col[start:stop])
    return ranks


def _exclusion_pairs(
    exclude: Sequence[ArrayLike] | np.ndarray, targets: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten `exclude` into distinct, row-sorted (row, item) pairs without padding/targets."""
    n_rows = targets.shape[0]
    if isinstance(exclude, np.ndarray) and exclude.ndim == 2:
        if exclude.shape[0] != n_rows:
            raise MetricError(
                f"full_ranks: exclude has {exclude.shape[0]} rows but scores have {n_rows}"
            )
        rows, cols = np.nonzero(exclude != -1)
        items = exclude[rows, cols]
    else:
        if len(exclude) != n_rows:
            raise MetricError(
                f"full_ranks: exclude has {len(exclude)} rows but scores have {n_rows}"
            )
        per_row = [np.asarray(x).ravel() for x in exclude]
        lengths = np.fromiter((x.shape[0] for x in per_row), dtype=np.int64, count=n_rows)
        rows = np.repeat(np.arange(n_rows), lengths)
        items = np.concatenate(per_row) if per_row else np.empty(0, dtype=np.int64)
        keep = items != -1
        rows, items = rows[keep], items[keep]
    if items.size and not np.issubdtype(items.dtype, np.integer):
        raise MetricError(f"full_ranks: exclude must hold integer item ids, got {items.dtype}")
    items = items.astype(np.int64, copy=False)
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise MetricError(
            f"full_ranks: exclude ids must lie in [0, {n_items}) or be -1 padding, "
            f"got range [{items.min()}, {items.max()}]"
        )
    keep = items != targets[rows]
    # Distinct pairs, sorted by row then item: a repeated history item is masked once.
    flat = np.unique(rows[keep] * np.int64(n_items) + items[keep])
    return flat // n_items, flat % n_items


def full_ranks(
    scores: ArrayLike,
    targets: ArrayLike,
    exclude: Sequence[ArrayLike] | np.ndarray | None = None,
) -> np.ndarray:
    """1-based pessimistic rank of each row's target item over the full catalogue.

    Args:
        scores: (n_rows, n_items) scores of every item; NaN counts as -inf. Not modified.
        targets: (n_rows,) target item ids.
        exclude: items to mask to -inf per row (e.g. the user's history): a list of n_rows
            int arrays, or an (n_rows, L) int array padded with -1. A row's target is never
            masked, even if listed. None masks nothing.

    Returns:
        (n_rows,) int64 ranks.

    Raises:
        MetricError: on bad shapes or ids out of range.
    """
    s = _score_matrix(scores, "full_ranks")
    n_rows, n_items = s.shape
    t = _column_ids(targets, n_rows, n_items, "full_ranks", "targets")
    if exclude is None:
        rows, items = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    else:
        rows, items = _exclusion_pairs(exclude, t, n_items)
    ranks = np.empty(n_rows, dtype=np.int64)
    step = _rows_per_chunk(n_items, s.itemsize)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        lo, hi = np.searchsorted(rows, (start, stop))
        ranks[start:stop] = _pessimistic_ranks(
            s[start:stop], t[start:stop], rows[lo:hi] - start, items[lo:hi]
        )
    return ranks


def _rank_array(ranks: ArrayLike, where: str) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or r.shape[0] == 0:
        raise MetricError(f"{where}: ranks must be a non-empty 1-D array, got shape {r.shape}")
    if not np.issubdtype(r.dtype, np.integer):
        raise MetricError(f"{where}: ranks must be integers, got dtype {r.dtype}")
    if r.min() < 1:
        raise MetricError(f"{where}: ranks are 1-based, got a rank of {r.min()}")
    return r.astype(np.float64)


def _per_row(r: np.ndarray, kind: str, k: int | None) -> np.ndarray:
    """Per-row value of one metric from float ranks `r` (k=None: no cut-off)."""
    if kind == "hr":
        return (r <= k).astype(np.float64)
    gain = 1.0 / np.log2(r + 1.0) if kind == "ndcg" else 1.0 / r
    return gain if k is None else np.where(r <= k, gain, 0.0)


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise MetricError(f"ranking_metrics: every k must be a positive integer, got {k!r}")
    return int(k)


def ranking_metrics(ranks: ArrayLike, ks: Sequence[int] = KS) -> dict[str, float]:
    """Mean NDCG@k, HR@k and MRR@k over rows with one relevant item each.

    With one relevant item, IDCG = 1, so NDCG@k = 1 / log2(rank + 1) if rank <= k else 0;
    HR@k (= recall@k) = [rank <= k]; MRR@k = 1 / rank if rank <= k else 0.

    Args:
        ranks: (n_rows,) 1-based ranks of the target.
        ks: cut-offs.

    Returns:
        Keys "ndcg@k", "hr@k", "mrr@k" for every k, "mrr" (mean 1/rank, no cut-off) and
        "n_rows".

    Raises:
        MetricError: on empty or non-integer ranks, ranks below 1, or a bad k.
    """
    r = _rank_array(ranks, "ranking_metrics")
    out: dict[str, float] = {}
    for k in map(_check_k, ks):
        for kind in ("ndcg", "hr", "mrr"):
            out[f"{kind}@{k}"] = float(_per_row(r, kind, k).mean())
    out["mrr"] = float(_per_row(r, "mrr", None).mean())
    out["n_rows"] = float(r.shape[0])
    return out


def per_row_metric(ranks: ArrayLike, name: str) -> np.ndarray:
    """Per-row values of one ranking metric, e.g. for paired significance tests.

    Args:
        ranks: (n_rows,) 1-based ranks of the target.
        name: "ndcg@k", "hr@k", "mrr@k" (any positive k) or "mrr".

    Returns:
        (n_rows,) float64 values whose mean is `ranking_metrics(ranks)[name]`.

    Raises:
        UnknownNameError: if `name` is not one of the forms above.
        MetricError: on bad ranks.
    """
    match = _METRIC_NAME.fullmatch(name)
    if match is None:
        choices = [f"{kind}@{k}" for k in KS for kind in ("ndcg", "hr", "mrr")] + ["mrr"]
        raise UnknownNameError("ranking metric", name, choices)
    r = _rank_array(ranks, "per_row_metric")
    if match.group(1) is None:
        return _per_row(r, "mrr", None)
    return _per_row(r, match.group(1), int(match.group(2)))


def topk_items(scores: ArrayLike, k: int) -> np.ndarray:
    """Column indices of the k highest scores per row, best first, lower index first on ties.

    `np.argpartition` finds each row's k best in linear time; rows where a tie at the k-th
    score straddles the cut are redone exactly, so the result equals a stable descending
    argsort's first k columns. NaN counts as -inf.

    Args:
        scores: (n_rows, n_items) scores.
        k: list length, 1 <= k <= n_items.

    Returns:
        (n_rows, k) int64 item indices.

    Raises:
        MetricError: on a bad shape or k.
    """
    s = _score_matrix(scores, "topk_items")
    n_rows, n_items = s.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_items:
        raise MetricError(f"topk_items: k must be an integer in [1, {n_items}], got {k!r}")
    out = np.empty((n_rows, k), dtype=np.int64)
    step = _rows_per_chunk(n_items, 8)  # argpartition's int64 index array dominates
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        out[start:stop] = _topk_block(s[start:stop], int(k))
    return out


def _topk_block(block: np.ndarray, k: int) -> np.ndarray:
    n_items = block.shape[1]
    if np.isnan(block).any():
        block = np.where(np.isnan(block), -np.inf, block)
    top = np.argpartition(block, n_items - k, axis=1)[:, n_items - k :]
    vals = np.take_along_axis(block, top, axis=1)
    kth = vals.min(axis=1, keepdims=True)
    # argpartition picks an arbitrary subset of the items tied at the k-th score; where some
    # of them were left out, redo the row keeping the lowest-index tied items.
    tied_all = np.count_nonzero(block == kth, axis=1)
    tied_kept = np.count_nonzero(vals == kth, axis=1)
    redo = np.flatnonzero(tied_all > tied_kept)
    if redo.size:
        sub, cut = block[redo], kth[redo]
        above = sub > cut
        tied = sub == cut
        need = k - np.count_nonzero(above, axis=1, keepdims=True)
        take = above | (tied & (np.cumsum(tied, axis=1) <= need))
        top[redo] = np.nonzero(take)[1].reshape(redo.size, k)
        vals[redo] = np.take_along_axis(sub, top[redo], axis=1)
    order = np.lexsort((top, -vals), axis=1)
    return np.take_along_axis(top, order, axis=1)


def valid_ndcg10(scores: np.ndarray, targets: ArrayLike) -> float:
    """NDCG@10 of each row's target ranked among all items by `scores` (n, n_items): the
    validation score SeqRec training stops early on."""
    return ranking_metrics(full_ranks(scores, targets), ks=(10,))["ndcg@10"]
