"""Beyond-accuracy metrics of top-k lists, as in the LLMSeqSim paper: coverage, novelty,
serendipity.

Every function takes the recommended lists as an (n_rows, k) int array of item ids, e.g. the
output of `recbench.metrics.ranking.topk_items`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recbench.metrics import MetricError

__all__ = ["catalog_coverage", "novelty", "serendipity"]


def _topk_lists(topk: ArrayLike, where: str, n_items: int | None = None) -> np.ndarray:
    """Return `topk` as a non-empty (n_rows, k) int64 array, ids checked against `n_items`."""
    t = np.asarray(topk)
    if t.ndim != 2 or t.size == 0:
        raise MetricError(f"{where}: topk must be a non-empty (n_rows, k) array, got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise MetricError(f"{where}: topk must hold integer item ids, got dtype {t.dtype}")
    t = t.astype(np.int64, copy=False)
    if t.min() < 0 or (n_items is not None and t.max() >= n_items):
        upper = "inf" if n_items is None else n_items
        raise MetricError(
            f"{where}: item ids must lie in [0, {upper}), got range [{t.min()}, {t.max()}]"
        )
    return t


def catalog_coverage(topk: ArrayLike, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one top-k list.

    Args:
        topk: (n_rows, k) recommended item ids.
        n_items: catalogue size.

    Returns:
        #distinct recommended items / n_items, in [0, 1].

    Raises:
        MetricError: on an empty or non-integer `topk`, ids outside [0, n_items), or
            n_items < 1.
    """
    if n_items < 1:
        raise MetricError(f"catalog_coverage: n_items must be >= 1, got {n_items}")
    t = _topk_lists(topk, "catalog_coverage", n_items)
    seen = np.zeros(n_items, dtype=bool)
    seen[t.ravel()] = True
    return float(np.count_nonzero(seen) / n_items)


def novelty(topk: ArrayLike, item_counts: ArrayLike, unseen: str = "smooth") -> float:
    """Mean self-information -log2 p(i) of the recommended items, in bits.

    p(i) = count_i / total, where count_i is the item's number of training interactions and
    total is the sum of `item_counts`. Items never seen in training (count 0) are given a
    count of 1, so their self-information is large but finite; `total` is not changed by
    that smoothing.

    Parity with paper 002's code (`main/eval/metrics/novelty.py`): pass whole-dataset counts
    (train + test interactions) and `unseen="zero"`: an item without a count then adds 0 bits
    but still counts in the mean over the n_rows * k slots.

    Args:
        topk: (n_rows, k) recommended item ids.
        item_counts: (n_items,) non-negative interaction counts per item (training counts by
            default; whole-dataset counts for the authors' reading).
        unseen: "smooth" (count 0 -> 1, the default) or "zero" (count 0 -> 0 bits, the
            authors').

    Returns:
        The mean over all n_rows * k recommended slots.

    Raises:
        MetricError: on bad `topk`, ids outside the count vector, negative counts, or no
            training interactions at all.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.shape[0] == 0:
        raise MetricError(f"novelty: item_counts must be a non-empty 1-D array, got {counts.shape}")
    if counts.min() < 0:
        raise MetricError("novelty: item_counts must be non-negative")
    total = counts.sum()
    if total <= 0:
        raise MetricError("novelty: item_counts sum to 0; popularity is undefined")
    if unseen not in ("smooth", "zero"):
        raise MetricError(f"novelty: unseen must be 'smooth' or 'zero', got {unseen!r}")
    t = _topk_lists(topk, "novelty", counts.shape[0])
    c = counts[t]
    bits = np.log2(total) - np.log2(np.maximum(c, 1.0))
    if unseen == "zero":
        bits = np.where(c > 0, bits, 0.0)
    return float(np.mean(bits))


def serendipity(topk: ArrayLike, targets: ArrayLike, popular_topk: ArrayLike) -> float:
    """Fraction of rows whose target is hit in the top-k but is not a MostPopular pick.

    A hit counts as serendipitous only if the target is absent from MostPopular's own top-k
    list (one list shared by every row), so recommending the blockbusters earns nothing.

    Args:
        topk: (n_rows, k) recommended item ids.
        targets: (n_rows,) the held-out target item of each row.
        popular_topk: (k,) MostPopular's top-k item ids.

    Returns:
        mean over rows of [target in topk row and target not in popular_topk].

    Raises:
        MetricError: on bad shapes or negative ids.
    """
    t = _topk_lists(topk, "serendipity")
    y = np.asarray(targets)
    if y.shape != (t.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise MetricError(
            f"serendipity: targets must be ({t.shape[0]},) integers, got {y.shape} {y.dtype}"
        )
    popular = np.asarray(popular_topk)
    if popular.ndim != 1 or (popular.size and not np.issubdtype(popular.dtype, np.integer)):
        raise MetricError(
            f"serendipity: popular_topk must be a 1-D integer array, got {popular.shape}"
        )
    hit = np.any(t == y[:, None], axis=1)
    unpopular = ~np.isin(y, popular)
    return float(np.mean(hit & unpopular))
