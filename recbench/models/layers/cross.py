"""Explicit feature-crossing networks on the flat input x0 (B, D): DCN, DCNv2 and GDCN.

Every layer keeps the residual `+ x_l`, so L layers model crosses up to degree L + 1.

- `CrossNet`: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017, Eq. 3:
  x_{l+1} = x0 x_l^T w_l + b_l + x_l.
- `CrossNetV2`: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for
  Web-scale Learning to Rank Systems", WWW 2021, Eq. 1: x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l;
  with `low_rank` the mixture of low-rank experts of §5 (DCN-Mix):
  x_{l+1} = Σ_i G_i(x_l) E_i(x_l) + x_l, E_i(x_l) = x0 ⊙ (U_i g(C_i g(V_i^T x_l)) + b_l).
- `GatedCrossNet`: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
  Prediction" (GDCN), CIKM 2023, Eq. 1: x_{l+1} = x0 ⊙ (W_c x_l + b_l) ⊙ σ(W_g x_l) + x_l.
"""

from __future__ import annotations

import torch
from torch import nn


class CrossNet(nn.Module):
    """DCN's cross network: one weight vector and one bias per layer (2·D parameters)."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.w = nn.Parameter(torch.empty(n_layers, dim))
        self.b = nn.Parameter(torch.zeros(n_layers, dim))
        nn.init.xavier_normal_(self.w)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, D)
        for w, b in zip(self.w, self.b, strict=True):
            x = x0 * (x @ w).unsqueeze(-1) + b + x  # x0 (x_l^T w): (B, D) * (B, 1)
        return x


class CrossNetV2(nn.Module):
    """DCNv2's cross network: a full D×D matrix per layer, or a gated mixture of low-rank experts.

    Args:
        dim: D, the width of x0.
        n_layers: number of cross layers.
        low_rank: r; None uses full-rank W_l (the DCNv2 default).
        n_experts: K low-rank experts mixed by a softmax gate (only with `low_rank`).
    """

    def __init__(self, dim: int, n_layers: int, low_rank: int | None = None, n_experts: int = 4):
        super().__init__()
        self.low_rank = low_rank
        if low_rank is None:
            self.linears = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))
            return
        shape = (n_layers, n_experts)
        self.v = nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape, dim, low_rank)))
        self.c = nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape, low_rank, low_rank)))
        self.u = nn.Parameter(nn.init.xavier_normal_(torch.empty(*shape, dim, low_rank)))
        self.b = nn.Parameter(torch.zeros(n_layers, dim))
        self.gates = nn.ModuleList(nn.Linear(dim, n_experts, bias=False) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, D)
        if self.low_rank is None:
            for linear in self.linears:
                x = x0 * linear(x) + x  # x0 ⊙ (W x_l + b) + x_l
            return x
        for v, c, u, b, gate in zip(self.v, self.c, self.u, self.b, self.gates, strict=True):
            z = torch.tanh(torch.einsum("bd,kdr->bkr", x, v))  # g(V_i^T x_l): (B, K, r)
            z = torch.tanh(torch.einsum("bkr,ksr->bks", z, c))  # g(C_i ·): (B, K, r)
            experts = x0.unsqueeze(1) * (torch.einsum("bkr,kdr->bkd", z, u) + b)  # (B, K, D)
            g = torch.softmax(gate(x), dim=-1).unsqueeze(-1)  # G_i(x_l): (B, K, 1)
            x = (g * experts).sum(1) + x
        return x


class GatedCrossNet(nn.Module):
    """GDCN's gated cross network: a sigmoid information gate on every crossed feature."""

    def __init__(self, dim: int, n_layers: int):
        super().__init__()
        self.cross = nn.ModuleList(nn.Linear(dim, dim) for _ in range(n_layers))  # W_c, b
        self.gate = nn.ModuleList(nn.Linear(dim, dim, bias=False) for _ in range(n_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0  # (B, D)
        for cross, gate in zip(self.cross, self.gate, strict=True):
            x = x0 * cross(x) * torch.sigmoid(gate(x)) + x
        return x
