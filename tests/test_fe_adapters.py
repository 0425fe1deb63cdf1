"""Learned adapters, ID fusion and the soft contrastive loss (paper 000 §3.3, LLMEmb)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recbench.core.errors import ConfigError
from recbench.items.adapters.moe import MoEAdapter
from recbench.items.adapters.pq import ProductQuantizer, kmeans
from recbench.items.encoders.contrastive import soft_contrastive_loss
from recbench.items.fusion import AdaptedTable, AdapterSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def test_moe_with_one_expert_and_uniform_gate_equals_its_expert():
    torch.manual_seed(0)
    moe = MoEAdapter(6, 3, n_experts=1, dropout=0.0).eval()
    x = torch.randn(4, 6)
    torch.testing.assert_close(moe(x), moe.experts[0](x))
    # the PW expert is W (x - b), no output bias
    e = moe.experts[0]
    with torch.no_grad():
        e.bias.copy_(torch.randn(6))
    torch.testing.assert_close(e(x), (x - e.bias) @ e.lin.weight.T)


def test_moe_gate_starts_uniform_and_mixes_experts():
    torch.manual_seed(0)
    moe = MoEAdapter(5, 2, n_experts=8, dropout=0.0).eval()
    x = torch.randn(3, 5)
    torch.testing.assert_close(moe.gates(x), torch.full((3, 8), 1 / 8))
    mean = torch.stack([e(x) for e in moe.experts]).mean(0)
    torch.testing.assert_close(moe(x), mean)
    with torch.no_grad():
        moe.w_gate.copy_(torch.randn(5, 8))
    g = torch.softmax(x @ moe.w_gate, -1)
    manual = sum(g[:, k:k + 1] * moe.experts[k](x) for k in range(8))
    torch.testing.assert_close(moe(x), manual)


def _clustered(seed=0, n=400, d=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(16, d)) * 5
    return centres[rng.integers(16, size=n)] + rng.normal(size=(n, d))


def test_pq_reconstruction_error_falls_as_codes_grow():
    x = _clustered()
    errors = [ProductQuantizer(2, k, seed=0).fit(x).reconstruction_error(x)
              for k in (1, 2, 4, 16, 64)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    # one code per sub-space reconstructs by the sub-space mean: the total variance
    assert errors[0] == pytest.approx(((x - x.mean(0)) ** 2).sum(1).mean())


def test_pq_codes_are_fitted_on_training_items_only():
    x = _clustered()
    train = np.arange(300)
    a = ProductQuantizer(2, 8).fit(x[train])
    moved = x.copy()
    moved[300:] += 1000.0  # the non-training items change wildly
    b = ProductQuantizer(2, 8).fit(moved[train])
    for ca, cb in zip(a.centroids, b.centroids, strict=True):
        np.testing.assert_array_equal(ca, cb)
    # and the table built by the fusion layer fits on `known` only
    t1 = AdaptedTable(x, train, 4, AdapterSettings(adapter="pq", pq_codebooks=2, pq_codes=8))
    t2 = AdaptedTable(moved, train, 4, AdapterSettings(adapter="pq", pq_codebooks=2,
                                                       pq_codes=8))
    assert t1.info["pq"]["train_mse"] == t2.info["pq"]["train_mse"]
    assert t1.info["pq"]["fit_items"] == 300


def test_kmeans_matches_sklearn_inertia():
    sklearn = pytest.importorskip("sklearn.cluster")
    x = _clustered(1, n=300, d=4)
    ours = kmeans(x, 16, seed=0)
    from recbench.items.adapters.pq import nearest

    inertia = ((x - ours[nearest(x, ours)]) ** 2).sum()
    ref = sklearn.KMeans(16, n_init=3, random_state=0).fit(x).inertia_
    assert inertia <= ref * 1.05


def test_pq_adapter_is_the_mean_of_code_embeddings():
    x = _clustered(n=50, d=4)
    t = AdaptedTable(x, np.arange(50), 3, AdapterSettings(adapter="pq", pq_codebooks=2,
                                                          pq_codes=4))
    ids = torch.tensor([[0, 1, 2]])
    out = t(ids)
    codes = t.adapter.codes[ids]
    manual = t.adapter.embedding.weight[codes].mean(-2) * torch.tensor([0., 1, 1])[None, :, None]
    torch.testing.assert_close(out, manual)
    assert torch.all(out[0, 0] == 0)


def test_concat_splits_the_width_and_uses_pretrained_ids():
    rng = np.random.default_rng(0)
    v, ids = rng.normal(size=(10, 6)).astype(np.float32), rng.normal(size=(10, 4))
    t = AdaptedTable(v, np.arange(8), 8, AdapterSettings(fusion="concat", dropout=0.0),
                     id_vectors=ids.astype(np.float32))
    assert (t.info["semantic_dim"], t.info["id_dim"]) == (4, 4)
    out = t(torch.tensor([3]))
    np.testing.assert_allclose(out[0, 4:].detach().numpy(), ids[2], rtol=1e-6)
    with pytest.raises(ConfigError):
        AdaptedTable(v, np.arange(8), 8, AdapterSettings(fusion="concat", id_dim=8))


def test_pca_first_reduces_on_training_items():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 12)).astype(np.float32)
    t = AdaptedTable(v, np.arange(20), 4, AdapterSettings(adapter="moe", pca_dim=5))
    assert t.semantic.shape == (31, 5) and t.info["pca"]["fit_items"] == 20


def _hand_soft_contrastive(x, y, tau):
    """The LLMEmb loss written element by element."""
    b = len(x)
    dot = [[sum(p * q for p, q in zip(u, v, strict=True)) for v in rows] for u, rows in
           zip(x, [y] * b, strict=True)]
    xx = [[sum(p * q for p, q in zip(u, v, strict=True)) for v in x] for u in x]
    yy = [[sum(p * q for p, q in zip(u, v, strict=True)) for v in y] for u in y]
    t = []
    for i in range(b):
        z = [tau * (xx[i][j] + yy[i][j]) / 2 for j in range(b)]
        s = sum(math.exp(v) for v in z)
        t.append([math.exp(v) / s for v in z])

    def ce(logits, targets):
        total = 0.0
        for i in range(b):
            lse = math.log(sum(math.exp(v) for v in logits[i]))
            total += -sum(targets[i][j] * (logits[i][j] - lse) for j in range(b))
        return [total]

    logits = [[dot[i][j] / tau for j in range(b)] for i in range(b)]
    lt = [[logits[j][i] for j in range(b)] for i in range(b)]
    tt = [[t[j][i] for j in range(b)] for i in range(b)]
    return (ce(logits, t)[0] + ce(lt, tt)[0]) / 2 / b


@pytest.mark.parametrize("tau", [1.0, 3.0])
def test_soft_contrastive_loss_equals_hand_computation_2x2(tau):
    x = [[1.0, 0.0], [0.5, 2.0]]
    y = [[1.0, 1.0], [-1.0, 0.5]]
    got = soft_contrastive_loss(torch.tensor(x), torch.tensor(y), tau)
    assert float(got) == pytest.approx(_hand_soft_contrastive(x, y, tau), rel=1e-6)


def test_align_loss_is_weighted_contrastive_over_distinct_targets():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(6, 5)).astype(np.float32)
    ids = rng.normal(size=(6, 4)).astype(np.float32)
    s = AdapterSettings(fusion="align", align_weight=0.5, align_tau=2.0, dropout=0.0)
    t = AdaptedTable(v, np.arange(6), 4, s, id_vectors=ids).eval()
    targets = torch.tensor([[0, 2, 2], [3, 0, 1]])
    u = torch.tensor([1, 2, 3])
    want = 0.5 * soft_contrastive_loss(t.semantic_vectors(u), torch.from_numpy(ids)[u - 1], 2.0)
    torch.testing.assert_close(t.aux_loss(targets), want)
    assert AdaptedTable(v, np.arange(6), 4, AdapterSettings()).aux_loss(targets) is None
    with pytest.raises(ConfigError):
        AdaptedTable(v, np.arange(6), 4, AdapterSettings(fusion="align"))
