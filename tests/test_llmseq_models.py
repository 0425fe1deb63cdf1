"""LLMSeqSim and the popularity hybrids against brute force and hand cases (paper 002 §3, §6)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recbench.core.errors import ConfigError
from recbench.models.base import RunContext, TaskData
from recbench.models.knn.llmseqsim import EXCLUDED, LLMSeqSim, item_classes
from recbench.models.knn.similarity import top_k

pytestmark = pytest.mark.usefixtures("one_thread")
SCHEMA = {"user_id": pl.Int32, "history": pl.List(pl.Int32), "target": pl.Int32}


def brute_force(queries, items, similarity):
    if similarity == "cosine":
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        x = items / np.linalg.norm(items, axis=1, keepdims=True)
        return q @ x.T
    if similarity == "dot":
        return queries @ items.T
    d = np.sqrt(((queries[:, None, :] - items[None, :, :]) ** 2).sum(-1))
    return 1.0 / (1.0 + d)


@pytest.mark.parametrize("similarity", ["cosine", "dot", "euclidean"])
def test_top_k_equals_brute_force_argsort(similarity):
    rng = np.random.default_rng(0)
    items = rng.normal(size=(500, 24)).astype(np.float32)
    items[7] = items[3]  # exact ties: the smaller id first, as a stable argsort
    queries = rng.normal(size=(37, 24)).astype(np.float32)
    queries[5] = items[3]
    exclude = [rng.choice(500, size=r % 4, replace=False) for r in range(37)]
    ids, vals = top_k(queries, items, 20, similarity, exclude=exclude, block_bytes=4 * 500 * 8)
    ref = brute_force(queries.astype(np.float64), items.astype(np.float64), similarity)
    for r, ex in enumerate(exclude):
        ref[r, ex] = -np.inf
    # float32 vs float64 can reorder near-equal scores: compare where the gap is visible
    want = np.argsort(-ref, axis=1, kind="stable")[:, :20]
    np.testing.assert_allclose(vals, np.take_along_axis(ref, ids, 1), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ids, want)
    assert ids[5, 0] == 3 and ids[5, 1] == 7 or 3 in exclude[5] or 7 in exclude[5]
    for r, ex in enumerate(exclude):
        assert not set(ids[r]) & set(ex.tolist())


def test_top_k_ties_at_the_cut_go_to_the_smaller_ids():
    items = np.ones((10, 3), dtype=np.float32)  # every item ties
    ids, _ = top_k(np.ones((2, 3), dtype=np.float32), items, 4, "dot", exclude=[[0], []])
    np.testing.assert_array_equal(ids, [[1, 2, 3, 4], [0, 1, 2, 3]])
    with pytest.raises(ConfigError, match="k=11"):
        top_k(np.ones((1, 3)), items, 11)


@pytest.mark.parametrize("block", ["chunked", "whole"])
@pytest.mark.parametrize("m", [300, 1001])
def test_top_k_with_many_ties_and_exclusions_matches_a_stable_argsort(m, block):
    rng = np.random.default_rng(m)
    items = rng.integers(-2, 3, size=(m, 4)).astype(np.float32)  # coarse: scores tie often
    queries = rng.integers(-2, 3, size=(50, 4)).astype(np.float32)
    exclude = [rng.choice(m, size=r % 30, replace=False) for r in range(50)]
    # chunked: 20-item catalogue chunks, merged; whole: one chunk, the group-maxima selection
    block_bytes = 4 * m * 7 if block == "chunked" else 2 ** 26
    ids, vals = top_k(queries, items, 20, "dot", exclude=exclude, block_bytes=block_bytes)
    ref = queries.astype(np.float64) @ items.T.astype(np.float64)
    for r, ex in enumerate(exclude):
        ref[r, ex] = -np.inf
    np.testing.assert_array_equal(ids, np.argsort(-ref, axis=1, kind="stable")[:, :20])
    np.testing.assert_array_equal(vals, np.take_along_axis(ref, ids, 1))


def _data(sessions, n_items, test_sessions=(), items_extra=None) -> TaskData:
    def frame(ss):
        return pl.DataFrame({"user_id": list(range(len(ss))), "history": [s[:-1] for s in ss],
                             "target": [s[-1] for s in ss]}, schema=SCHEMA)
    items = pl.DataFrame({"item_id": list(range(n_items)),
                          "text": [f"item {i}" for i in range(n_items)], **(items_extra or {})})
    train = frame(sessions)
    return TaskData("hand", "seq", items, train, train.head(0), frame(list(test_sessions)))


def _rows(histories):
    return pl.DataFrame({"user_id": list(range(len(histories))), "history": histories},
                        schema={"user_id": pl.Int32, "history": pl.List(pl.Int32)})


@pytest.fixture
def fixed_vectors(monkeypatch):
    """LLMSeqSim's item vectors without an encoder: a fixed random table per catalogue size."""
    def raw(self, data):
        rng = np.random.default_rng(data.n_items)
        return rng.normal(size=(data.n_items, 12)).astype(np.float32), {"source": "fixture"}

    monkeypatch.setattr(LLMSeqSim, "_raw_vectors", raw)


def test_llmseqsim_scores_are_the_session_cosine_and_exclude_prompt_items(fixed_vectors):
    sessions = [[i % 40, (i * 7) % 40, (i * 3 + 1) % 40] for i in range(30)]
    data = _data(sessions, 40)
    model = LLMSeqSim(LLMSeqSim.Config(reduction="none", decay="harmonic"), RunContext(seed=0))
    model.fit(data)
    vectors = np.random.default_rng(40).normal(size=(40, 12))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)  # normalize=True
    histories = [[1, 2, 3], [5], [9, 9, 4]]
    scores = model.score_items(_rows(histories))
    for r, h in enumerate(histories):
        w = 1.0 / np.arange(len(h), 0, -1)  # harmonic, i = 1 the last item
        e = w @ vectors[h] / w.sum()
        want = vectors @ e / np.linalg.norm(e)
        want[h] = EXCLUDED
        np.testing.assert_allclose(scores[r], want, rtol=1e-4, atol=1e-5)
    ids, _ = model.recommend(_rows(histories), 10)
    np.testing.assert_array_equal(ids, np.argsort(-scores, axis=1, kind="stable")[:, :10])


def test_llmseqsim_pca_is_fitted_on_training_items_unless_told(fixed_vectors):
    data = _data([[0, 1, 2], [2, 3, 4], [4, 5, 0]], 30)  # only items 0-5 are trained on
    train = LLMSeqSim(LLMSeqSim.Config(reduction="pca", dim=4), RunContext(seed=0))
    train.fit(data)
    whole = LLMSeqSim(LLMSeqSim.Config(reduction="pca", dim=4, fit_on="catalogue"),
                      RunContext(seed=0))
    whole.fit(data)
    assert train.reduction_info["fit_items"] == 6 and whole.reduction_info["fit_items"] == 30
    assert not np.allclose(train.vectors, whole.vectors)
    assert any("normalised" in n for n in train.notes())


def test_lda_classes_are_sorted_genres_joined_and_missing_is_none():
    items = pl.DataFrame({"item_id": [0, 1, 2, 3],
                          "genres": ["RPG|Action", "Action|RPG", None, "Indie"]})
    np.testing.assert_array_equal(item_classes(items, "genres"),
                                  np.array(["Action_RPG", "Action_RPG", None, "Indie"],
                                           dtype=object))
    with pytest.raises(ConfigError, match="no column 'category'"):
        item_classes(items, "category")


# --- hybrids ---------------------------------------------------------------------------------

def _hybrid(name, data, **settings):
    from recbench.models.registry import MODELS

    cls = MODELS.load(name)
    model = cls(cls.Config(reduction="none", **settings), RunContext(seed=0))
    model.fit(data)
    return model


def test_popularity_is_the_share_of_sessions_and_the_parity_switch_adds_test():
    from recbench.models.hybrid.popularity import item_popularity, popularity_cutoff

    data = _data([[0, 1, 1], [0, 2], [0, 3], [4, 0]], 6, test_sessions=[[5, 4], [4, 5]])
    np.testing.assert_allclose(item_popularity(data), [1, 1 / 4, 1 / 4, 1 / 4, 1 / 4, 0])
    np.testing.assert_allclose(item_popularity(data, "dataset"),
                               [4 / 6, 1 / 6, 1 / 6, 1 / 6, 3 / 6, 2 / 6])
    # quantiles over the items that occur (p > 0): [1/4, 1/4, 1/4, 1/4, 1]
    assert popularity_cutoff(item_popularity(data), 0.5) == pytest.approx(0.25)
    assert popularity_cutoff(item_popularity(data), 1.0) == pytest.approx(1.0)


def test_sequential_hybrid_routes_every_row_by_its_last_items_popularity(fixed_vectors):
    # item 0 is in every session (p = 1); items 1-9 in one each (p = 1/9)
    sessions = [[i, 0, i] if i % 2 else [0, i] for i in range(1, 10)]
    data = _data(sessions, 12)
    model = _hybrid("LLMSeqSim-Sequential", data, sequential="MostPopular", quantile=0.5)
    assert model.cutoff == pytest.approx(1 / 9)  # median of nine 1/9's and one 1
    histories = [[3, 0], [5, 0, 4], [2], [0, 11], [], [7, 0]]
    # last item popular enough (p >= cut-off): 0, 4, 2, 0 -> MostPopular; 11 (unseen) and
    # the empty prompt -> LLMSeqSim
    np.testing.assert_array_equal(model.use_sequential(_rows(histories)),
                                  [True, True, True, False, False, True])
    scores = model.score_items(_rows(histories))
    sequential = model.seq.score_items(_rows(histories)).astype(np.float32)
    similarity = model.sim.score_items(_rows(histories))
    for r, seq in enumerate([True, True, True, False, False, True]):
        np.testing.assert_array_equal(scores[r], (sequential if seq else similarity)[r])
    assert model.routed == {"sequential": 4, "llmseqsim": 2}
    high = _hybrid("LLMSeqSim-Sequential", data, sequential="MostPopular", quantile=1.0)
    # cut-off 1: only prompts ending in item 0 (p = 1) still go to the sequential model
    np.testing.assert_array_equal(high.use_sequential(_rows(histories)),
                                  [True, False, False, False, False, True])
    with pytest.raises(ConfigError, match="registered sequential"):
        _hybrid("LLMSeqSim-Sequential", data, sequential="DCNv2")


def test_popularity_hybrid_drops_unpopular_items_in_rank_order(fixed_vectors):
    sessions = [[0, 1], [0, 2], [0, 3], [1, 2], [4, 5], [6, 7], [8, 9]]
    data = _data(sessions, 10)
    model = _hybrid("LLMSeqSim-Popularity", data, quantile=0.5, candidates=6, keep=3)
    p = model.popularity  # 0: 3/7, 1, 2: 2/7, 3-9: 1/7
    assert model.cutoff == pytest.approx(1 / 7)
    model.cutoff = 2 / 7  # items 3-9 are now below it
    # delete below-cut-off items in rank order while the list is longer than keep
    assert model.filtered(np.array([5, 0, 6, 1, 7, 2])) == [0, 1, 2]
    assert model.filtered(np.array([5, 6, 7, 8, 0, 9])) == [8, 0, 9]  # 5, 6, 7 deleted
    assert p[8] < model.cutoff  # kept all the same: the list may not shrink below keep
    rows = _rows([[4], [1, 9]])
    scores = model.score_items(rows)
    ids, _ = model.sim.recommend(rows, 6)
    top = np.argsort(-scores, axis=1, kind="stable")
    for r in range(2):
        kept = model.filtered(ids[r])
        assert top[r, :3].tolist() == kept
        # below the kept list: every other item in LLMSeqSim's order
        sim = model.sim.score_items(rows[r])[0]
        rest = [i for i in np.argsort(-sim, kind="stable") if i not in kept]
        assert top[r, 3:].tolist() == rest


def test_llmseqsim_runs_from_the_registry(fixed_vectors, tmp_path):
    from recbench.runner import RunRequest, run

    [out] = run(RunRequest(group="llm-seq", model="LLMSeqSim", datasets=["synthetic"],
                           size="tiny", smoke=True, home=tmp_path,
                           sets={"latency_samples": 3, "reduction": "pca", "dim": 8,
                                 "pooling": "mean", "decay": "harmonic"}))
    full = out.record.metrics["full"]
    assert 0.0 <= full["ndcg@20"] <= 1.0 and "coverage@20" in full
    assert any("LLMSeqSim" in n for n in out.record.notes)


def test_the_llm_seq_suite_rows_resolve_to_valid_configs():
    from recbench.models.registry import MODELS, models_in_group
    from recbench.suites import load_suite

    suite = load_suite("llm-seq")
    assert suite.protocol == "temporal-v1"
    for row in suite.rows:
        assert row.model in models_in_group(row.group), row.name
        MODELS.load(row.model).Config(**row.settings)  # a typo fails here, not mid-suite
    metrics = {t.metric for t in suite.tables}
    assert {"ndcg@20", "coverage@20", "serendipity@20", "novelty@20"} <= metrics
