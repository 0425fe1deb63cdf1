"""Paired significance tests between two models evaluated on the same users (or rows).

Both tests pair the i-th value of `a` with the i-th value of `b`, so the arrays must come from
the same evaluation rows in the same order (e.g. `per_row_metric` of two models' ranks, or the
per-user AUCs of `per_user_auc` over the same users).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recbench.metrics import MetricError

__all__ = ["align_units", "paired_tests", "welch_test"]


def _paired_values(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1:
        raise MetricError(f"paired_tests: a and b must be 1-D, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise MetricError(
            f"paired_tests: a has {x.shape[0]} values but b has {y.shape[0]}; "
            "a paired test needs one value per shared user/row in the same order"
        )
    if x.shape[0] < 2:
        raise MetricError(f"paired_tests: need at least 2 pairs, got {x.shape[0]}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise MetricError("paired_tests: a and b must not contain NaN")
    return x, y


def paired_tests(a: ArrayLike, b: ArrayLike, alpha: float = 0.05) -> dict[str, float | bool]:
    """Paired t-test and Wilcoxon signed-rank test of a - b (two-sided).

    "significant" is decided by the paired t-test alone (t_pvalue < alpha); the Wilcoxon
    p-value is reported beside it as a check that does not assume normal differences.
    Zero differences are dropped by the Wilcoxon test (scipy's default "wilcox" method).
    Degenerate cases are answered without calling scipy: if every difference is 0, both
    p-values are 1.0 and both statistics 0.0; if every difference is the same non-zero
    constant, the t statistic is +-inf with p = 0.0 (the Wilcoxon test still runs).

    Args:
        a: (n,) per-user or per-row metric values of model A.
        b: (n,) the same users'/rows' values of model B, in the same order.
        alpha: significance level of the t-test.

    Returns:
        Keys "n", "mean_a", "mean_b", "mean_diff" (mean of a - b), "t_stat", "t_pvalue",
        "wilcoxon_stat", "wilcoxon_pvalue", "significant".

    Raises:
        MetricError: on different lengths, fewer than 2 pairs, or NaN values.
    """
    from scipy import stats  # scipy.stats takes ~0.3 s to import; only pay for it here

    x, y = _paired_values(a, b)
    diff = x - y
    if not diff.any():
        t_stat, t_p, w_stat, w_p = 0.0, 1.0, 0.0, 1.0
    else:
        if np.all(diff == diff[0]):
            t_stat, t_p = float(np.sign(diff[0]) * np.inf), 0.0
        else:
            t_res = stats.ttest_rel(x, y)
            t_stat, t_p = float(t_res.statistic), float(t_res.pvalue)
        w_res = stats.wilcoxon(x, y)
        w_stat, w_p = float(w_res.statistic), float(w_res.pvalue)
    return {
        "n": int(x.shape[0]),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": float(diff.mean()),
        "t_stat": t_stat,
        "t_pvalue": t_p,
        "wilcoxon_stat": w_stat,
        "wilcoxon_pvalue": w_p,
        "significant": bool(t_p < alpha),
    }


def align_units(ids_a: ArrayLike, a: ArrayLike, ids_b: ArrayLike, b: ArrayLike
                ) -> tuple[np.ndarray, np.ndarray]:
    """The values of the units (users, test rows) both runs scored, in one order, for pairing.

    Args:
        ids_a, a: (n,) unit ids of run A and its per-unit values.
        ids_b, b: (m,) the same for run B.

    Returns:
        (a_common, b_common): values of the ids present in both, sorted by id.
    """
    ia, xa = np.asarray(ids_a), np.asarray(a, dtype=np.float64)
    ib, xb = np.asarray(ids_b), np.asarray(b, dtype=np.float64)
    if ia.shape != xa.shape or ib.shape != xb.shape:
        raise MetricError("align_units: ids and values must have the same length")
    _, pos_a, pos_b = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
    return xa[pos_a], xb[pos_b]


def welch_test(a: ArrayLike, b: ArrayLike, alpha: float = 0.05) -> dict[str, float | bool]:
    """Welch's t-test of two sets of per-seed values (unpaired: seeds are not matched units).

    Used where no per-unit values are stored. Returns "t_stat", "t_pvalue", "significant";
    identical constant sets give p = 1.0, different constant sets p = 0.0.

    Raises:
        MetricError: fewer than 2 values in either set, or NaN.
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or y.ndim != 1 or x.shape[0] < 2 or y.shape[0] < 2:
        raise MetricError("welch_test: need two 1-D sets of at least 2 values each")
    if np.isnan(x).any() or np.isnan(y).any():
        raise MetricError("welch_test: values must not contain NaN")
    if x.std() == 0 and y.std() == 0:
        same = bool(x[0] == y[0])
        return {"t_stat": 0.0 if same else float(np.sign(x[0] - y[0]) * np.inf),
                "t_pvalue": 1.0 if same else 0.0, "significant": not same}
    res = stats.ttest_ind(x, y, equal_var=False)
    return {"t_stat": float(res.statistic), "t_pvalue": float(res.pvalue),
            "significant": bool(res.pvalue < alpha)}
