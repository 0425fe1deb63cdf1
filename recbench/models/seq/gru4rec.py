"""GRU4Rec: Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks",
ICLR 2016. Paper 002 §5.1 (GRU4Rec with an item embedding layer) and §5.2 (LLM2GRU4Rec).

    x_t = Dropout(√d · v_{s_t})                 (embedding layer; paper 002 keeps it, §5.1)
    h_t = GRU(x_t, h_{t-1})                     (§3; `n_layers` stacked GRUs)
    f(s, i) = v_i^T W h_t                       (RecBench Eq. 8; W maps `hidden` to d)

Deviation, as RecBench's protocol gives padded histories rather than sessions in a stream:
no session-parallel mini-batches (§3.1.1) and no ranking loss (BPR/TOP1, §3.1.3). Sequences
are padded, every position predicts its successor with the full-softmax cross-entropy of Eq. 7
(the CE variant of Hidasi & Karatzoglou, CIKM 2018), and the score reads the state after the
newest item. Inputs are scaled by √d (as SASRec's) and lr is 1e-2 (see `GRU4RecConfig`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbench.core.config import Count, Dropout, NonNegativeFloat, PositiveFloat, Probability
from recbench.items import ItemTable
from recbench.models.base import TaskData
from recbench.models.seq.base import SeqModel, SeqModelConfig, encoder_inputs, with_embeddings


class GRU4RecConfig(SeqModelConfig):
    # 1e-2, not RecBench's 1e-3: at 1e-3 the GRU sits on the popularity plateau past the
    # early-stopping patience (synthetic small: NDCG@10 0.075 vs 0.20 after 4 epochs at 1e-2);
    # the original GRU4Rec also trains at 0.01-0.1.
    lr: PositiveFloat = 1e-2
    hidden: Count = 64
    n_layers: Count = 1
    dropout: Dropout = 0.2
    scale_embeddings: bool = True  # √d · v, as SASRec: small initial vectors stall the GRU


def left_align(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned (B, L) -> left-aligned (B, L) (the GRU must not start on padding) and the
    index (B, L) that maps left-aligned outputs back: right[:, j] = left[:, index[:, j]]."""
    length = tokens.shape[1]
    n = (tokens != 0).sum(1, keepdim=True)  # (B, 1)
    cols = torch.arange(length, device=tokens.device).unsqueeze(0)  # (1, L)
    left = tokens.gather(1, (cols + length - n) % length)
    return left, (cols + n) % length


class GRU4RecEncoder(nn.Module):
    def __init__(self, items: ItemTable, hidden: int, n_layers: int, dropout: float,
                 scale: bool = True):
        super().__init__()
        self.items = items
        self.scale = items.dim ** 0.5 if scale else 1.0
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(items.dim, hidden, n_layers, batch_first=True,
                          dropout=dropout if n_layers > 1 else 0.0)
        self.out = nn.Identity() if hidden == items.dim else nn.Linear(hidden, items.dim)  # W

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.items(tokens) * self.scale)  # x: (B, L, d)

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) right-aligned -> (B, L, d) aligned with the input: h_t after s_1..s_t."""
        left, back = left_align(tokens)
        states, _ = self.gru(self.embed(left))  # (B, L, hidden), left-aligned
        states = states.gather(1, back.unsqueeze(-1).expand(-1, -1, states.shape[-1]))
        return self.out(states)  # (B, L, d)

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        left, _ = left_align(history)
        last = ((history != 0).sum(1) - 1).clamp(min=0)  # (B,)
        states, _ = self.gru(self.embed(left))  # (B, L, hidden)
        return self.out(states[torch.arange(history.shape[0]), last])  # h_n: (B, d)


class GRU4Rec(SeqModel):
    """GRU4Rec (Hidasi et al., ICLR 2016): a GRU over the item embeddings."""

    Config = GRU4RecConfig
    paper_name = "GRU4Rec"

    def encoder(self, items: ItemTable) -> nn.Module:
        cfg = self.config
        return GRU4RecEncoder(items, cfg.hidden, cfg.n_layers, cfg.dropout, cfg.scale_embeddings)


LLM2GRU4Rec = with_embeddings(GRU4Rec)


# --- GRU4Rec+ (Hidasi & Karatzoglou, CIKM 2018) ------------------------------------------------

class GRU4RecPlusConfig(GRU4RecConfig):
    """The ranking-loss settings of the official PyTorch GRU4Rec (hidasib/GRU4Rec_PyTorch_Official):
    `n_sample` negatives shared by the batch, drawn with probability ~ count^`sample_alpha`
    from the training sequences, BPR-max with score regularisation `bpreg`, ELU(0.5) on the
    scores (the paper 003 anchors: Retailrocket's best alpha 0.4, bpreg 1.95)."""

    n_sample: Count = 2048
    sample_alpha: Probability = 0.4
    bpreg: NonNegativeFloat = 1.95
    elu_alpha: PositiveFloat = 0.5


def bpr_max(positive: torch.Tensor, negative: torch.Tensor, bpreg: float,
            valid: torch.Tensor | None = None) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou 2018, Eq. 8-9) for scores of the targets (N,) and of the
    shared negatives (N, k); `valid` (N, k) False excludes a negative (an accidental hit):

        s_j = softmax_j(r_j),  L = -log sum_j s_j sigmoid(r_i - r_j) + bpreg sum_j s_j r_j^2
    """
    if valid is not None:
        negative_for_softmax = negative.masked_fill(~valid, float("-inf"))
    else:
        negative_for_softmax = negative
    weight = torch.softmax(negative_for_softmax, dim=1)  # (N, k)
    ranked = (weight * torch.sigmoid(positive[:, None] - negative)).sum(1)  # (N,)
    reg = (weight * negative ** 2).sum(1)
    return (-torch.log(ranked + 1e-24) + bpreg * reg).mean()


class GRU4RecPlus(GRU4Rec):
    """GRU4Rec+ (Hidasi & Karatzoglou, CIKM 2018): GRU4Rec trained with BPR-max over popularity
    -sampled shared negatives (the item table is the output table: constrained embedding)."""

    Config = GRU4RecPlusConfig
    paper_name = "GRU4Rec+"
    sample_p: torch.Tensor | None = None

    def fit(self, data: TaskData) -> None:
        seqs = self.training_sequences(data.train)
        counts = np.bincount(seqs[seqs > 0] - 1, minlength=data.n_items).astype(np.float64)
        p = counts ** self.config.sample_alpha  # an unseen item is never drawn
        self.sample_p = torch.from_numpy(p / p.sum()).float()
        super().fit(data)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        seq = batch["seq"]
        inputs, labels = seq[:, :-1], seq[:, 1:]
        hidden = module.sequence(inputs, **encoder_inputs(batch))  # (B, L, d)
        keep = (inputs != 0) & (labels != 0)
        h, target = hidden[keep], labels[keep]  # (N, d), (N,)
        negatives = torch.multinomial(self.sample_p.to(h.device), cfg.n_sample,
                                      replacement=True) + 1  # (k,) shifted ids
        act = nn.functional.elu
        positive = act((h * self.items(target)).sum(-1), cfg.elu_alpha)  # (N,)
        negative = act(h @ self.items(negatives).T, cfg.elu_alpha)  # (N, k)
        return bpr_max(positive, negative, cfg.bpreg, negatives[None, :] != target[:, None])

    def notes(self) -> list[str]:
        cfg = self.config
        return [*[n for n in super().notes() if not n.startswith("objective:")],
                f"objective: BPR-max, {cfg.n_sample} shared negatives ~ count^"
                f"{cfg.sample_alpha:g}, bpreg {cfg.bpreg:g}, ELU({cfg.elu_alpha:g}) on scores"]
