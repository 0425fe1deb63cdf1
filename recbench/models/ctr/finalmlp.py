"""FinalMLP: Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR Prediction",
AAAI 2023.

Two MLP streams read the same flat input e = [u ; t], each through its own feature-selection gate
conditioned on a context (§3.2, Eq. 3), and their outputs are fused by multi-head bilinear
interaction (§3.3, Eq. 4-5):
    h_s = 2σ(Gate_s(x_ctx_s)) ⊙ e,   o_s = MLP_s(h_s),   ŷ = σ(Σ_j BF(o_1j, o_2j)).
With two fields the natural contexts are the user vector for stream 1 and the item vector for
stream 2 (the paper suggests user/item fields; "none" uses a learned vector, FuxiCTR's default).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator
from torch import nn

from recbench.core.config import Count, Dropout, Widths
from recbench.models.ctr.base import DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.two_stream import TwoStreamMLP

Context = Literal["user", "item", "none"]


class FinalMLPConfig(DeepCTRConfig):
    mlp1_hidden: Widths = (256, 256, 256)
    mlp2_hidden: Widths = (256,)
    mlp1_dropout: Dropout | None = None  # None: `dropout`
    mlp2_dropout: Dropout | None = None
    batch_norm: bool = True
    feature_selection: bool = True
    fs_hidden: Widths = (64,)
    context1: Context = "user"
    context2: Context = "item"
    heads: Count = 4  # multi-head bilinear fusion; must divide both stream widths

    @model_validator(mode="after")
    def _heads_divide_the_streams(self):
        widths = [h[-1] for h in (self.mlp1_hidden, self.mlp2_hidden) if h]
        if any(w % self.heads for w in widths):
            raise ValueError(f"stream widths {widths} (the last of mlp1_hidden, mlp2_hidden) "
                             f"are not divisible by heads {self.heads}")
        return self


class FinalMLPInteraction(nn.Module):
    def __init__(self, cfg: FinalMLPConfig, dim: int):
        super().__init__()
        self.contexts = (cfg.context1, cfg.context2)
        dropout = (cfg.dropout if cfg.mlp1_dropout is None else cfg.mlp1_dropout,
                   cfg.dropout if cfg.mlp2_dropout is None else cfg.mlp2_dropout)
        self.body = TwoStreamMLP(
            2 * dim, tuple(0 if c == "none" else dim for c in self.contexts), cfg.mlp1_hidden,
            cfg.mlp2_hidden, cfg.fs_hidden, heads=cfg.heads, dropout=dropout,
            batch_norm=cfg.batch_norm, feature_selection=cfg.feature_selection)

    def forward(self, u, t):
        by_name = {"user": u, "item": t, "none": None}
        ctx1, ctx2 = (by_name[c] for c in self.contexts)
        return self.body(concat(u, t), ctx1, ctx2)  # (B, 2d) -> (B, 1)


class FinalMLP(DeepCTR):
    """FinalMLP (Mao et al., AAAI 2023): two gated MLP streams with bilinear fusion."""

    Config = FinalMLPConfig
    paper_name = "FinalMLP"

    def interaction(self, dim: int) -> nn.Module:
        return FinalMLPInteraction(self.config, dim)


FinalMLPText = with_items(FinalMLP, "text")
FinalMLPEmb = with_items(FinalMLP, "embedding")
