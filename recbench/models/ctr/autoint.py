"""AutoInt: Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
Neural Networks", CIKM 2019.

Fields (u, t) go through L interacting layers — multi-head self-attention across fields with a
residual connection (§4.3, Eq. 5-8) — and the flattened result feeds a logistic output (Eq. 9):
    e^(l+1) = ReLU(MHSA(e^(l)) + W_Res e^(l)),   ŷ = σ(w^T [e_1^(L) ; e_2^(L)] + b).
AutoInt+ (§5.4) adds a parallel MLP on [u ; t]; set `dnn_hidden` to enable it.
"""

from __future__ import annotations

from pydantic import model_validator
from torch import nn

from recbench.core.config import Count, Dropout, Widths
from recbench.models.ctr.base import DeepCTR, DeepCTRConfig, stack, with_items
from recbench.models.layers.attention import InteractingLayer
from recbench.models.layers.mlp import MLP


class AutoIntConfig(DeepCTRConfig):
    attention_layers: Count = 3  # the paper's default (§5.1)
    heads: Count = 2
    attention_dim: Count = 64  # total over heads (2 heads × d' = 32, the paper's setting)
    residual: bool = True
    scaled: bool = False  # the paper's attention has no 1/sqrt(d) scaling
    layer_norm: bool = True  # not in the paper; see recbench.models.ctr.base
    attention_dropout: Dropout = 0.0
    dnn_hidden: Widths = ()  # AutoInt+: e.g. (256, 128, 64)

    @model_validator(mode="after")
    def _heads_divide_attention_dim(self):
        if self.attention_dim % self.heads:
            raise ValueError(f"attention_dim {self.attention_dim} is not divisible by heads "
                             f"{self.heads}")
        return self


class AutoIntInteraction(nn.Module):
    def __init__(self, cfg: AutoIntConfig, dim: int):
        super().__init__()
        self.layers = nn.Sequential(*(
            InteractingLayer(dim if i == 0 else cfg.attention_dim, cfg.attention_dim, cfg.heads,
                             cfg.residual, cfg.scaled, cfg.attention_dropout, cfg.layer_norm)
            for i in range(cfg.attention_layers)))
        self.logit = nn.Linear(2 * cfg.attention_dim, 1)
        self.dnn = MLP(2 * dim, cfg.dnn_hidden, out_dim=1, dropout=cfg.dropout) \
            if cfg.dnn_hidden else None

    def forward(self, u, t):
        fields = stack(u, t)  # (B, 2, d)
        out = self.logit(self.layers(fields).flatten(1))  # (B, 2, A) -> (B, 2A) -> (B, 1)
        if self.dnn is not None:
            out = out + self.dnn(fields.flatten(1))
        return out


class AutoInt(DeepCTR):
    """AutoInt (Song et al., CIKM 2019): self-attentive interacting layers over (u, t)."""

    Config = AutoIntConfig
    paper_name = "AutoInt"

    def interaction(self, dim: int) -> nn.Module:
        return AutoIntInteraction(self.config, dim)


AutoIntText = with_items(AutoInt, "text")
AutoIntEmb = with_items(AutoInt, "embedding")
