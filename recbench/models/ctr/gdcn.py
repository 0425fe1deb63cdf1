"""GDCN: Wang et al., "Towards Deeper, Lighter and Interpretable Cross Network for CTR
Prediction", CIKM 2023.

A gated cross network (GCN) learns bounded-degree crosses with an information gate per crossed
feature (§3.2, Eq. 1) and is combined with a DNN (§3.3):
    c_{l+1} = c0 ⊙ (W_c c_l + b_l) ⊙ σ(W_g c_l) + c_l
    GDCN-P (parallel, default): ŷ = σ(w^T [c_L ; MLP(c0)]);  GDCN-S (stacked): ŷ = σ(w^T MLP(c_L)).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from recbench.core.config import Count, Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.cross import GatedCrossNet
from recbench.models.layers.mlp import MLP


class GDCNConfig(DeepCTRConfig):
    structure: Literal["parallel", "stacked"] = "parallel"
    cross_layers: Count = 3
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class GDCNInteraction(nn.Module):
    def __init__(self, cfg: GDCNConfig, dim: int):
        super().__init__()
        self.parallel = cfg.structure == "parallel"
        self.cross = GatedCrossNet(2 * dim, cfg.cross_layers)
        self.deep = MLP(2 * dim, cfg.hidden, dropout=cfg.dropout, activation=cfg.activation,
                        batch_norm=cfg.batch_norm)
        self.logit = nn.Linear(self.deep.out_dim + (2 * dim if self.parallel else 0), 1)

    def forward(self, u, t):
        c0 = concat(u, t)  # (B, 2d)
        crossed = self.cross(c0)  # c_L: (B, 2d)
        if self.parallel:
            return self.logit(torch.cat((crossed, self.deep(c0)), dim=-1))
        return self.logit(self.deep(crossed))  # (B, 1)


class GDCN(DeepCTR):
    """GDCN (Wang et al., CIKM 2023): gated cross network + DNN over [u ; t] (GDCN-P)."""

    Config = GDCNConfig
    paper_name = "GDCN"

    def interaction(self, dim: int) -> nn.Module:
        return GDCNInteraction(self.config, dim)


GDCNText = with_items(GDCN, "text")
GDCNEmb = with_items(GDCN, "embedding")
