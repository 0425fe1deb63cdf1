"""SASRec: Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018.

RecBench group G (paper 001 §3.2, Table 5: SASRec-3L/6L/12L/24L); paper 002 §5.1 (SASRec) and
§5.2 (LLM2SASRec). For a right-aligned history (s_1..s_L):

    E_t  = √d · v_{s_t} + P_t                                   (§III-A, learned positions)
    F^b  = FFN(SA(F^{b-1}))  with g(x) = x + Dropout(g(LN(x)))   (§III-B/C, causal attention)
    h_t  = LN(F^B_t)
    f(s, i) = v_i^T h_L                                        (RecBench Eq. 8; shared item table)

Training: every position predicts its successor (causal objective, full softmax, Eq. 7 — see
`recbench.models.seq.base`); the original paper's binary loss with one sampled negative is
replaced by the cross-entropy RecBench states. Inference scores every item from h_L.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import create_model, model_validator
from torch import nn

from recbench.core.config import Count
from recbench.items import ItemTable
from recbench.models.layers.attention import TransformerBlock, attention_mask
from recbench.models.seq.base import SeqModel, SeqModelConfig, with_embeddings


class SASRecConfig(SeqModelConfig):
    n_layers: Count = 2  # the original paper's default; RecBench runs 3, 6, 12 and 24
    heads: Count = 2
    scale_embeddings: bool = True  # √d · v (the reference implementation)

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


class SASRecEncoder(nn.Module):
    """History (B, L) -> user vectors (B, d), or the per-position states (B, L, d)."""

    def __init__(self, items: ItemTable, max_len: int, n_layers: int, heads: int, dropout: float,
                 scale: bool = True, causal: bool = True):
        super().__init__()
        dim = items.dim
        # causal=False: LLMEmb's SASRec (its attn_mask is commented out), for parity only; the
        # per-position objective then leaks (position t reads t+1, its own target)
        self.items, self.max_len, self.causal = items, max_len, causal
        self.scale = dim ** 0.5 if scale else 1.0
        self.position = nn.Embedding(max_len, dim)  # P: learned absolute positions
        nn.init.normal_(self.position.weight, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout, ffn_dim=dim,
                                                     activation="relu", norm_first=True)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) shifted ids, right-aligned, L <= max_len -> h (B, L, d), h_t sees s_1..s_t."""
        pad = (tokens == 0).unsqueeze(-1)  # (B, L, 1)
        positions = torch.arange(self.max_len - tokens.shape[1], self.max_len,
                                 device=tokens.device)  # right-aligned: the newest at max_len - 1
        x = self.items(tokens) * self.scale + self.position(positions)  # E: (B, L, d)
        x = self.dropout(x).masked_fill(pad, 0.0)
        mask = attention_mask(tokens, causal=self.causal)  # (B, 1, L, L)
        for block in self.blocks:
            x = block(x, mask).masked_fill(pad, 0.0)  # F^b: (B, L, d)
        return self.norm(x)  # h: (B, L, d)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        return self.sequence(history)[:, -1]  # h_L: (B, d)


class SASRec(SeqModel):
    """SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history."""

    Config = SASRecConfig
    paper_name = "SASRec"

    @property
    def model_id(self) -> str:
        return f"{super().model_id}-{self.config.n_layers}L"

    def encoder(self, items: ItemTable) -> nn.Module:
        cfg = self.config
        return SASRecEncoder(items, cfg.max_len, cfg.n_layers, cfg.heads, cfg.dropout,
                             cfg.scale_embeddings)


def with_layers(n_layers: int) -> type[SASRec]:
    """RecBench's SASRec-{n}L (Table 5): a subclass whose Config fixes `n_layers`."""
    name = f"SASRec{n_layers}L"
    config = create_model(f"{name}Config", __base__=SASRecConfig, __module__=__name__,
                          n_layers=(Literal[n_layers], n_layers))
    return type(name, (SASRec,), {"Config": config, "__module__": __name__,
                                  "__qualname__": name,
                                  "__doc__": f"SASRec with {n_layers} blocks (RecBench Table 5)."})


SASRec3L = with_layers(3)
SASRec6L = with_layers(6)
SASRec12L = with_layers(12)
SASRec24L = with_layers(24)
LLM2SASRec = with_embeddings(SASRec)
