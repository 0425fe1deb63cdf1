"""MaskNet's MaskBlock: an instance-guided mask multiplied into a hidden layer.

Wang, She and Zhang, "MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking Models by
Instance-Guided Mask", DLP-KDD 2021, §3.2-3.3, Eq. 3-8:
    V_mask   = W_d2 ReLU(W_d1 V_emb + β_d1) + β_d2     (aggregation, then projection layer)
    V_masked = V_mask ⊙ V_hidden                        (feature-wise multiplication)
    V_out    = ReLU(LN(W_i V_masked))                   (the block's hidden layer)
The reduction ratio r sets the aggregation width to r × the projected width.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskBlock(nn.Module):
    """(V_emb (B, in_dim), V_hidden (B, hidden_dim)) -> (B, out_dim).

    Args:
        in_dim: width of the flat feature embedding V_emb that guides the mask.
        hidden_dim: width of V_hidden (the layer being masked).
        out_dim: width of the block's output layer.
        reduction_ratio: aggregation width = reduction_ratio × hidden_dim.
        dropout: dropout on the output.
        layer_norm: LayerNorm before the ReLU (the paper's default; off: plain ReLU).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, reduction_ratio: float = 2.0,
                 dropout: float = 0.0, layer_norm: bool = True):
        super().__init__()
        agg = max(1, int(hidden_dim * reduction_ratio))
        self.mask = nn.Sequential(nn.Linear(in_dim, agg), nn.ReLU(), nn.Linear(agg, hidden_dim))
        self.hidden = nn.Linear(hidden_dim, out_dim, bias=not layer_norm)
        self.norm = nn.LayerNorm(out_dim) if layer_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, v_emb: torch.Tensor, v_hidden: torch.Tensor) -> torch.Tensor:
        masked = self.mask(v_emb) * v_hidden  # V_mask ⊙ V_hidden: (B, hidden_dim)
        return self.dropout(torch.relu(self.norm(self.hidden(masked))))  # (B, out_dim)
