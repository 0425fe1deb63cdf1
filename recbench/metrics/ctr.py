"""Point-wise CTR metrics: AUC, GAUC (per-user AUC), log loss, precision/recall/F1.

AUC is computed from tie-aware (average) ranks, the Mann-Whitney form, so a tie between a
positive and a negative counts 0.5, exactly like `sklearn.metrics.roc_auc_score`.

GAUC follows RecBench: the *unweighted* mean of per-user AUC over users that have at least one
positive and one negative row; `weighted=True` gives the impression-weighted variant used by
many CTR papers (each user weighted by its number of rows). Per-user AUC is computed for all
users at once from one sort by (user, score); there is no Python loop over users.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recbench.metrics import MetricError

__all__ = ["auc", "ctr_metrics", "gauc", "logloss", "per_user_auc", "precision_recall_f1"]


def _binary_labels(labels: ArrayLike, where: str) -> np.ndarray:
    """Return `labels` as a 1-D int8 array of 0/1, or raise MetricError."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise MetricError(f"{where}: labels must be 1-D, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int8)
    if not np.issubdtype(y.dtype, np.number):
        raise MetricError(f"{where}: labels must be 0/1 numbers or booleans, got dtype {y.dtype}")
    binary = (y == 0) | (y == 1)
    if not binary.all():
        bad = y[~binary][:5].tolist()
        raise MetricError(f"{where}: labels must be 0 or 1, found e.g. {bad}")
    return y.astype(np.int8)


def _float_scores(scores: ArrayLike, n_rows: int, where: str) -> np.ndarray:
    """Return `scores` as a 1-D float64 array of length `n_rows` without NaN, or raise."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise MetricError(f"{where}: scores must be 1-D, got shape {s.shape}")
    if s.shape[0] != n_rows:
        raise MetricError(f"{where}: labels have {n_rows} rows but scores have {s.shape[0]}")
    if np.isnan(s).any():
        raise MetricError(f"{where}: scores contain {int(np.isnan(s).sum())} NaN value(s)")
    return s


def _grouped_auc(
    groups: np.ndarray, y: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tie-aware AUC of every group from one lexicographic sort.

    Within a group, rows are sorted by score; a block of tied scores starting at 1-based
    position p with c rows gets the average rank p + (c - 1) / 2. With R the sum of the
    positives' ranks, AUC = (R - P (P + 1) / 2) / (P N) (Mann-Whitney U over P N pairs).
    Doubled ranks are integers, so the rank sums are exact in float64 up to 2**53.

    Args:
        groups: (n,) group keys of any sortable dtype.
        y: (n,) 0/1 labels.
        s: (n,) scores without NaN.

    Returns:
        (group keys, AUC (NaN where a group lacks a class), rows, positives), one entry per
        distinct group, in sorted key order.
    """
    n = y.shape[0]
    order = np.lexsort((s, groups))
    g_sorted = groups[order]
    s_sorted = s[order]
    y_sorted = y[order]

    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(g_sorted[1:], g_sorted[:-1], out=new_group[1:])
    group_start = np.flatnonzero(new_group)
    group_id = np.cumsum(new_group) - 1

    new_block = new_group.copy()
    new_block[1:] |= s_sorted[1:] != s_sorted[:-1]
    block_start = np.flatnonzero(new_block)
    block_size = np.diff(np.append(block_start, n))
    # 1-based position of each block's first row inside its group, then the block's doubled
    # average rank 2p + c - 1, broadcast back to the block's rows.
    first_pos = block_start - group_start[group_id[block_start]] + 1
    doubled_rank = np.repeat(2 * first_pos + block_size - 1, block_size)

    n_groups = group_start.shape[0]
    rows = np.diff(np.append(group_start, n))
    pos = np.bincount(group_id, weights=y_sorted, minlength=n_groups)
    doubled_rank_sum = np.bincount(group_id, weights=doubled_rank * y_sorted, minlength=n_groups)
    neg = rows - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        u_stat = doubled_rank_sum / 2.0 - pos * (pos + 1) / 2.0
        aucs = u_stat / (pos * neg)
    return g_sorted[group_start], aucs, rows.astype(np.int64), pos.astype(np.int64)


def auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC; a positive and a negative with equal scores count as half a correct pair.

    Args:
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) real scores (probabilities or logits; only their order matters).

    Returns:
        The AUC, identical to `sklearn.metrics.roc_auc_score(labels, scores)`.

    Raises:
        MetricError: on shape mismatch, non-binary labels, NaN scores, or a single class.
    """
    y = _binary_labels(labels, "auc")
    s = _float_scores(scores, y.shape[0], "auc")
    if y.shape[0] == 0:
        raise MetricError("auc: no rows")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = "0 (no positives)" if n_pos == 0 else "1 (no negatives)"
        raise MetricError(
            f"auc: labels contain only class {only} in {y.shape[0]} rows; AUC is undefined"
        )
    _, aucs, _, _ = _grouped_auc(np.zeros(y.shape[0], dtype=np.int8), y, s)
    return float(aucs[0])


def per_user_auc(
    user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUC of every user that has both a positive and a negative row, without a user loop.

    Args:
        user_ids: (n,) user keys (ints or strings).
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) real scores.

    Returns:
        `(users, aucs, n_rows)`: the users with both classes (sorted), their AUC (float64) and
        their number of rows (int64). Users with a single class are left out.

    Raises:
        MetricError: on shape mismatch, non-binary labels or NaN scores.
    """
    y = _binary_labels(labels, "per_user_auc")
    s = _float_scores(scores, y.shape[0], "per_user_auc")
    users = np.asarray(user_ids)
    if users.shape != y.shape:
        raise MetricError(
            f"per_user_auc: labels have {y.shape[0]} rows but user_ids have shape {users.shape}"
        )
    if y.shape[0] == 0:
        return users[:0], np.empty(0), np.empty(0, dtype=np.int64)
    keys, aucs, rows, pos = _grouped_auc(users, y, s)
    both = (pos > 0) & (pos < rows)
    return keys[both], aucs[both], rows[both]


def gauc(
    user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike, weighted: bool = False
) -> float:
    """Group AUC: mean per-user AUC over users with both a positive and a negative.

    Args:
        user_ids: (n,) user keys.
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) real scores.
        weighted: False (RecBench) averages users equally; True weights each user by its
            number of rows (impressions).

    Returns:
        The GAUC.

    Raises:
        MetricError: on bad input, or when no user has both classes.
    """
    _, aucs, rows = per_user_auc(user_ids, labels, scores)
    return _mean_user_auc(aucs, rows, weighted)


def _mean_user_auc(aucs: np.ndarray, rows: np.ndarray, weighted: bool) -> float:
    if aucs.shape[0] == 0:
        raise MetricError("gauc: no user has both a positive and a negative row; GAUC undefined")
    if weighted:
        return float(np.average(aucs, weights=rows))
    return float(aucs.mean())


def logloss(labels: ArrayLike, scores: ArrayLike, eps: float = 1e-7) -> float:
    """Binary cross-entropy of probabilities, clipped to [eps, 1 - eps].

    Args:
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) predicted click probabilities in [0, 1] (apply a sigmoid to logits first).
        eps: clipping bound that keeps log(0) finite.

    Returns:
        The mean log loss (natural log).

    Raises:
        MetricError: on shape mismatch, no rows, or scores outside [0, 1].
    """
    y = _binary_labels(labels, "logloss")
    p = _float_scores(scores, y.shape[0], "logloss")
    if y.shape[0] == 0:
        raise MetricError("logloss: no rows")
    if p.min() < 0.0 or p.max() > 1.0:
        raise MetricError(
            f"logloss: scores must be probabilities in [0, 1], got range "
            f"[{p.min():.4g}, {p.max():.4g}] (logits? apply a sigmoid first)"
        )
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def precision_recall_f1(
    labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> dict[str, float]:
    """Precision, recall and F1 of the positive class, predicting 1 where score >= threshold.

    A ratio with a zero denominator (no predicted positives, no actual positives) is 0.0, as
    with sklearn's `zero_division=0`.

    Args:
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) scores on the threshold's scale.
        threshold: decision threshold.

    Returns:
        `{"precision": ..., "recall": ..., "f1": ...}`.

    Raises:
        MetricError: on shape mismatch or NaN scores.
    """
    y = _binary_labels(labels, "precision_recall_f1").astype(bool)
    s = _float_scores(scores, y.shape[0], "precision_recall_f1")
    predicted = s >= threshold
    tp = int(np.count_nonzero(predicted & y))
    n_predicted = int(np.count_nonzero(predicted))
    n_actual = int(np.count_nonzero(y))
    precision = tp / n_predicted if n_predicted else 0.0
    recall = tp / n_actual if n_actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def ctr_metrics(user_ids: ArrayLike, labels: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """All CTR metrics of one evaluation split, sharing one per-user AUC pass.

    Args:
        user_ids: (n,) user keys.
        labels: (n,) 0/1 or boolean labels.
        scores: (n,) predicted click probabilities in [0, 1].

    Returns:
        A dict with keys "auc", "gauc", "gauc_weighted", "logloss", "precision", "recall",
        "f1", "n_rows", "n_users_gauc" (the number of users GAUC averages over).

    Raises:
        MetricError: on bad input, a single class, or no user with both classes.
    """
    _, aucs, rows = per_user_auc(user_ids, labels, scores)
    prf = precision_recall_f1(labels, scores)
    return {
        "auc": auc(labels, scores),
        "gauc": _mean_user_auc(aucs, rows, weighted=False),
        "gauc_weighted": _mean_user_auc(aucs, rows, weighted=True),
        "logloss": logloss(labels, scores),
        "precision": prf["precision"],
        "recall": prf["recall"],
        "f1": prf["f1"],
        "n_rows": float(np.asarray(labels).shape[0]),
        "n_users_gauc": float(aucs.shape[0]),
    }
