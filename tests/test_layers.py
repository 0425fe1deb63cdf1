"""Shared CTR layers against hand computations on fixed small tensors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recbench.models.layers.attention import InteractingLayer  # noqa: E402
from recbench.models.layers.cross import CrossNet, CrossNetV2, GatedCrossNet  # noqa: E402
from recbench.models.layers.mask import MaskBlock  # noqa: E402
from recbench.models.layers.mlp import MLP, fold_for_inference  # noqa: E402
from recbench.models.layers.product import FMInteraction, InnerProduct, OuterProduct  # noqa: E402
from recbench.models.layers.two_stream import BilinearFusion, TwoStreamMLP  # noqa: E402

X0 = torch.tensor([[1.0, 2.0]])


def test_crossnet_one_layer_by_hand():
    net = CrossNet(2, 1)
    with torch.no_grad():
        net.w.copy_(torch.tensor([[0.5, -1.0]]))
        net.b.copy_(torch.tensor([[0.1, 0.2]]))
    # x1 = x0 (x0 . w) + b + x0 = [1, 2] * (0.5 - 2) + [0.1, 0.2] + [1, 2]
    assert torch.allclose(net(X0), torch.tensor([[-0.4, -0.8]]))


def test_crossnet_two_layers_by_hand():
    net = CrossNet(2, 2)
    with torch.no_grad():
        net.w.copy_(torch.tensor([[0.5, -1.0], [1.0, 1.0]]))
        net.b.zero_()
    # x1 = [-0.5, -1]; x2 = x0 (x1 . [1, 1]) + x1 = [1, 2] * -1.5 + [-0.5, -1]
    assert torch.allclose(net(X0), torch.tensor([[-2.0, -4.0]]))


def test_crossnet_v2_one_layer_by_hand():
    net = CrossNetV2(2, 1)
    with torch.no_grad():
        net.linears[0].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 1.0]]))
        net.linears[0].bias.copy_(torch.tensor([0.0, 1.0]))
    # W x0 + b = [1, 5]; x0 ⊙ [1, 5] + x0 = [1, 10] + [1, 2]
    assert torch.allclose(net(X0), torch.tensor([[2.0, 12.0]]))


def test_crossnet_v2_low_rank_mixture_matches_the_formula():
    torch.manual_seed(0)
    net = CrossNetV2(4, 1, low_rank=2, n_experts=3)
    x0 = torch.randn(5, 4)
    gate = torch.softmax(net.gates[0](x0), -1)  # (B, K)
    expected = x0.clone()
    for k in range(3):
        v, c, u = net.v[0, k], net.c[0, k], net.u[0, k]
        expert = x0 * ((u @ torch.tanh(c @ torch.tanh(v.T @ x0.T))).T + net.b[0])
        expected = expected + gate[:, k:k + 1] * expert
    assert torch.allclose(net(x0), expected, atol=1e-6)


def test_gated_cross_one_layer_by_hand():
    net = GatedCrossNet(2, 1)
    with torch.no_grad():
        net.cross[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        net.cross[0].bias.copy_(torch.tensor([1.0, 0.0]))
        net.gate[0].weight.zero_()  # σ(0) = 0.5
    # x0 ⊙ (I x0 + [1, 0]) ⊙ 0.5 + x0 = [1, 2] ⊙ [2, 2] ⊙ 0.5 + [1, 2]
    assert torch.allclose(net(X0), torch.tensor([[2.0, 4.0]]))


def test_fm_term_equals_the_pairwise_sum():
    torch.manual_seed(0)
    fields = torch.randn(3, 4, 5)
    brute = sum((fields[:, i] * fields[:, j]).sum(-1, keepdim=True)
                for i in range(4) for j in range(i + 1, 4))
    assert torch.allclose(FMInteraction()(fields), brute, atol=1e-5)


def test_pnn_inner_product_pairs():
    torch.manual_seed(0)
    fields = torch.randn(2, 3, 4)
    out = InnerProduct(3)(fields)
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = torch.stack([(fields[:, i] * fields[:, j]).sum(-1) for i, j in pairs], dim=1)
    assert out.shape == (2, 3)
    assert torch.allclose(out, expected, atol=1e-6)
    u, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, -1.0]])
    assert torch.allclose(InnerProduct(2)(torch.stack((u, t), 1)), torch.tensor([[1.0]]))


def test_pnn_outer_product_is_a_bilinear_form_of_the_field_sum():
    torch.manual_seed(0)
    fields = torch.randn(2, 3, 4)
    layer = OuterProduct(4, units=5)
    f_sum = fields.sum(1)
    expected = torch.stack([(f_sum @ layer.weight[n] * f_sum).sum(-1) for n in range(5)], 1)
    assert torch.allclose(layer(fields), expected, atol=1e-5)


def test_autoint_shape_and_residual():
    torch.manual_seed(0)
    fields = torch.randn(4, 2, 8)
    layer = InteractingLayer(8, attention_dim=6, heads=2)
    assert layer(fields).shape == (4, 2, 6)
    with torch.no_grad():
        layer.qkv.weight.zero_()  # V = 0, so the attention output is 0
    assert torch.allclose(layer(fields), torch.relu(layer.res(fields)))
    plain = InteractingLayer(8, attention_dim=6, heads=2, residual=False)
    with torch.no_grad():
        plain.qkv.weight.zero_()
    assert torch.equal(plain(fields), torch.zeros(4, 2, 6))


def test_autoint_attention_matches_the_formula():
    """Eq. 5-8 written out per head, unscaled logits (the AutoInt paper's)."""
    torch.manual_seed(0)
    fields = torch.randn(3, 2, 4)
    layer = InteractingLayer(4, attention_dim=6, heads=2).eval()
    wq, wk, wv = layer.qkv.weight.view(3, 6, 4)
    heads = []
    for h in range(2):
        rows = slice(3 * h, 3 * h + 3)
        q, k, v = fields @ wq[rows].T, fields @ wk[rows].T, fields @ wv[rows].T  # (B, F, 3)
        heads.append(torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v)
    expected = torch.relu(torch.cat(heads, -1) + fields @ layer.res.weight.T)
    assert torch.allclose(layer(fields), expected, atol=1e-5)


def test_autoint_heads_must_divide_width():
    with pytest.raises(ValueError, match="divisible"):
        InteractingLayer(8, attention_dim=7, heads=2)


def test_maskblock_is_a_masked_hidden_layer():
    torch.manual_seed(0)
    block = MaskBlock(6, 4, 3, reduction_ratio=2, layer_norm=False)
    v_emb, v_hidden = torch.randn(5, 6), torch.randn(5, 4)
    expected = torch.relu(block.hidden(block.mask(v_emb) * v_hidden))
    assert torch.allclose(block(v_emb, v_hidden), expected)
    assert block.mask[0].out_features == 8  # aggregation width = ratio × hidden width


def test_bilinear_fusion_per_head():
    torch.manual_seed(0)
    fusion = BilinearFusion(4, 6, heads=2)
    o1, o2 = torch.randn(3, 4), torch.randn(3, 6)
    bilinear = sum((o1[:, 2 * h:2 * h + 2] @ fusion.w3[h] * o2[:, 3 * h:3 * h + 3]).sum(-1)
                   for h in range(2))
    expected = fusion.w1(o1) + fusion.w2(o2) + bilinear.unsqueeze(-1)
    assert torch.allclose(fusion(o1, o2), expected, atol=1e-5)


def test_two_stream_mlp_and_mlp_shapes():
    torch.manual_seed(0)
    body = TwoStreamMLP(8, (4, 0), hidden1=(16, 8), hidden2=(8,), gate_hidden=(4,), heads=2)
    assert body(torch.randn(3, 8), torch.randn(3, 4), None).shape == (3, 1)
    mlp = MLP(8, (16, 4), out_dim=None, batch_norm=True, dropout=0.1)
    assert mlp.out_dim == 4 and mlp(torch.randn(3, 8)).shape == (3, 4)
    with pytest.raises(ValueError, match="unknown activation"):
        MLP(8, (4,), activation="swishy")


def test_fold_for_inference_is_exact():
    torch.manual_seed(0)
    mlp = MLP(6, (8, 4), out_dim=1, dropout=0.5, batch_norm=True)
    mlp.train()
    for _ in range(3):  # non-trivial running statistics
        mlp(torch.randn(16, 6) * 3 + 1)
    mlp.eval()
    folded = fold_for_inference(mlp)
    assert not any(isinstance(m, torch.nn.BatchNorm1d | torch.nn.Dropout) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters())
    # every Linear is stored pre-transposed (a plain GEMM at batch 1), with the same values
    assert not any(type(m) is torch.nn.Linear for m in folded.modules())
    first = folded.net[0]
    assert first.weight.shape == (8, 6) and first.weight_t.is_contiguous()
    x = torch.randn(5, 6)
    assert torch.allclose(folded(x), mlp(x), atol=1e-5)
    assert torch.allclose(folded(x[:1]), mlp(x[:1]), atol=1e-5)  # batch 1, the latency path
