"""Paired significance tests against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recbench.metrics import MetricError
from recbench.metrics.significance import paired_tests

KEYS = {
    "n", "mean_a", "mean_b", "mean_diff", "t_stat", "t_pvalue",
    "wilcoxon_stat", "wilcoxon_pvalue", "significant",
}  # fmt: skip


def test_matches_scipy_on_known_case():
    rng = np.random.default_rng(0)
    b = rng.random(200)
    a = b + 0.05 + rng.normal(0, 0.1, 200)
    out = paired_tests(a, b)
    assert set(out) == KEYS
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    assert out["n"] == 200
    assert out["mean_a"] == pytest.approx(a.mean())
    assert out["mean_b"] == pytest.approx(b.mean())
    assert out["mean_diff"] == pytest.approx((a - b).mean())
    assert out["t_stat"] == pytest.approx(t.statistic)
    assert out["t_pvalue"] == pytest.approx(t.pvalue)
    assert out["wilcoxon_stat"] == pytest.approx(w.statistic)
    assert out["wilcoxon_pvalue"] == pytest.approx(w.pvalue)
    assert out["t_pvalue"] < 1e-6 and out["significant"] is True


def test_small_hand_checked_case():
    # differences 1, 2, 3, 4, -1: t = mean / (sd / sqrt(n)) with mean 1.8, sd ~1.9235
    a = np.array([2.0, 4.0, 6.0, 8.0, 0.0])
    b = np.array([1.0, 2.0, 3.0, 4.0, 1.0])
    out = paired_tests(a, b)
    d = a - b
    assert out["t_stat"] == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(5)))
    assert out["significant"] is (out["t_pvalue"] < 0.05)


def test_identical_inputs_are_not_significant():
    a = np.array([0.1, 0.5, 0.5, 0.9])
    out = paired_tests(a, a.copy())
    assert out["t_pvalue"] == 1.0 and out["wilcoxon_pvalue"] == 1.0
    assert out["mean_diff"] == 0.0 and out["significant"] is False


def test_constant_nonzero_difference():
    a = np.arange(10.0)
    out = paired_tests(a + 1.0, a)
    assert out["t_stat"] == np.inf and out["t_pvalue"] == 0.0 and out["significant"] is True
    assert out["wilcoxon_pvalue"] == pytest.approx(stats.wilcoxon(a + 1.0, a).pvalue)


def test_errors():
    with pytest.raises(MetricError, match="3 values but b has 2"):
        paired_tests([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(MetricError, match="at least 2"):
        paired_tests([1.0], [2.0])
    with pytest.raises(MetricError, match="NaN"):
        paired_tests([1.0, np.nan], [2.0, 3.0])


def test_align_units_pairs_by_id():
    from recbench.metrics.significance import align_units

    a, b = align_units([3, 1, 2], [0.3, 0.1, 0.2], [2, 3, 4], [20.0, 30.0, 40.0])
    assert a.tolist() == [0.2, 0.3] and b.tolist() == [20.0, 30.0]


def test_welch_test_matches_scipy():
    from recbench.metrics.significance import welch_test

    a, b = np.array([0.61, 0.63, 0.62]), np.array([0.55, 0.58, 0.54, 0.56])
    ref = stats.ttest_ind(a, b, equal_var=False)
    out = welch_test(a, b)
    assert out["t_pvalue"] == pytest.approx(ref.pvalue) and out["significant"] is True
    assert welch_test([0.5, 0.5], [0.5, 0.5])["t_pvalue"] == 1.0
    with pytest.raises(MetricError):
        welch_test([0.5], [0.4, 0.6])


def test_t_interval_matches_scipy():
    from recbench.metrics.intervals import t_interval

    values = np.array([0.2101, 0.2240, 0.2178, 0.2049])
    ref = stats.t.interval(0.95, df=3, loc=values.mean(), scale=stats.sem(values))
    assert t_interval(values) == pytest.approx(ref)
    assert t_interval([0.3, 0.3, 0.3]) == (0.3, 0.3)
    with pytest.raises(MetricError, match="at least 2"):
        t_interval([0.3])


def test_bootstrap_is_seeded_and_covers_the_mean():
    from recbench.metrics.intervals import bootstrap_means, percentile_interval

    x = np.random.default_rng(1).random(500)
    reps = bootstrap_means(x, n_boot=2000, seed=3)
    assert np.array_equal(reps, bootstrap_means(x, n_boot=2000, seed=3))
    low, high = percentile_interval(reps)
    assert low < x.mean() < high
    # the normal-theory interval of a mean of 500 uniforms is close to the bootstrap's
    half = 1.96 * x.std(ddof=1) / np.sqrt(500)
    assert high - low == pytest.approx(2 * half, rel=0.1)
