"""CTR metrics against sklearn and plain per-user loops."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import log_loss, precision_recall_fscore_support, roc_auc_score

from recbench.core.errors import RecbenchError
from recbench.metrics import MetricError
from recbench.metrics.ctr import (
    auc,
    ctr_metrics,
    gauc,
    logloss,
    per_user_auc,
    precision_recall_f1,
)


def _random_ctr(seed: int, n_rows: int = 1500, n_users: int = 80):
    """Rows with coarse (tied) scores and users of varied size, some with one class only."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n_rows) * 7 + 3  # sparse, non-contiguous ids
    labels = rng.random(n_rows) < rng.uniform(0.05, 0.6)
    scores = np.round(rng.random(n_rows) * 0.6 + 0.4 * labels * rng.random(n_rows), 1)
    return users, labels.astype(np.int64), scores


def _loop_per_user(users, labels, scores):
    """Reference: sklearn's AUC user by user."""
    out = {}
    for u in np.unique(users):
        m = users == u
        if 0 < labels[m].sum() < m.sum():
            out[u] = (roc_auc_score(labels[m], scores[m]), int(m.sum()))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_auc_matches_sklearn_with_ties(seed):
    _, labels, scores = _random_ctr(seed)
    assert len(np.unique(scores)) < 20  # the case is tie-heavy
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_per_user_auc_and_gauc_match_loop(seed):
    users, labels, scores = _random_ctr(seed)
    ref = _loop_per_user(users, labels, scores)
    got_users, got_auc, got_rows = per_user_auc(users, labels, scores)
    assert got_users.tolist() == sorted(ref)
    np.testing.assert_allclose(got_auc, [ref[u][0] for u in got_users], atol=1e-12)
    np.testing.assert_array_equal(got_rows, [ref[u][1] for u in got_users])
    assert gauc(users, labels, scores) == pytest.approx(np.mean([a for a, _ in ref.values()]))
    weights = np.array([n for _, n in ref.values()], dtype=float)
    aucs = np.array([a for a, _ in ref.values()])
    expected_weighted = float((aucs * weights).sum() / weights.sum())
    assert gauc(users, labels, scores, weighted=True) == pytest.approx(expected_weighted)


def test_gauc_hand_computed():
    # user "a": positives 0.9, 0.5; negatives 0.5, 0.1, 0.0 -> 6 pairs; 0.9 beats all three,
    #   0.5 ties one (0.5) and beats two -> (3 + 2.5) / 6; 5 rows
    # user "b": its only positive loses to its only negative -> 0.0; 2 rows
    # user "c": positives only -> left out
    users = np.array(["a", "a", "a", "a", "b", "b", "c", "a"])
    labels = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.8, 0.3, 0.0])
    got_users, got_auc, got_rows = per_user_auc(users, labels, scores)
    assert got_users.tolist() == ["a", "b"]
    np.testing.assert_allclose(got_auc, [5.5 / 6, 0.0])
    np.testing.assert_array_equal(got_rows, [5, 2])
    assert gauc(users, labels, scores) == pytest.approx((5.5 / 6 + 0.0) / 2)
    assert gauc(users, labels, scores, weighted=True) == pytest.approx(5 * (5.5 / 6) / 7)


def test_auc_all_tied_is_half():
    assert auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5


def test_auc_errors_are_user_errors():
    with pytest.raises(MetricError, match="only class 1"):
        auc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricError, match="3 rows but scores have 2"):
        auc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(MetricError, match="0 or 1"):
        auc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(MetricError, match="NaN"):
        auc([0, 1], [0.1, np.nan])
    with pytest.raises(MetricError, match="no user"):
        gauc([1, 1, 2], [1, 1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(MetricError, match="user_ids"):
        gauc([1, 1], [1, 0, 0], [0.1, 0.2, 0.3])
    assert issubclass(MetricError, RecbenchError)


@pytest.mark.parametrize("seed", [0, 1])
def test_logloss_and_prf_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 500)
    probs = np.clip(rng.random(500), 0, 1)
    probs[:3] = [0.0, 1.0, 0.5]
    eps = 1e-7
    expected = log_loss(labels, np.clip(probs, eps, 1 - eps))
    assert logloss(labels, probs, eps=eps) == pytest.approx(expected, rel=1e-12)
    p, r, f, _ = precision_recall_fscore_support(
        labels, probs >= 0.5, average="binary", zero_division=0
    )
    assert precision_recall_f1(labels, probs) == pytest.approx(
        {"precision": p, "recall": r, "f1": f}
    )


def test_logloss_rejects_logits_and_prf_zero_division():
    with pytest.raises(MetricError, match="sigmoid"):
        logloss([0, 1], [-2.0, 3.0])
    assert precision_recall_f1([1, 0], [0.1, 0.2]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_ctr_metrics_keys_and_values():
    users, labels, scores = _random_ctr(5)
    out = ctr_metrics(users, labels, scores)
    assert list(out) == [
        "auc", "gauc", "gauc_weighted", "logloss", "precision", "recall", "f1",
        "n_rows", "n_users_gauc",
    ]  # fmt: skip
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["gauc"] == pytest.approx(gauc(users, labels, scores))
    assert out["gauc_weighted"] == pytest.approx(gauc(users, labels, scores, weighted=True))
    assert out["n_rows"] == len(labels)
    assert out["n_users_gauc"] == len(_loop_per_user(users, labels, scores))
