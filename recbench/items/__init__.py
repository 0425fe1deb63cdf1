"""Item representations as one component every model takes (RecBench Fig. 2, left).

Convention for every table: item ids are shifted by one in tensors and 0 is padding, so a
history batch is an int64 tensor (batch, 20) with 0 where a user has fewer items.

- `id`: a learned vector per item seen in the training split; unseen items share an OOV row.
- `text`: the mean of learned word embeddings of the item's text (Eq. 4); words from the
  training split's items only; no pretrained vectors.
- `embedding`: a vector from an LLM/encoder (Eq. 5, `recbench.items.embeddings`), projected to
  the model dimension and fine-tuned (the LLM2X initialisation of paper 002).
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from recbench.models.base import TaskData

Representation = Literal["id", "text", "embedding"]
PAD = 0
WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def training_items(data: TaskData) -> np.ndarray:
    """Items that occur in the training split (histories, candidates or targets)."""
    train = data.train
    cols = [train["history"].explode().drop_nulls()]
    cols.append(train["item_id"] if "item_id" in train.columns else train["target"])
    return np.unique(pl.concat([c.cast(pl.Int64) for c in cols]).to_numpy())


class ItemTable(nn.Module):
    """Maps shifted item ids (any shape, 0 = padding) to vectors (..., dim)."""

    dim: int
    oov_items: int = 0  # catalogue items without their own row (reported in records)

    def describe(self) -> str:
        return type(self).__name__


class IdTable(ItemTable):
    """One learned row per training item, a shared OOV row for the rest, a zero padding row."""

    def __init__(self, n_items: int, known: np.ndarray, dim: int):
        super().__init__()
        self.dim = dim
        row_of = np.full(n_items + 1, len(known) + 1, dtype=np.int64)  # default: OOV row
        row_of[0] = PAD
        row_of[known + 1] = np.arange(1, len(known) + 1)
        self.register_buffer("row_of", torch.from_numpy(row_of), persistent=False)
        self.embedding = nn.Embedding(len(known) + 2, dim, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[PAD].zero_()
        self.oov_items = n_items - len(known)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.row_of[ids])

    def describe(self) -> str:
        return f"id ({self.embedding.num_embeddings - 2} learned rows, {self.oov_items} OOV items)"


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words (a documented, dependency-free stand-in for nltk)."""
    return WORD.findall(text.lower())


class TextTable(ItemTable):
    """Mean of learned word embeddings over the item's text (Eq. 4)."""

    def __init__(self, texts: list[str], known: np.ndarray, dim: int, max_words: int = 32,
                 min_count: int = 1):
        super().__init__()
        self.dim = dim
        tokens = [tokenize(t)[:max_words] for t in texts]
        counts: dict[str, int] = {}
        for i in known:
            for w in tokens[i]:
                counts[w] = counts.get(w, 0) + 1
        vocab = {w: j + 2 for j, w in enumerate(sorted(w for w, c in counts.items()
                                                       if c >= min_count))}  # 0 pad, 1 unk
        words = np.zeros((len(texts) + 1, max_words), dtype=np.int64)
        for i, toks in enumerate(tokens):
            ids = [vocab.get(w, 1) for w in toks] or [1]
            words[i + 1, :len(ids)] = ids
        self.register_buffer("words", torch.from_numpy(words), persistent=False)
        self.embedding = nn.Embedding(len(vocab) + 2, dim, padding_idx=PAD)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.vocab_size = len(vocab)
        self.oov_items = int(sum(1 for toks in tokens if not any(w in vocab for w in toks)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w = self.words[ids]  # (..., L)
        mask = (w != PAD).unsqueeze(-1).float()
        vec = (self.embedding(w) * mask).sum(-2) / mask.sum(-2).clamp(min=1.0)
        return vec * (ids != PAD).unsqueeze(-1).float()

    def describe(self) -> str:
        return f"text ({self.vocab_size} words from training items, {self.oov_items} items " \
               "with no known word)"


class PretrainedTable(ItemTable):
    """Frozen-or-tuned encoder vectors (n_items, D) projected to `dim` (Eq. 5)."""

    def __init__(self, vectors: np.ndarray, dim: int, freeze: bool = False):
        super().__init__()
        self.dim = dim
        table = np.zeros((vectors.shape[0] + 1, vectors.shape[1]), dtype=np.float32)
        table[1:] = vectors
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=freeze,
                                                      padding_idx=PAD)
        self.project = (nn.Identity() if vectors.shape[1] == dim
                        else nn.Linear(vectors.shape[1], dim, bias=False))
        self.source_dim = vectors.shape[1]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project(self.embedding(ids)) * (ids != PAD).unsqueeze(-1).float()

    def describe(self) -> str:
        return f"embedding ({self.source_dim}-d encoder vectors -> {self.dim})"
