"""Linear projection adapter (paper 000 §3.3, the base configuration's adapter): y = W x + b,
learned end to end with the recommender."""

from __future__ import annotations

import torch
from torch import nn


class LinearAdapter(nn.Module):
    """(..., D) -> (..., dim) by one affine map."""

    uses_codes = False

    def __init__(self, in_dim: int, dim: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(x))
