"""MaskNet: Wang, She and Zhang, "MaskNet: Introducing Feature-Wise Multiplication to CTR Ranking
Models by Instance-Guided Mask", DLP-KDD 2021.

Field embeddings are layer-normalised (LN-EMB, §3.3) and fed through MaskBlocks, each multiplying
its hidden input by an instance-guided mask computed from the raw embedding V_emb = [u ; t]:
    block(V_emb, V_hidden) = ReLU(LN(W_i (V_mask(V_emb) ⊙ V_hidden)))        (Eq. 3-8)
    serial   (SerMaskNet, §3.4.1): V_hidden of block k+1 = output of block k, then a linear head;
    parallel (ParaMaskNet, §3.4.2): K blocks on LN-EMB, concatenated, then feed-forward layers.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from recbench.core.config import Count, PositiveFloat, Widths
from recbench.models.ctr.base import DeepCTR, DeepCTRConfig, concat, with_items
from recbench.models.layers.mask import MaskBlock
from recbench.models.layers.mlp import MLP


class MaskNetConfig(DeepCTRConfig):
    structure: Literal["parallel", "serial"] = "parallel"
    blocks: Count = 3  # ParaMaskNet: number of parallel MaskBlocks
    block_dim: Count = 64  # ParaMaskNet: output width of each block
    serial_dims: Widths = (128, 128, 128)  # SerMaskNet: output width of each block
    reduction_ratio: PositiveFloat = 2.0
    hidden: Widths = (256, 128)  # ParaMaskNet's feed-forward layers after the blocks
    embedding_norm: bool = True  # LN-EMB


class MaskNetInteraction(nn.Module):
    def __init__(self, cfg: MaskNetConfig, dim: int):
        super().__init__()
        self.serial = cfg.structure == "serial"
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2)) \
            if cfg.embedding_norm else None
        in_dim = 2 * dim
        if self.serial:
            dims = (in_dim, *cfg.serial_dims)
            self.blocks = nn.ModuleList(
                MaskBlock(in_dim, h, o, cfg.reduction_ratio, cfg.dropout)
                for h, o in zip(dims[:-1], dims[1:], strict=True))
            self.head = nn.Linear(dims[-1], 1)
        else:
            self.blocks = nn.ModuleList(
                MaskBlock(in_dim, in_dim, cfg.block_dim, cfg.reduction_ratio, cfg.dropout)
                for _ in range(cfg.blocks))
            self.head = MLP(cfg.blocks * cfg.block_dim, cfg.hidden, out_dim=1,
                            dropout=cfg.dropout)

    def forward(self, u, t):
        v_emb = concat(u, t)  # (B, 2d)
        hidden = v_emb if self.norms is None else concat(self.norms[0](u), self.norms[1](t))
        if self.serial:
            for block in self.blocks:
                hidden = block(v_emb, hidden)  # (B, serial_dims[k])
            return self.head(hidden)
        outs = [block(v_emb, hidden) for block in self.blocks]  # K × (B, block_dim)
        return self.head(torch.cat(outs, dim=-1))  # (B, 1)


class MaskNet(DeepCTR):
    """MaskNet (Wang et al., DLP-KDD 2021): instance-guided masks over (u, t); ParaMaskNet."""

    Config = MaskNetConfig
    paper_name = "MaskNet"

    def interaction(self, dim: int) -> nn.Module:
        return MaskNetInteraction(self.config, dim)


MaskNetText = with_items(MaskNet, "text")
MaskNetEmb = with_items(MaskNet, "embedding")
