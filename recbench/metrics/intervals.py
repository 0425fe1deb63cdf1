"""95% confidence intervals for a leaderboard cell: over seeds, or over test users by bootstrap.

- `t_interval`: Student-t interval of the mean of per-seed values (>= 2 seeds): the spread a
  rerun with a fresh seed would show.
- `bootstrap_means` / `percentile_interval`: a cell with one seed resamples its test users.
  The resampling indices depend only on (number of users, seed), so two rows scored on the same
  users in the same order are resampled *paired*: the same users in every replicate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from recbench.metrics import MetricError

__all__ = ["N_BOOTSTRAP", "bootstrap_means", "percentile_interval", "t_interval"]

N_BOOTSTRAP = 1000
_CHUNK_CELLS = 4_000_000  # resample indices drawn per chunk (bounded memory on large test sets)


def t_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean of `values` (one value per seed).

    Args:
        values: (n,) per-seed metric values, n >= 2.
        confidence: coverage, e.g. 0.95.

    Returns:
        (low, high); (mean, mean) when every value is the same.

    Raises:
        MetricError: fewer than 2 values, NaN, or a confidence outside (0, 1).
    """
    from scipy import stats  # ~0.3 s to import: only when an interval is asked for

    x = _finite_1d(values, "t_interval")
    if x.shape[0] < 2:
        raise MetricError(f"t_interval: need at least 2 values (seeds), got {x.shape[0]}")
    _check_confidence(confidence)
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0.0:
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, df=x.shape[0] - 1) * sd / np.sqrt(x.shape[0]))
    return mean - half, mean + half


def bootstrap_means(values: ArrayLike, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """Means of `n_boot` resamples (with replacement) of `values`, e.g. per-user metric values.

    The i-th replicate draws the same positions for every array of the same length and seed,
    which makes the bootstrap paired across rows scored on the same users.

    Returns:
        (n_boot,) float64 replicate means.

    Raises:
        MetricError: empty input, NaN, or n_boot < 1.
    """
    x = _finite_1d(values, "bootstrap_means")
    if x.shape[0] == 0:
        raise MetricError("bootstrap_means: no values to resample")
    if n_boot < 1:
        raise MetricError(f"bootstrap_means: n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    chunk = max(1, _CHUNK_CELLS // n)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = x[idx].mean(axis=1)
    return out


def percentile_interval(replicates: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` range of bootstrap replicates (the percentile interval)."""
    r = _finite_1d(replicates, "percentile_interval")
    if r.shape[0] == 0:
        raise MetricError("percentile_interval: no replicates")
    _check_confidence(confidence)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(r, [tail, 100 - tail])
    return float(low), float(high)


def _finite_1d(values: ArrayLike, who: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise MetricError(f"{who}: expected a 1-D array, got shape {x.shape}")
    if np.isnan(x).any():
        raise MetricError(f"{who}: values must not contain NaN")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise MetricError(f"confidence must lie in (0, 1), got {confidence}")
