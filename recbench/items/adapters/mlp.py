"""MLP adapter (paper 000 §3.3; the paper leaves depth and activation open): two layers,
D -> hidden -> dim with GELU and dropout between them; hidden defaults to max(dim, D // 2),
the width of LLMEmb's two-layer adapter (which has no activation)."""

from __future__ import annotations

import torch
from torch import nn


class MLPAdapter(nn.Module):
    """(..., D) -> (..., dim): Linear -> GELU -> Dropout -> Linear."""

    uses_codes = False

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.2, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(dim, in_dim // 2)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
