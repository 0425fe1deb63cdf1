"""FinalMLP's parts: stream-specific feature selection, two MLP streams, multi-head bilinear fusion.

Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction", AAAI 2023:
- feature selection (§3.2, Eq. 3): g = Gate(x_ctx), h = 2σ(g) ⊙ e — a context-conditioned soft
  mask over the flat embedding e, one per stream; with no context a learned vector is the input;
- fusion (§3.3, Eq. 4-5): BF(o1, o2) = b + w1^T o1 + w2^T o2 + o1^T W3 o2, computed per head on
  k equal chunks of o1 and o2 and summed: ŷ = σ(Σ_j BF(o1j, o2j)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from recbench.models.layers.mlp import MLP


class FeatureGate(nn.Module):
    """h = 2σ(MLP(context)) ⊙ e: (e (B, in_dim), context (B, ctx_dim) | None) -> (B, in_dim).

    Args:
        in_dim: width of e.
        ctx_dim: width of the context; 0 means "no context": a learned vector of `bias_dim`.
        hidden: the gate MLP's hidden widths.
        bias_dim: width of the learned context when `ctx_dim` is 0.
    """

    def __init__(self, in_dim: int, ctx_dim: int, hidden: Sequence[int], bias_dim: int = 64):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, bias_dim)) if ctx_dim == 0 else None
        self.gate = MLP(ctx_dim or bias_dim, hidden, out_dim=in_dim)

    def forward(self, e: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ctx = self.bias.expand(e.shape[0], -1) if self.bias is not None else context
        return 2 * torch.sigmoid(self.gate(ctx)) * e


class BilinearFusion(nn.Module):
    """Multi-head bilinear fusion of two stream outputs: (B, d1), (B, d2) -> logit (B, 1)."""

    def __init__(self, d1: int, d2: int, heads: int = 1):
        super().__init__()
        if d1 % heads or d2 % heads:
            raise ValueError(f"stream widths {d1}, {d2} are not divisible by {heads} heads")
        self.heads = heads
        self.w1 = nn.Linear(d1, 1)  # w1^T o1 + b (the heads' biases and w's add up to one)
        self.w2 = nn.Linear(d2, 1, bias=False)
        self.w3 = nn.Parameter(nn.init.xavier_normal_(torch.empty(heads, d1 // heads,
                                                                  d2 // heads)))

    def forward(self, o1: torch.Tensor, o2: torch.Tensor) -> torch.Tensor:
        b = o1.shape[0]
        h1 = o1.view(b, self.heads, -1)  # (B, k, d1/k)
        h2 = o2.view(b, self.heads, -1)  # (B, k, d2/k)
        bilinear = torch.einsum("bki,kij,bkj->b", h1, self.w3, h2).unsqueeze(-1)  # Σ_j o1j^T W3 o2j
        return self.w1(o1) + self.w2(o2) + bilinear  # (B, 1)


class TwoStreamMLP(nn.Module):
    """FinalMLP's body: two gated MLP streams over the same flat input, fused bilinearly.

    forward(e (B, in_dim), ctx1, ctx2) -> logit (B, 1); contexts may be None (learned vectors).
    """

    def __init__(self, in_dim: int, ctx_dims: tuple[int, int], hidden1: Sequence[int],
                 hidden2: Sequence[int], gate_hidden: Sequence[int], heads: int = 1,
                 dropout: tuple[float, float] = (0.0, 0.0), batch_norm: bool = False,
                 feature_selection: bool = True):
        super().__init__()
        self.gates = nn.ModuleList(FeatureGate(in_dim, c, gate_hidden) for c in ctx_dims) \
            if feature_selection else None
        self.mlp1 = MLP(in_dim, hidden1, dropout=dropout[0], batch_norm=batch_norm)
        self.mlp2 = MLP(in_dim, hidden2, dropout=dropout[1], batch_norm=batch_norm)
        self.fusion = BilinearFusion(self.mlp1.out_dim, self.mlp2.out_dim, heads)

    def forward(self, e: torch.Tensor, ctx1: torch.Tensor | None = None,
                ctx2: torch.Tensor | None = None) -> torch.Tensor:
        x1, x2 = (e, e) if self.gates is None else (self.gates[0](e, ctx1),
                                                    self.gates[1](e, ctx2))
        return self.fusion(self.mlp1(x1), self.mlp2(x2))  # (B, 1)
