"""What the neural sequential models (SASRec, BERT4Rec, GRU4Rec) share beyond `TorchSeq`.

Training examples come from the train split: a row's history followed by its target is one
sequence s = (s_1, ..., s_n), the newest `max_len + 1` items kept, right-aligned, 0 = padding.
A causal model (SASRec, GRU4Rec) predicts every successor from its prefix (paper 002 §5.1:
"predicting the identity of s_{t+1} for each timestep t"), each position a full-softmax
cross-entropy over all items (RecBench Eq. 7) with the score of Eq. 8, f = v_i^T h_{t}:

    L = - Σ_s Σ_{t=1}^{n-1} log softmax_i(h_t^T v_i)[s_{t+1}].

`sampled_softmax: k` replaces the full softmax with the target against k items drawn uniformly
(shared by the batch; accidental hits masked) for catalogues too large for (N, |I|) logits.

`with_embeddings` builds the LLM2X variants of paper 002 §5.2: the same model with its item
table initialised from an LLM encoder's item vectors reduced by PCA to the model width, and
trained like the ID model.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import polars as pl
import torch
from pydantic import create_model
from torch import nn

from recbench import metrics
from recbench.core.config import Count, Dropout, NonNegativeInt, PositiveFloat
from recbench.models.base import TaskData
from recbench.models.torch_base import (
    SeqConfig,
    TorchSeq,
    _batches,
    build_items,
    pad_histories,
    with_seq_batch_size,
)
from recbench.training.loop import train


def encoder_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A training batch's encoder keyword inputs: everything but the sequences (`row_inputs`)."""
    return {k: v for k, v in batch.items() if k != "seq"}


class SeqModelConfig(SeqConfig):
    """Training settings shared by the neural sequential models (lr 1e-3, RecBench §4.3)."""

    epochs: Count = 200
    patience: NonNegativeInt = 10  # epochs are cheap (one pass over the training users)
    dropout: Dropout = 0.2
    sampled_softmax: Count | None = None  # k uniform negatives instead of the full softmax
    # items="embedding": scale the encoder's (PCA-reduced) vectors by one factor to this std,
    # the ID table's initial scale; the geometry is kept, but logits start near zero rather
    # than at +-30 (None: as they come)
    embedding_std: PositiveFloat | None = 0.02


class SeqModel(TorchSeq):
    """Base of the neural sequential models: per-sequence training tensors and the causal loss.

    Subclasses set `paper_name`, implement `encoder(items)` (a module with `sequence(tokens)
    (B, L) -> (B, L, d)` and `forward(history) (B, L) -> (B, d)`) and may override `loss`.
    """

    Config: ClassVar[type[SeqModelConfig]] = SeqModelConfig
    paper_name: ClassVar[str]
    frozen_items_t: torch.Tensor | None = None  # (d, n_items), contiguous, once trained

    @property
    def model_id(self) -> str:
        return ("LLM2" if self.config.items == "embedding" else "") + self.paper_name

    def training_sequences(self, rows: pl.DataFrame) -> np.ndarray:
        """(n, max_len + 1) int64: history + target of each row, shifted ids, right-aligned."""
        seqs = rows.select(pl.concat_list("history", "target").alias("s"))["s"]
        return pad_histories(seqs, self.config.max_len + 1, align="right")

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        self.n_items = data.n_items
        self.frozen_items_t = None
        self.items = self.item_table(data)
        if cfg.items == "embedding" and cfg.embedding_std is not None:
            with torch.no_grad():
                table = self.items.embedding.weight  # (n_items + 1, D), row 0 = padding
                table.mul_(cfg.embedding_std / table[1:].std().clamp(min=1e-12))
        self.module = self.encoder(self.items)
        seqs = torch.from_numpy(self.training_sequences(data.train))
        valid = data.valid
        rng = np.random.default_rng(self.ctx.seed)
        n = seqs.shape[0]
        self.config = cfg = with_seq_batch_size(cfg, n)

        extras = self.row_inputs(data.train)  # per-row encoder inputs beside the tokens

        def batches(_epoch):
            for idx in _batches(n, cfg.batch_size, rng):
                yield {"seq": seqs[idx], **{k: v[idx] for k, v in extras.items()}}

        def validate(_module):
            return metrics.valid_ndcg10(self.score_items(valid), valid["target"].to_numpy())

        self.result = train(self.module, batches, self.loss, validate, cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), rng=rng)
        self.module.eval()
        with torch.no_grad():  # trained: every item's vector once, not at every scoring call
            self.frozen_items_t = self.item_matrix().T.contiguous()

    def row_inputs(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        """Per-row tensors the encoder takes beside the tokens, as keyword arguments of its
        `sequence` and `forward` (none by default; the guided variants pass `user`)."""
        return {}

    def item_table(self, data: TaskData) -> nn.Module:
        """The item table the encoder reads and scores with (`build_items` by default; a
        model with its own item pipeline, such as FE-SASRec, overrides this)."""
        return build_items(self.config, data, self.ctx)

    def histories(self, rows: pl.DataFrame) -> torch.Tensor:
        """(n, max_len) right-aligned shifted ids; a single row (the latency protocol's path)
        skips the vectorised polars padding, whose fixed cost dominates at batch 1, and is not
        padded at all: (1, its length), exact as positions are right-aligned and padding masked."""
        length = self.config.max_len
        if rows.height != 1:
            return torch.from_numpy(pad_histories(rows["history"], length, align="right"))
        history = rows["history"][0]
        ids = (history.to_numpy()[-length:].astype(np.int64) + 1 if history is not None
               else np.zeros(0, dtype=np.int64))
        out = np.zeros((1, max(len(ids), 1)), dtype=np.int64)  # an empty history: one pad
        out[0, out.shape[1] - len(ids):] = ids
        return torch.from_numpy(out)

    @torch.inference_mode()
    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        device = self._device()
        extras = {k: v.to(device) for k, v in self.row_inputs(rows).items()}
        user = self.module(self.histories(rows).to(device), **extras)  # (B, d)
        table_t = (self.frozen_items_t if self.frozen_items_t is not None
                   else self.item_matrix().T)  # (d, n_items)
        return (user @ table_t).cpu().numpy()  # Eq. 8: v_i^T h for every item, (B, n_items)

    def item_logits(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor,
                                                                             torch.Tensor]:
        """Logits and class targets for hidden states (N, d) whose next items are `labels` (N,)
        (shifted ids): full softmax over every item, or the sampled softmax."""
        k = self.config.sampled_softmax
        if k is None:
            return hidden @ self.item_matrix().T, labels - 1  # (N, |I|), (N,)
        negatives = torch.randint(1, self.n_items + 1, (k,), device=hidden.device)  # (k,)
        positive = (hidden * self.items(labels)).sum(-1, keepdim=True)  # (N, 1)
        negative = hidden @ self.items(negatives).T  # (N, k)
        negative = negative.masked_fill(negatives[None, :] == labels[:, None], float("-inf"))
        logits = torch.cat([positive, negative], dim=1)  # (N, 1 + k), the target in column 0
        return logits, torch.zeros_like(labels)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The causal objective: every position with a history predicts its successor."""
        seq = batch["seq"]  # (B, L + 1)
        inputs, labels = seq[:, :-1], seq[:, 1:]  # (B, L) each
        hidden = module.sequence(inputs, **encoder_inputs(batch))  # (B, L, d): h_t sees s_1..s_t
        keep = (inputs != 0) & (labels != 0)  # (B, L)
        logits, target = self.item_logits(hidden[keep], labels[keep])  # (N, C), (N,)
        return nn.functional.cross_entropy(logits, target)

    def notes(self) -> list[str]:
        objective = ("full softmax" if self.config.sampled_softmax is None
                     else f"sampled softmax ({self.config.sampled_softmax} uniform negatives)")
        return [*super().notes(), f"objective: {objective}"]


def with_embeddings(model: type[SeqModel], pca_dim: int = 64) -> type[SeqModel]:
    """The LLM2X variant of `model` (paper 002 §5.2): a subclass whose Config fixes
    items="embedding" (a one-value Literal) with the encoder's vectors reduced by PCA
    (fitted on training items, paper 002 §7.3.2: "usually, PCA is the optimal reduction")
    to `pca_dim`, the model width, so the vectors initialise the item table directly."""
    name = f"LLM2{model.__name__}"
    config = create_model(f"{name}Config", __base__=model.Config, __module__=model.__module__,
                          items=(Literal["embedding"], "embedding"),
                          pca_dim=(Count | None, pca_dim))
    return type(name, (model,), {
        "Config": config, "__module__": model.__module__, "__qualname__": name,
        "__doc__": f"LLM2{model.paper_name} (paper 002 §5.2): {model.__doc__}"})
