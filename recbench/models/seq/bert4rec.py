"""BERT4Rec: Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder
Representations from Transformer", CIKM 2019. Paper 002 §5.1 (BERT4Rec) and §5.2 (LLM2BERT4Rec).

Bidirectional transformer over the sequence with a [MASK] token (§3.2-3.5):

    E_t  = v_{s_t} + P_t,  v_[MASK] a learned vector          (embedding layer, then LN, dropout)
    H^l  = LN(A + Dropout(PFFN(A))),  A = LN(H^{l-1} + Dropout(MH(H^{l-1})))   (post-LN, GELU)
    o_t  = LN(GELU(W_P h_t + b_P))                              (output layer, §3.5)
    P(v | t) = softmax_i(o_t^T v_i)                             (item table shared with the input)

Training (§3.6, the Cloze task): each real item of a training sequence (history + target) is
replaced by [MASK] with probability `mask_prob` (at least one per sequence) and predicted with
a full-softmax cross-entropy; a fraction `last_only_prob` of sequences mask only their last
item, matching inference, as the paper's fine-tuning samples do. Inference appends [MASK] to
the history and scores every item from its output (RecBench Eq. 8). Deviation: the per-item
output bias b^O of §3.5 is dropped (scores stay a dot product, as every group-G model's).
"""

from __future__ import annotations

import torch
from pydantic import model_validator
from torch import nn

from recbench.core.config import Count, Dropout, Probability
from recbench.items import ItemTable
from recbench.models.layers.attention import TransformerBlock, attention_mask
from recbench.models.seq.base import SeqModel, SeqModelConfig, encoder_inputs, with_embeddings


class BERT4RecConfig(SeqModelConfig):
    n_layers: Count = 2  # the paper's L = 2, h = 2
    heads: Count = 2
    dropout: Dropout = 0.1
    mask_prob: Probability = 0.2  # ρ; the paper tunes 0.2 (dense) .. 0.6 (sparse)
    last_only_prob: Probability = 0.1

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


def cloze_mask(seq: torch.Tensor, mask_prob: float, last_only_prob: float, mask_id: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a batch of right-aligned sequences (B, L) (0 = padding) for the Cloze task.

    Returns:
        tokens (B, L) with [MASK] (`mask_id`) at the masked positions, and the mask (B, L) bool:
        only real items, at least one per non-empty row (its last item if the draw gave none).
    """
    real = seq != 0
    draw = torch.rand(seq.shape, generator=generator, device=seq.device) < mask_prob
    mask = draw & real
    last_only = torch.rand(seq.shape[0], generator=generator, device=seq.device) < last_only_prob
    last_only = last_only | ~mask.any(1)  # rows the draw left unmasked predict their last item
    mask[last_only] = False
    mask[:, -1] |= last_only & real[:, -1]  # right-aligned: the last column is the newest item
    return seq.masked_fill(mask, mask_id), mask


class BERT4RecEncoder(nn.Module):
    """Tokens (B, L) -> states (B, L, d); forward(history) appends [MASK] and reads it (B, d)."""

    def __init__(self, items: ItemTable, mask_id: int, max_len: int, n_layers: int, heads: int,
                 dropout: float):
        super().__init__()
        dim = items.dim
        self.items, self.mask_id, self.max_len = items, mask_id, max_len
        self.mask_vector = nn.Parameter(torch.randn(dim) * 0.02)  # v_[MASK]
        self.position = nn.Embedding(max_len, dim)
        nn.init.normal_(self.position.weight, std=0.02)
        self.embed_norm, self.dropout = nn.LayerNorm(dim), nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout, ffn_dim=4 * dim,
                                                     activation="gelu", norm_first=False)
                                    for _ in range(n_layers))
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))  # W_P, b_P

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) shifted ids / `mask_id`, right-aligned, L <= max_len -> o (B, L, d)."""
        is_mask = (tokens == self.mask_id).unsqueeze(-1)  # (B, L, 1)
        ids = tokens.masked_fill(is_mask.squeeze(-1), 0)
        positions = torch.arange(self.max_len - tokens.shape[1], self.max_len,
                                 device=tokens.device)
        x = torch.where(is_mask, self.mask_vector, self.items(ids)) + self.position(positions)
        x = self.dropout(self.embed_norm(x))  # E: (B, L, d)
        mask = attention_mask(tokens, causal=False)  # bidirectional over real items and [MASK]
        for block in self.blocks:
            x = block(x, mask)  # H^l: (B, L, d)
        return self.head(x)  # o: (B, L, d)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        masked = torch.full_like(history[:, :1], self.mask_id)  # (B, 1)
        tokens = torch.cat([history, masked], dim=1)[:, -self.max_len:]  # (B, L + 1)
        return self.sequence(tokens)[:, -1]  # o at [MASK]: (B, d)


class BERT4Rec(SeqModel):
    """BERT4Rec (Sun et al., CIKM 2019): bidirectional self-attention, Cloze training."""

    Config = BERT4RecConfig
    paper_name = "BERT4Rec"

    def encoder(self, items: ItemTable) -> nn.Module:
        cfg = self.config
        # Positions cover a full training sequence: max_len history items + target ([MASK]).
        return BERT4RecEncoder(items, self.n_items + 1, cfg.max_len + 1, cfg.n_layers, cfg.heads,
                               cfg.dropout)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seq = batch["seq"]  # (B, L + 1): history + target
        cfg = self.config
        tokens, mask = cloze_mask(seq, cfg.mask_prob, cfg.last_only_prob, self.n_items + 1)
        hidden = module.sequence(tokens, **encoder_inputs(batch))[mask]  # (N, d): masked
        logits, target = self.item_logits(hidden, seq[mask])  # (N, C), (N,)
        return nn.functional.cross_entropy(logits, target)


LLM2BERT4Rec = with_embeddings(BERT4Rec)
