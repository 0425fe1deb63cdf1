"""Beyond-accuracy metrics on tiny hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recbench.metrics import MetricError
from recbench.metrics.beyond import catalog_coverage, novelty, serendipity


def test_catalog_coverage():
    topk = np.array([[0, 1], [1, 2], [2, 0]])
    assert catalog_coverage(topk, n_items=10) == pytest.approx(0.3)
    assert catalog_coverage(np.array([[4]]), n_items=5) == pytest.approx(0.2)
    with pytest.raises(MetricError, match=r"\[0, 2\)"):
        catalog_coverage(topk, n_items=2)


def test_novelty_with_unseen_item_smoothed_to_one():
    counts = np.array([6, 1, 1, 0])  # total 8; item 3 never seen -> count 1
    topk = np.array([[0, 1], [3, 0]])
    # -log2(6/8), -log2(1/8), -log2(1/8), -log2(6/8)
    expected = (2 * -math.log2(6 / 8) + 2 * 3.0) / 4
    assert novelty(topk, counts) == pytest.approx(expected)
    with pytest.raises(MetricError, match="sum to 0"):
        novelty(topk, np.zeros(4))
    with pytest.raises(MetricError, match=r"\[0, 4\)"):
        novelty(np.array([[4]]), counts)


def test_serendipity_counts_only_unpopular_hits():
    topk = np.array([[5, 1], [2, 7], [3, 4], [9, 8]])
    targets = np.array([5, 7, 0, 8])
    popular = np.array([5, 6])
    # row 0 hits 5 but 5 is popular; row 1 hits 7 (not popular); row 2 misses; row 3 hits 8
    assert serendipity(topk, targets, popular) == pytest.approx(2 / 4)
    assert serendipity(topk, targets, np.array([], dtype=np.int64)) == pytest.approx(3 / 4)
    with pytest.raises(MetricError, match="targets"):
        serendipity(topk, targets[:3], popular)
