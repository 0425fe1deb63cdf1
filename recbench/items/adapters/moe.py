"""Mixture-of-experts adapter, UniSRec's `MoEAdaptorLayer` (Hou et al., KDD 2022; paper 000
uses 8 experts):

    expert_k(x) = W_k (dropout(x) - b_k)                  (PW layer: no output bias)
    g(x)        = softmax(x W_g + 1[train, noisy] eps * (softplus(x W_n) + 1e-2)), eps ~ N(0, 1)
    y           = sum_k g_k(x) expert_k(x)

W_k ~ N(0, 0.02), b_k = 0, and W_g, W_n start at zero, so the gate starts uniform. It is a
dense softmax gate (every expert contributes), not a top-k router.
"""

from __future__ import annotations

import torch
from torch import nn


class PWLayer(nn.Module):
    """UniSRec's whitening expert: W (dropout(x) - b)."""

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.2):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(in_dim))
        self.lin = nn.Linear(in_dim, dim, bias=False)
        nn.init.normal_(self.lin.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.dropout(x) - self.bias)


class MoEAdapter(nn.Module):
    """(..., D) -> (..., dim): a softmax-gated sum of `n_experts` PW experts."""

    uses_codes = False

    def __init__(self, in_dim: int, dim: int, n_experts: int = 8, dropout: float = 0.2,
                 noisy_gate: bool = True):
        super().__init__()
        self.experts = nn.ModuleList(PWLayer(in_dim, dim, dropout) for _ in range(n_experts))
        self.w_gate = nn.Parameter(torch.zeros(in_dim, n_experts))
        self.w_noise = nn.Parameter(torch.zeros(in_dim, n_experts))
        self.noisy_gate = noisy_gate

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n_experts) softmax gate weights."""
        logits = x @ self.w_gate
        if self.noisy_gate and self.training:
            noise = nn.functional.softplus(x @ self.w_noise) + 1e-2
            logits = logits + torch.randn_like(logits) * noise
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.stack([e(x) for e in self.experts], dim=-2)  # (..., K, dim)
        return (self.gates(x).unsqueeze(-1) * out).sum(-2)  # (..., dim)
