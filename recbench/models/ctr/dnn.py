"""DNN: a plain MLP over the concatenated user and item vectors.

The deep-only baseline of the CTR literature (e.g. Covington et al., "Deep Neural Networks for
YouTube Recommendations", RecSys 2016; the "DNN" row of RecBench, Liu et al. 2025, Table 4):
    ŷ = σ(MLP([u ; t])).
"""

from __future__ import annotations

from torch import nn

from recbench.core.config import Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.mlp import MLP


class DNNConfig(DeepCTRConfig):
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class DNNInteraction(nn.Module):
    def __init__(self, cfg: DNNConfig, dim: int):
        super().__init__()
        self.mlp = MLP(2 * dim, cfg.hidden, out_dim=1, dropout=cfg.dropout,
                       activation=cfg.activation, batch_norm=cfg.batch_norm)

    def forward(self, u, t):
        return self.mlp(concat(u, t))  # (B, 2d) -> (B, 1)


class DNN(DeepCTR):
    """DNN (RecBench Table 4): ŷ = σ(MLP([u ; t]))."""

    Config = DNNConfig
    paper_name = "DNN"

    def interaction(self, dim: int) -> nn.Module:
        return DNNInteraction(self.config, dim)


DNNText = with_items(DNN, "text")
DNNEmb = with_items(DNN, "embedding")
