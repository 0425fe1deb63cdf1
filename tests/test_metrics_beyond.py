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


def test_novelty_authors_parity_mode_counts_unseen_items_as_zero_bits():
    # whole-dataset counts (train + test), as paper 002's code: item 3 has no count at all
    counts = np.array([6, 1, 1, 0])  # total 8
    topk = np.array([[0, 1], [3, 0]])
    # slots: -log2(6/8), -log2(1/8) = 3, 0 (item 3 adds nothing), -log2(6/8); mean over 4
    expected = (2 * -math.log2(6 / 8) + 3.0 + 0.0) / 4
    assert novelty(topk, counts, unseen="zero") == pytest.approx(expected)
    assert novelty(topk, counts, unseen="zero") < novelty(topk, counts)  # smooth: 3 bits
    with pytest.raises(MetricError, match="unseen"):
        novelty(topk, counts, unseen="drop")


def test_authors_metrics_on_one_hand_case_with_whole_dataset_counts():
    # train counts [3, 2, 0, 1], test adds item 2 twice: whole-dataset counts [3, 2, 2, 1]
    train, whole = np.array([3, 2, 0, 1]), np.array([3, 2, 2, 1])
    topk = np.array([[2, 3], [1, 0]])
    # ours: item 2 smoothed to 1 of 6 -> log2 6; authors': 2 of 8 -> 2 bits
    ours = (math.log2(6) + math.log2(6) + math.log2(3) + math.log2(2)) / 4
    authors = (2.0 + 3.0 + 2.0 + math.log2(8 / 3)) / 4
    assert novelty(topk, train) == pytest.approx(ours)
    assert novelty(topk, whole, unseen="zero") == pytest.approx(authors)
    # serendipity with the expected (popular) list from each count vector, k = 2
    targets = np.array([2, 0])
    pop_train = np.argsort(-train, kind="stable")[:2]  # [0, 1]
    pop_whole = np.argsort(-whole, kind="stable")[:2]  # [0, 1] (2 ties with 1: the lower id)
    assert serendipity(topk, targets, pop_train) == pytest.approx(1 / 2)  # row 0 only
    assert serendipity(topk, targets, pop_whole) == pytest.approx(1 / 2)
