"""Self-attention layers: AutoInt's interacting layer (across CTR fields) and the transformer
block of the sequential recommenders (across the positions of a history).

`InteractingLayer` — Song et al., "AutoInt: Automatic Feature Interaction Learning via
Self-Attentive Neural Networks", CIKM 2019, §4.3, Eq. 5-8: per head h,
    α_mk^h = softmax_k(<W_Q^h e_m, W_K^h e_k>),   ẽ_m^h = Σ_k α_mk^h W_V^h e_k,
    ẽ_m = ẽ_m^1 ⊕ ... ⊕ ẽ_m^H,                    e_m^Res = ReLU(ẽ_m + W_Res e_m).

`TransformerBlock` — the encoder layer of Vaswani et al., "Attention Is All You Need", NeurIPS
2017, as SASRec (Kang & McAuley, ICDM 2018, §III-B..E) and BERT4Rec (Sun et al., CIKM 2019,
§3.3) use it: multi-head self-attention then a point-wise feed-forward network, each with
dropout and a residual path, LayerNorm before each sub-layer (SASRec §III-C: g(x) = x +
Dropout(g(LayerNorm(x)))) or after it (BERT4Rec: LayerNorm(x + Dropout(g(x)))).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class InteractingLayer(nn.Module):
    """(B, F, in_dim) -> (B, F, attention_dim); `attention_dim` is split over `heads`.

    Args:
        in_dim: width of each field's input vector.
        attention_dim: total output width (H heads of attention_dim / H each).
        heads: H.
        residual: add W_Res e_m before the ReLU (Eq. 8); off: ReLU(ẽ_m).
        scaled: divide the logits by sqrt(d_head) (the AutoInt paper does not).
        dropout: dropout on the attention weights.
        layer_norm: normalise the output (not in the paper; off by default).
    """

    def __init__(self, in_dim: int, attention_dim: int, heads: int = 2, residual: bool = True,
                 scaled: bool = False, dropout: float = 0.0, layer_norm: bool = False):
        super().__init__()
        if attention_dim % heads:
            raise ValueError(f"attention_dim {attention_dim} is not divisible by heads {heads}")
        self.heads, self.d_head = heads, attention_dim // heads
        self.scale = self.d_head ** -0.5 if scaled else 1.0
        self.qkv = nn.Linear(in_dim, 3 * attention_dim, bias=False)  # W_Q, W_K, W_V
        self.res = nn.Linear(in_dim, attention_dim, bias=False) if residual else None  # W_Res
        self.dropout = dropout
        self.norm = nn.LayerNorm(attention_dim) if layer_norm else None

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        b, f, _ = fields.shape
        q, k, v = (self.qkv(fields).view(b, f, 3, self.heads, self.d_head)
                   .permute(2, 0, 3, 1, 4))  # each (B, H, F, d_head)
        # softmax_k(<W_Q e_m, W_K e_k> · scale) V, dropout on α: one fused op (fewer per-sample ops)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale,
                                             dropout_p=self.dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(b, f, -1)  # ẽ: (B, F, A)
        if self.res is not None:
            out = out + self.res(fields)
        out = torch.relu(out)
        return out if self.norm is None else self.norm(out)


def attention_mask(tokens: torch.Tensor, causal: bool) -> torch.Tensor:
    """Which keys each query may read: (B, L) ids with 0 = padding -> (B, 1, L, L) bool.

    Padding keys are hidden; a query may always read itself, so padded queries (whose outputs
    are discarded) never see an empty row and the softmax stays finite. `causal` also hides
    later positions (SASRec: position i sees items 1..i only).
    """
    length = tokens.shape[1]
    keys = (tokens != 0).unsqueeze(1)  # (B, 1, L): key j is a real item
    allowed = keys | torch.eye(length, dtype=torch.bool, device=tokens.device)  # (B, L, L)
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool,
                                       device=tokens.device).tril()
    return allowed.unsqueeze(1)


class TransformerBlock(nn.Module):
    """(x (B, L, d), mask (B, 1, L, L) bool, True = may attend) -> (B, L, d).

    Args:
        dim: d.
        heads: attention heads (d is split over them).
        dropout: on the attention weights, the sub-layer outputs and inside the FFN.
        ffn_dim: hidden width of the FFN (SASRec: d; BERT4Rec: 4d).
        activation: "relu" (SASRec) or "gelu" (BERT4Rec).
        norm_first: pre-LN (SASRec) or post-LN (BERT4Rec, the original Transformer).
    """

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.0, ffn_dim: int | None = None,
                 activation: str = "relu", norm_first: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation {activation!r}: choose relu or gelu")
        self.heads, self.norm_first, self.p = heads, norm_first, dropout
        self.qkv = nn.Linear(dim, 3 * dim)  # W^Q, W^K, W^V
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim or dim),
                                 nn.ReLU() if activation == "relu" else nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(ffn_dim or dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = (self.qkv(x).view(b, length, 3, self.heads, dim // self.heads)
                   .permute(2, 0, 3, 1, 4))  # each (B, H, L, d/H)
        # softmax(QK^T / sqrt(d/H)) V over the allowed keys
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.p if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, length, dim))  # (B, L, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:  # SASRec: x + Dropout(g(LN(x)))
            x = x + self.dropout(self.attend(self.norm1(x), mask))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attend(x, mask)))  # BERT4Rec: LN(x + Dropout(g(x)))
        return self.norm2(x + self.dropout(self.ffn(x)))

    # --- incremental decoding (inference: dropout only acts in training mode) ----------------
    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, T, d) -> queries, keys, values, each (N, H, T, d/H)."""
        n, length, dim = x.shape
        q, k, v = (self.qkv(x).view(n, length, 3, self.heads, dim // self.heads)
                   .permute(2, 0, 3, 1, 4))
        return q, k, v

    def _residual(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The rest of `forward` once the attention output (projected) is known."""
        if self.norm_first:
            x = x + self.dropout(attended)
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ffn(x)))

    def prefill(self, x: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`forward(x, mask)` that also returns this layer's keys and values (B, H, L, d/H),
        the cache `step` continues from."""
        q, k, v = self._heads(self.norm1(x) if self.norm_first else x)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.p if self.training else 0.0)
        return self._residual(x, self.proj(out.transpose(1, 2).reshape(x.shape))), k, v

    def step(self, x: torch.Tensor, prefix: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
             suffix: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One new position per row, attending to a cached prefix shared by groups of rows
        (e.g. a user's history shared by its beams, never copied per row) and to the row's
        own earlier new positions.

        Args:
            x: (R, 1, d) inputs of the new positions; rows come in B equal groups, row r
                reading prefix r // (R / B).
            prefix: keys, values (B, H, P, d/H) from `prefill` and (B, P) bool, True = may
                attend (False: padding).
            suffix: keys, values (R, H, S, d/H) of the row's earlier new positions, or None.

        Returns:
            (R, 1, d) outputs and the suffix with this position appended (R, H, S + 1, d/H).
        """
        rows, _, dim = x.shape
        k_pre, v_pre, keep = prefix
        groups, heads, length, d_head = k_pre.shape
        width = rows // groups
        q, k, v = self._heads(self.norm1(x) if self.norm_first else x)  # (R, H, 1, d/H)
        q = q * d_head ** -0.5
        if suffix is not None:
            k, v = torch.cat([suffix[0], k], dim=2), torch.cat([suffix[1], v], dim=2)
        grouped = q.reshape(groups, width, heads, d_head).transpose(1, 2)  # (B, H, W, d/H)
        pre = (grouped @ k_pre.transpose(-1, -2)).masked_fill(
            ~keep[:, None, None, :], float("-inf"))  # (B, H, W, P)
        own = (q @ k.transpose(-1, -2)).reshape(groups, width, heads, -1).transpose(1, 2)
        weights = torch.softmax(torch.cat([pre, own], dim=-1), dim=-1)  # (B, H, W, P + S + 1)
        out = (weights[..., :length] @ v_pre).transpose(1, 2)  # (B, W, H, d/H)
        mine = weights[..., length:].transpose(1, 2).reshape(rows, heads, 1, -1) @ v
        out = (out.reshape(rows, heads, d_head) + mine.reshape(rows, heads, d_head))
        return self._residual(x, self.proj(out.reshape(rows, 1, dim))), (k, v)
