"""Guided embedding refinement (paper 003): normalisation, the refined table, frozen item
guided vectors, the shuffled control, and the guided backbones end to end (a stand-in scorer
replaces the LLM; the extractor itself is tested in test_attributes_extract)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from recbench.items import IdTable
from recbench.items.attributes import scores as attribute_scores
from recbench.items.attributes.guided import (
    GuidedEncoder,
    RefinedTable,
    normalise,
    shuffle_rows,
    xavier_std,
)
from recbench.models.registry import models_in_group
from recbench.runner import RunRequest, run

pytestmark = pytest.mark.usefixtures("one_thread")


def _raw(n=50, g=12, seed=0):
    return np.random.default_rng(seed).uniform(1, 10, size=(n, g)).astype(np.float32)


def test_xavier_std_is_torch_xavier_normal():
    w = torch.empty(201, 60)
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(w)
    assert xavier_std(201, 60) == pytest.approx((2.0 / (fan_in + fan_out)) ** 0.5)
    torch.manual_seed(0)
    big = torch.nn.init.xavier_normal_(torch.empty(4000, 60))
    assert float(big.std()) == pytest.approx(xavier_std(4000, 60), rel=0.02)


def test_normalised_vectors_have_mean_zero_and_the_xavier_std():
    raw = _raw()
    raw[:, 3] = 7.0  # a constant aspect
    sigma = xavier_std(51, 60)
    out = normalise(raw, sigma)
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-7)
    keep = [j for j in range(12) if j != 3]
    np.testing.assert_allclose(out[:, keep].std(0), sigma, rtol=1e-5)
    assert np.all(out[:, 3] == 0)
    # the same as scipy-free hand z-scores
    col = raw[:, 0].astype(np.float64)
    np.testing.assert_allclose(out[:, 0], (col - col.mean()) / col.std() * sigma, rtol=1e-5)


def _refined(gamma=1.0, norm="xavier", raw=None):
    raw = _raw() if raw is None else raw
    torch.manual_seed(0)
    base = IdTable(raw.shape[0], np.arange(raw.shape[0]), 48)
    return RefinedTable(base, raw, gamma, norm), raw


def test_refined_width_equals_the_base_width_and_layout():
    table, raw = _refined(gamma=2.0)
    assert table.dim == 60  # 48 + 12, the paper's 60-d comparison
    ids = torch.tensor([[0, 1, 5]])
    out = table(ids)
    assert out.shape == (1, 3, 60)
    assert torch.all(out[0, 0] == 0)  # padding
    want = 2.0 * normalise(raw, xavier_std(raw.shape[0] + 1, 60))[4]
    np.testing.assert_allclose(out[0, 2, 48:].detach().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(out[0, 2, :48].detach().numpy(),
                               table.base(torch.tensor([5])).detach().numpy()[0])


def test_frozen_item_guided_vectors_get_exactly_zero_gradient():
    table, _ = _refined()
    guided_before = table.guided.clone()
    params = dict(table.named_parameters())
    assert all("guided" not in name for name in params)  # a buffer, not a parameter
    ids = torch.tensor([1, 2, 3, 9])
    vectors = table(ids)
    vectors.retain_grad()
    loss = (vectors ** 2).sum() + vectors[:, 48:].sum() * 3
    loss.backward()
    assert vectors.grad[:, 48:].abs().sum() > 0  # the loss does depend on the guided part ...
    assert table.base.embedding.weight.grad.abs().sum() > 0  # ... the base part trains ...
    opt = torch.optim.Adam(table.parameters(), lr=0.1)
    opt.step()
    assert torch.equal(table.guided, guided_before)  # ... and the guided part never changes


def test_linear_map_starts_at_the_a5_normalisation_and_trains():
    xavier, raw = _refined()
    linear, _ = _refined(norm="linear", raw=raw)
    ids = torch.arange(1, 51)
    np.testing.assert_allclose(linear.guided_vectors(ids).detach().numpy(),
                               xavier.guided_vectors(ids).numpy(), atol=1e-6)
    assert any(n.startswith("map.") for n, _ in linear.named_parameters())


def test_shuffled_control_changes_only_the_assignment():
    raw = _raw(n=40)
    shuffled, perm = shuffle_rows(raw, seed=3)
    assert not np.array_equal(perm, np.arange(40))
    np.testing.assert_array_equal(shuffled, raw[perm])
    # same values, same normalisation statistics, so the same multiset of guided vectors
    np.testing.assert_allclose(np.sort(shuffled, 0), np.sort(raw, 0))
    sigma = xavier_std(41, 60)
    np.testing.assert_allclose(normalise(shuffled, sigma), normalise(raw, sigma)[perm],
                               atol=1e-6)
    again, perm2 = shuffle_rows(raw, seed=3)
    np.testing.assert_array_equal(perm, perm2)  # seeded


def test_user_part_enters_the_guided_coordinates_only():
    class Inner(torch.nn.Module):
        def sequence(self, tokens):
            return torch.ones(tokens.shape[0], tokens.shape[1], 6)

        def forward(self, history):
            return torch.ones(history.shape[0], 6)

    users = np.array([[0.0, 0.0], [1.0, -2.0]], dtype=np.float32)
    enc = GuidedEncoder(Inner(), users, base_dim=4, gamma=0.5)
    out = enc(torch.zeros(2, 3, dtype=torch.long), user=torch.tensor([1, 0]))
    np.testing.assert_allclose(out.detach().numpy(),
                               [[1, 1, 1, 1, 1.5, 0.0], [1, 1, 1, 1, 1, 1]])
    seq = enc.sequence(torch.zeros(1, 3, dtype=torch.long), user=torch.tensor([1]))
    assert seq.shape == (1, 3, 6) and torch.allclose(seq[0, :, 4], torch.tensor(1.5))
    assert enc.users.weight.requires_grad  # user guided vectors are trainable


def fake_score(self, system, messages, names):
    """A deterministic stand-in for the LLM: scores from a hash of each message."""
    out = np.array([[1 + int(hashlib.sha256(f"{m}|{a}".encode()).hexdigest()[:6], 16) % 1000
                     / 111.0 for a in names] for m in messages], dtype=np.float32)
    return out, np.rint(out).astype(np.int64), {"seconds": 0.0, "prompts": len(messages)}


@pytest.fixture
def stand_in_scorer(monkeypatch):
    calls = []

    def score(self, system, messages, names):
        calls.append((system[:20], len(messages)))
        return fake_score(self, system, messages, names)

    monkeypatch.setattr(attribute_scores.AspectScorer, "score", score)
    monkeypatch.setattr(attribute_scores.AspectScorer, "identity",
                        lambda self: {"backend": "stand-in"})
    return calls


def test_group_guided_registers_base_and_refined_rows():
    names = models_in_group("guided")
    for name in ("SASRec", "BERT4Rec", "GRU4Rec", "GRU4RecPlus", "SASRec-guided",
                 "BERT4Rec-guided", "GRU4Rec-guided", "GRU4RecPlus-guided"):
        assert name in names


@pytest.mark.parametrize("model", ["SASRec-guided", "BERT4Rec-guided", "GRU4Rec-guided",
                                   "GRU4RecPlus-guided"])
def test_guided_backbones_train_and_evaluate(model, tmp_path, stand_in_scorer):
    sets = {"latency_samples": 5, "aspects": "movies", "dim": 16, "guided_dim": 6,
            "gamma": 1.0, "epochs": 2}
    [outcome] = run(RunRequest(group="guided", model=model, datasets=["synthetic"],
                               size="tiny", smoke=True, home=tmp_path, sets=sets))
    rec = outcome.record
    assert rec.model_id.endswith("-guided")
    assert any("guided: refined" in n and "+ 6 frozen guided aspects" in n for n in rec.notes)
    assert any(n.startswith("item aspect scores (movies") for n in rec.notes)
    assert any(n.startswith("user aspect scores (movies") for n in rec.notes)
    assert any("scoring cost on " in n and " tokens per item" in n for n in rec.notes)
    assert 0 <= rec.metrics["full"]["ndcg@10"] <= 1
    assert [c[0] for c in stand_in_scorer] == ["You are a movie crit", "You are a movie reco"]
    # a second run with other model settings reuses both cached score sets
    run(RunRequest(group="guided", model=model, datasets=["synthetic"], size="tiny",
                   smoke=True, home=tmp_path, sets={**sets, "guided_shuffle": True}))
    assert len(stand_in_scorer) == 2


def test_guided_settings_are_checked_before_data_loads(tmp_path):
    from recbench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="guided_dim"):
        run(RunRequest(group="guided", model="SASRec-guided", datasets=["synthetic"],
                       size="tiny", smoke=True, home=tmp_path,
                       sets={"dim": 12, "guided_dim": 12}))


def test_bpr_max_equals_a_numpy_reference():
    from recbench.models.seq.gru4rec import bpr_max

    rng = np.random.default_rng(0)
    pos, neg = rng.normal(size=4), rng.normal(size=(4, 6))
    valid = np.ones((4, 6), bool)
    valid[1, 2] = valid[3, 0] = False  # accidental hits
    want = []
    for i in range(4):
        r = neg[i][valid[i]]
        s = np.exp(r - r.max()) / np.exp(r - r.max()).sum()
        want.append(-np.log((s / (1 + np.exp(-(pos[i] - r)))).sum()) + 1.95 * (s * r ** 2).sum())
    got = bpr_max(torch.tensor(pos), torch.tensor(neg), 1.95, torch.tensor(valid))
    assert float(got) == pytest.approx(np.mean(want), rel=1e-10)


def test_gru4rec_plus_trains_with_bpr_max(tmp_path):
    [outcome] = run(RunRequest(group="guided", model="GRU4RecPlus", datasets=["synthetic"],
                               size="tiny", smoke=True, home=tmp_path,
                               sets={"latency_samples": 5, "epochs": 2, "n_sample": 64}))
    assert any(n.startswith("objective: BPR-max, 64 shared negatives") for n in
               outcome.record.notes)
    assert 0 <= outcome.record.metrics["full"]["ndcg@10"] <= 1


def test_guided_suite_rows_resolve_and_pair_base_with_refined():
    from recbench.core.config import EvalConfig, resolve
    from recbench.models.registry import MODELS, resolve_model
    from recbench.suites import load_suite

    suite = load_suite("guided")
    assert suite.protocol == "loo-v1" and suite.seeds == [0, 1, 2, 3, 4]
    for row in suite.rows:  # every row is a registered model with settings it accepts
        resolved = resolve_model(row.group, row.model)
        resolve({"model": MODELS.load(resolved.name).Config, "eval": EvalConfig},
                dict(row.settings), resolved.implied)
    sections = {}
    for row in suite.rows:
        sections.setdefault(row.section, []).append(row)
    base = {r.model: r for r in sections["base"]}
    for section in ("refined", "control"):  # each Ref./control row has its Base at equal width
        for row in sections[section]:
            backbone = row.model.removesuffix("-guided")
            assert backbone in base and base[backbone].settings["dim"] == row.settings["dim"]
    assert all(r.settings.get("guided_shuffle") for r in sections["control"])
    # the paper's ablation backbones (4.4, App. B): SASRec and GRU4Rec+
    assert {r.model.removesuffix("-guided") for r in sections["dims"] + sections["gamma"]} == \
        {"SASRec", "GRU4RecPlus"}
