"""DCNv2: Wang et al., "DCN V2: Improved Deep & Cross Network and Practical Lessons for Web-scale
Learning to Rank Systems", WWW 2021.

Cross layers with a full matrix (Eq. 1), x_{l+1} = x0 ⊙ (W_l x_l + b_l) + x_l, optionally as a
mixture of low-rank experts (§5, DCN-Mix), combined with a deep network (§3, Fig. 2):
    stacked:  ŷ = σ(w^T MLP(x_L))
    parallel: ŷ = σ(w^T [x_L ; MLP(x0)])          (the paper's two structures; parallel default)
    stacked_parallel: ŷ = σ(w^T [MLP_s(x_L) ; MLP_p(x0)])   (FuxiCTR's; RecBench's code uses it)
    crossnet_only: ŷ = σ(w^T x_L)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from recbench.core.config import Count, Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.cross import CrossNetV2
from recbench.models.layers.mlp import MLP


class DCNv2Config(DeepCTRConfig):
    structure: Literal["parallel", "stacked", "stacked_parallel", "crossnet_only"] = "parallel"
    cross_layers: Count = 3
    low_rank: Count | None = None  # r of the low-rank mixture; None: full-rank W_l
    experts: Count = 4  # K experts of the low-rank mixture
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class DCNv2Interaction(nn.Module):
    def __init__(self, cfg: DCNv2Config, dim: int):
        super().__init__()
        self.cross = CrossNetV2(2 * dim, cfg.cross_layers, cfg.low_rank, cfg.experts)

        def mlp() -> MLP:
            return MLP(2 * dim, cfg.hidden, dropout=cfg.dropout, activation=cfg.activation,
                       batch_norm=cfg.batch_norm)

        stacked = cfg.structure in ("stacked", "stacked_parallel")
        parallel = cfg.structure in ("parallel", "stacked_parallel")
        self.stacked_dnn = mlp() if stacked else None
        self.parallel_dnn = mlp() if parallel else None
        width = (self.stacked_dnn.out_dim if stacked else 2 * dim) + \
            (self.parallel_dnn.out_dim if parallel else 0)
        self.logit = nn.Linear(width, 1)

    def forward(self, u, t):
        x0 = concat(u, t)  # (B, 2d)
        out = self.cross(x0)  # x_L: (B, 2d)
        if self.stacked_dnn is not None:
            out = self.stacked_dnn(out)  # MLP(x_L)
        if self.parallel_dnn is not None:
            out = torch.cat((out, self.parallel_dnn(x0)), dim=-1)  # [· ; MLP(x0)]
        return self.logit(out)  # (B, 1)


class DCNv2(DeepCTR):
    """DCNv2 (Wang et al., WWW 2021): full-rank (or low-rank mixture) cross network + MLP."""

    Config = DCNv2Config
    paper_name = "DCNv2"

    def interaction(self, dim: int) -> nn.Module:
        return DCNv2Interaction(self.config, dim)


DCNv2Text = with_items(DCNv2, "text")
DCNv2Emb = with_items(DCNv2, "embedding")
