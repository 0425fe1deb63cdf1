"""DCN: Wang et al., "Deep & Cross Network for Ad Click Predictions", ADKDD 2017.

A cross network and a deep network run in parallel on x0 = [u ; t] and are combined (§2.1-2.4):
    x_{l+1} = x0 x_l^T w_l + b_l + x_l                 (cross layer, Eq. 3)
    h_{l+1} = ReLU(W_l h_l + b_l)                        (deep layer, Eq. 4)
    ŷ = σ(w_logit^T [x_L1 ; h_L2])                      (combination layer, Eq. 5)
"""

from __future__ import annotations

import torch
from torch import nn

from recbench.core.config import Count, Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.cross import CrossNet
from recbench.models.layers.mlp import MLP


class DCNConfig(DeepCTRConfig):
    cross_layers: Count = 3
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class DCNInteraction(nn.Module):
    def __init__(self, cfg: DCNConfig, dim: int):
        super().__init__()
        self.cross = CrossNet(2 * dim, cfg.cross_layers)
        self.deep = MLP(2 * dim, cfg.hidden, dropout=cfg.dropout, activation=cfg.activation,
                        batch_norm=cfg.batch_norm)
        self.logit = nn.Linear(2 * dim + self.deep.out_dim, 1)

    def forward(self, u, t):
        x0 = concat(u, t)  # (B, 2d)
        return self.logit(torch.cat((self.cross(x0), self.deep(x0)), dim=-1))  # (B, 1)


class DCN(DeepCTR):
    """DCN (Wang et al., ADKDD 2017): cross network ∥ deep network on [u ; t]."""

    Config = DCNConfig
    paper_name = "DCN"

    def interaction(self, dim: int) -> nn.Module:
        return DCNInteraction(self.config, dim)


DCNText = with_items(DCN, "text")
DCNEmb = with_items(DCN, "embedding")
