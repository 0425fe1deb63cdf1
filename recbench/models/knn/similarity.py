"""Exact nearest items of query vectors over a whole catalogue (LLMSeqSim's last step).

similarity(q, x): `cosine` = q·x / (|q| |x|) (the authors' sklearn `cosine_similarity`),
`dot` = q·x (`linear_kernel`), `euclidean` = 1 / (1 + |q - x|).

`top_k` scores blocks of queries against chunks of the catalogue (matmuls of at most
`block_bytes` of scores; chunk lists merged exactly), keeps per row the scores at or above a
threshold that is provably at most its k-th best (from group maxima, two vectorised passes,
see `_best`) and sorts only those. Ties are broken by the smaller item id, the same order a
stable `argsort` of -scores gives, so the result is exact and reproducible. Excluded items
(a row's prompt items) score -inf and come last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from recbench.core.errors import ConfigError

Similarity = Literal["cosine", "dot", "euclidean"]
SIMILARITIES = ("cosine", "dot", "euclidean")
BLOCK_BYTES = 64 * 2 ** 20  # scores held at once per block (float32)


def prepare_items(items: np.ndarray, similarity: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The catalogue as scored: unit rows for cosine; squared norms kept for euclidean."""
    x = np.ascontiguousarray(items, dtype=np.float32)
    if similarity == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(norms, 1e-12), None
    if similarity == "euclidean":
        return x, np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)
    if similarity == "dot":
        return x, None
    raise ConfigError(f"similarity {similarity!r}: expected one of {', '.join(SIMILARITIES)}")


def scores(queries: np.ndarray, items: np.ndarray, similarity: str,
           sq_norms: np.ndarray | None = None, prepared: bool = False) -> np.ndarray:
    """(n, m) float32 similarities of queries (n, D) to catalogue rows (m, D)."""
    if not prepared:
        items, sq_norms = prepare_items(items, similarity)
    q = np.asarray(queries, dtype=np.float32)
    if similarity == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    s = q @ items.T  # (n, m)
    if similarity == "euclidean":
        sq = np.einsum("ij,ij->i", q, q)[:, None] + sq_norms[None, :] - 2.0 * s
        return (1.0 / (1.0 + np.sqrt(np.maximum(sq, 0.0)))).astype(np.float32)
    return s


def top_k(queries: np.ndarray, items: np.ndarray, k: int, similarity: str = "cosine",
          exclude: Sequence[Sequence[int]] | None = None, block_bytes: int = BLOCK_BYTES
          ) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar catalogue items per query: ids (n, k) int64 and scores (n, k).

    Args:
        queries: (n, D) query vectors (session embeddings).
        items: (m, D) catalogue vectors, row = item id.
        k: list length, 1 <= k <= m.
        similarity: cosine | dot | euclidean.
        exclude: per query, item ids never returned unless nothing else is left (scored -inf).
        block_bytes: score memory per block: catalogue chunks of min(m, block_bytes / 1 KiB)
            items, block_bytes / (4 chunk) queries at a time.

    Raises:
        ConfigError: k outside 1..m, an unknown similarity, or mismatched widths.
    """
    n, m = queries.shape[0], items.shape[0]
    if not 1 <= k <= m:
        raise ConfigError(f"top-k: k={k} must be between 1 and the catalogue size {m}")
    if queries.ndim != 2 or items.ndim != 2 or queries.shape[1] != items.shape[1]:
        raise ConfigError(f"top-k: queries {queries.shape} and items {items.shape} must be "
                          "(n, D) and (m, D)")
    x, sq = prepare_items(items, similarity)
    # Blocks of queries x catalogue chunks: a chunk of at most 64k items keeps each matmul
    # BLAS-sized for any catalogue (a 1M-item catalogue would otherwise be streamed through
    # memory for every few queries); per-chunk top-k lists are merged exactly (see _merge).
    chunk = min(m, max(k, int(block_bytes // (4 * 256))))
    rows = max(1, int(block_bytes // (4 * chunk)))
    ids = np.empty((n, k), dtype=np.int64)
    vals = np.empty((n, k), dtype=np.float32)
    for lo in range(0, n, rows):
        q = queries[lo:lo + rows]
        best_ids = np.empty((len(q), 0), dtype=np.int64)
        best_vals = np.empty((len(q), 0), dtype=np.float32)
        for start in range(0, m, chunk):
            stop = min(start + chunk, m)
            s = scores(q, x[start:stop], similarity,
                       None if sq is None else sq[start:stop], prepared=True)  # (b, c)
            if exclude is not None:
                for r, ex in enumerate(exclude[lo:lo + rows]):
                    if ex is not None and len(ex):
                        e = np.asarray(ex, dtype=np.int64)
                        e = e[(e >= start) & (e < stop)] - start
                        s[r, e] = -np.inf
            c_ids, c_vals = _best(s, min(k, stop - start))
            best_ids, best_vals = _merge(best_ids, best_vals, c_ids + start, c_vals, k)
        ids[lo:lo + rows], vals[lo:lo + rows] = best_ids, best_vals
    return ids, vals


def _merge(a_ids: np.ndarray, a_vals: np.ndarray, b_ids: np.ndarray, b_vals: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two per-row lists by (score desc, id asc). Exact: an item of the overall
    top k is in its own chunk's top k (else k items of that chunk come before it)."""
    cat_ids = np.concatenate([a_ids, b_ids], axis=1)
    cat_vals = np.concatenate([a_vals, b_vals], axis=1)
    by_id = np.argsort(cat_ids, axis=1, kind="stable")
    v = np.take_along_axis(cat_vals, by_id, 1)
    order = np.take_along_axis(by_id, np.argsort(-v, axis=1, kind="stable"), 1)[:, :k]
    return np.take_along_axis(cat_ids, order, 1), np.take_along_axis(cat_vals, order, 1)


def _best(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest, ties to the smaller id (= stable argsort of -s, cut to k).

    A cheap threshold first: cut each row into G = 4k groups of columns and take the k-th
    largest of the G group maxima. Those k maxima are k distinct scores at or above it, so the
    row's true k-th best score is too: every score >= the threshold is a candidate, and the
    candidates hold the exact top k with every tie at the cut (typically ~k + a few per row,
    found in two vectorised passes instead of a selection over all m scores). The candidates
    are then sorted by (score descending, id ascending) and each row's first k kept.
    """
    b, m = s.shape
    groups = 4 * k
    if m < 2 * groups:  # a small catalogue: a full stable sort is as cheap
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return order, np.take_along_axis(s, order, 1)
    width = -(-m // groups)
    maxima = np.full((b, groups), -np.inf, dtype=s.dtype)
    full = m // width  # groups without padding
    maxima[:, :full] = s[:, :full * width].reshape(b, full, width).max(axis=2)
    if full * width < m:  # a last, shorter group; groups past it stay -inf (>= 2k real ones)
        maxima[:, full] = s[:, full * width:].max(axis=1)
    threshold = np.partition(maxima, groups - k, axis=1)[:, groups - k]  # (b,)
    flat = np.flatnonzero(s >= threshold[:, None])  # row-major: ids ascending within a row
    rows, cols = np.divmod(flat, m)
    vals = s.ravel()[flat]
    order = np.lexsort((cols, -vals, rows))  # by row, score descending, id ascending
    counts = np.bincount(rows, minlength=b)  # >= k each, by the argument above
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = order[(starts[:, None] + np.arange(k)[None, :]).ravel()]
    return cols[take].reshape(b, k), vals[take].reshape(b, k)
