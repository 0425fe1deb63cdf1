"""Ranking metrics: pessimistic ranks, NDCG/HR/MRR by hand, full-catalogue masking, top-k."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recbench.core.errors import UnknownNameError
from recbench.metrics import MetricError, ranking
from recbench.metrics.ranking import (
    KS,
    full_ranks,
    per_row_metric,
    ranking_metrics,
    ranks_from_scores,
    topk_items,
)


@pytest.fixture
def tiny_chunks(monkeypatch):
    """Force many row chunks so that the chunk loop itself is exercised."""
    monkeypatch.setattr(ranking, "_CHUNK_BYTES", 64)


def _brute_ranks(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    s = np.where(np.isnan(scores), -np.inf, scores)
    out = []
    for row, t in zip(s, target, strict=True):
        out.append(1 + sum(row[j] >= row[t] for j in range(len(row)) if j != t))
    return np.array(out)


def test_ranks_hand_computed_pessimistic_ties():
    scores = np.array(
        [
            [0.5, 0.9, 0.5, 0.1],  # target 0 ties with col 2 and loses to col 1 -> 3
            [0.5, 0.9, 0.5, 0.1],  # target 1 is the clear best -> 1
            [0.5, 0.9, 0.5, 0.1],  # target 3 is the clear worst -> 4
            [1.0, 1.0, 1.0, 1.0],  # constant scorer gets the worst rank, not the best -> 4
            [np.nan, 0.2, 0.3, 0.1],  # NaN counts as -inf: target 1 loses only to 0.3 -> 2
            [np.nan, 0.2, 0.3, 0.1],  # a NaN target ties with everything -> 4
            [-np.inf, np.nan, 0.1, 0.2],  # a -inf target ties with the NaN -> 4
        ]
    )
    target = np.array([0, 1, 3, 2, 1, 0, 0])
    expected = [3, 1, 4, 4, 2, 4, 4]
    np.testing.assert_array_equal(ranks_from_scores(scores, target), expected)
    np.testing.assert_array_equal(_brute_ranks(scores, target), expected)
    assert ranks_from_scores(scores, target).dtype == np.int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ranks_match_brute_force_across_chunks(tiny_chunks, dtype):
    rng = np.random.default_rng(0)
    scores = np.round(rng.random((40, 12)) * 4).astype(dtype)  # many ties
    scores[rng.random(scores.shape) < 0.05] = np.nan
    target = rng.integers(0, 12, 40)
    np.testing.assert_array_equal(ranks_from_scores(scores, target), _brute_ranks(scores, target))


def test_ranking_metrics_hand_computed():
    out = ranking_metrics(np.array([1, 3, 11]), ks=(1, 5, 10))
    assert out["ndcg@1"] == pytest.approx(1 / 3)
    assert out["hr@1"] == pytest.approx(1 / 3)
    assert out["ndcg@5"] == pytest.approx((1 + 0.5) / 3)  # 1/log2(3+1) = 0.5
    assert out["ndcg@10"] == pytest.approx((1 + 0.5) / 3)
    assert out["hr@5"] == pytest.approx(2 / 3)
    assert out["mrr@5"] == pytest.approx((1 + 1 / 3) / 3)
    assert out["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)
    assert out["n_rows"] == 3
    assert set(out) == {f"{m}@{k}" for m in ("ndcg", "hr", "mrr") for k in (1, 5, 10)} | {
        "mrr",
        "n_rows",
    }


def test_ranking_metrics_default_ks_and_per_row():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 40, 200)
    out = ranking_metrics(ranks)
    assert KS == (1, 5, 10, 20)
    for k in KS:
        ndcg = per_row_metric(ranks, f"ndcg@{k}")
        expected = [1 / math.log2(r + 1) if r <= k else 0.0 for r in ranks]
        np.testing.assert_allclose(ndcg, expected)
        assert out[f"ndcg@{k}"] == pytest.approx(ndcg.mean())
        assert out[f"hr@{k}"] == pytest.approx(per_row_metric(ranks, f"hr@{k}").mean())
        assert out[f"mrr@{k}"] == pytest.approx(per_row_metric(ranks, f"mrr@{k}").mean())
    np.testing.assert_allclose(per_row_metric(ranks, "mrr"), 1 / ranks)


def test_ranking_errors():
    with pytest.raises(UnknownNameError, match="ndcg@10"):
        per_row_metric(np.array([1, 2]), "ndgc@10")
    with pytest.raises(MetricError, match="1-based"):
        ranking_metrics(np.array([0, 2]))
    with pytest.raises(MetricError, match="positive integer"):
        ranking_metrics(np.array([1, 2]), ks=(0,))
    with pytest.raises(MetricError, match="non-empty"):
        ranking_metrics(np.array([], dtype=np.int64))
    with pytest.raises(MetricError, match=r"target_col must lie in \[0, 3\)"):
        ranks_from_scores(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(MetricError, match="2-D"):
        ranks_from_scores(np.zeros(3), np.array([0]))


def test_full_ranks_with_exclusion_hand_computed():
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6],  # target 3; item 0 masked, target 3 listed but kept -> 3
            [0.1, 0.1, 0.5, 0.2],  # target 1; item 2 masked (listed twice) -> ties 0 -> 3
            [0.3, 0.9, 0.9, 0.2],  # target 0; nothing masked -> 3
        ]
    )
    before = scores.copy()
    targets = np.array([3, 1, 0])
    assert full_ranks(scores, targets).tolist() == [4, 4, 3]
    as_lists = [np.array([0, 3]), np.array([2, 2]), np.array([], dtype=np.int64)]
    padded = np.array([[0, 3], [2, 2], [-1, -1]])
    assert full_ranks(scores, targets, exclude=as_lists).tolist() == [3, 3, 3]
    assert full_ranks(scores, targets, exclude=padded).tolist() == [3, 3, 3]
    np.testing.assert_array_equal(scores, before)  # the caller's scores are not modified


def test_full_ranks_exclusion_matches_masked_copy(tiny_chunks):
    rng = np.random.default_rng(2)
    n_rows, n_items = 30, 25
    scores = np.round(rng.random((n_rows, n_items)) * 5).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = np.nan
    scores[0, :] = -np.inf  # a row where everything, masked items too, ties at -inf
    targets = rng.integers(0, n_items, n_rows)
    history = rng.integers(-1, n_items, (n_rows, 6))
    history[:, 0] = targets  # the target is listed in every history; it must stay
    masked = scores.copy()
    for row, items in enumerate(history):
        items = items[(items >= 0) & (items != targets[row])]
        masked[row, items] = -np.inf
    expected = _brute_ranks(masked, targets)
    np.testing.assert_array_equal(full_ranks(scores, targets, exclude=history), expected)
    np.testing.assert_array_equal(
        full_ranks(scores, targets, exclude=[h[h >= 0] for h in history]), expected
    )


def test_full_ranks_errors():
    scores = np.zeros((2, 4))
    with pytest.raises(MetricError, match="exclude ids"):
        full_ranks(scores, np.array([0, 1]), exclude=np.array([[5], [1]]))
    with pytest.raises(MetricError, match="exclude has 1 rows"):
        full_ranks(scores, np.array([0, 1]), exclude=[np.array([1])])
    with pytest.raises(MetricError, match="targets must have shape"):
        full_ranks(scores, np.array([0, 1, 2]))


@pytest.mark.parametrize("k", [1, 3, 10, 16])
def test_topk_items_matches_stable_argsort(tiny_chunks, k):
    rng = np.random.default_rng(k)
    scores = np.round(rng.random((50, 16)) * 3)  # heavy ties straddle the cut
    scores[rng.random(scores.shape) < 0.05] = np.nan
    reference = np.argsort(-np.where(np.isnan(scores), -np.inf, scores), axis=1, kind="stable")
    got = topk_items(scores, k)
    assert got.shape == (50, k) and got.dtype == np.int64
    np.testing.assert_array_equal(got, reference[:, :k])


def test_topk_items_hand_computed_and_errors():
    scores = np.array([[0.2, 0.9, 0.2, 0.2, 0.1]], dtype=np.float32)
    assert topk_items(scores, 3).tolist() == [[1, 0, 2]]
    with pytest.raises(MetricError, match="k must be"):
        topk_items(scores, 6)


def test_valid_ndcg10_hand_computed():
    from recbench.metrics import valid_ndcg10

    scores = np.array([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    # row 0: target 2 ranks second -> 1 / log2(3); row 1: target 0 ranks first -> 1
    assert valid_ndcg10(scores, [2, 0]) == pytest.approx((1 / np.log2(3) + 1) / 2)
