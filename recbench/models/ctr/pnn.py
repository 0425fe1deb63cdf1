"""PNN: Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016.

A product layer feeds an MLP with the linear signal z (the field embeddings themselves) and the
quadratic signal p (pairwise products), Eq. 3-5:
    l1 = ReLU(W_z ⊙ z + W_p ⊙ p + b1),   ŷ = σ(MLP(l1)),
with p the inner products <f_i, f_j> (IPNN, §3.2, the default) or the outer product of the
superposed fields f_Σ f_Σ^T (OPNN, §3.3), or both (PNN*). Here the fields are (u, t).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from recbench.core.config import Count, Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, stack, with_items
from recbench.models.layers.mlp import MLP
from recbench.models.layers.product import InnerProduct, OuterProduct


class PNNConfig(DeepCTRConfig):
    product: Literal["inner", "outer", "both"] = "inner"
    outer_units: Count = 16  # D1 product units of the OPNN layer
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class PNNInteraction(nn.Module):
    def __init__(self, cfg: PNNConfig, dim: int):
        super().__init__()
        self.inner = InnerProduct(2) if cfg.product in ("inner", "both") else None
        self.outer = OuterProduct(dim, cfg.outer_units) if cfg.product in ("outer", "both") \
            else None
        width = 2 * dim + sum(m.out_dim for m in (self.inner, self.outer) if m is not None)
        # the first Linear of the MLP is W_z ⊙ z + W_p ⊙ p + b1 on [z ; p]
        self.mlp = MLP(width, cfg.hidden, out_dim=1, dropout=cfg.dropout,
                       activation=cfg.activation, batch_norm=cfg.batch_norm)

    def forward(self, u, t):
        fields = stack(u, t)  # (B, 2, d)
        signals = [fields.flatten(1)]  # z: (B, 2d)
        if self.inner is not None:
            signals.append(self.inner(fields))  # p: (B, 1)
        if self.outer is not None:
            signals.append(self.outer(fields))  # p: (B, D1)
        return self.mlp(torch.cat(signals, dim=-1))  # (B, 1)


class PNN(DeepCTR):
    """PNN (Qu et al., ICDM 2016): an MLP over [z ; p], p = pairwise products of (u, t)."""

    Config = PNNConfig
    paper_name = "PNN"

    def interaction(self, dim: int) -> nn.Module:
        return PNNInteraction(self.config, dim)


PNNText = with_items(PNN, "text")
PNNEmb = with_items(PNN, "embedding")
