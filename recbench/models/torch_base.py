"""Shared machinery of the learned (torch) models: batching, item tables, train/score plumbing.

A CTR model only defines its interaction function Φ(u, t) (Eq. 3) as an `nn.Module` mapping the
user vector u (mean of history item vectors, Eq. 2) and item vector t to a logit. A sequential
model only defines a user encoder mapping a history to a vector; scores are dot products with
every item vector (Eq. 8) and training is full-softmax cross-entropy (Eq. 7).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal, TypeVar

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel
from torch import nn

from recbench import metrics
from recbench.core.config import Count, PositiveFloat
from recbench.items import IdTable, ItemTable, PretrainedTable, TextTable, training_items
from recbench.models.base import Recommender, TaskData
from recbench.training.loop import TrainConfig, describe, train

MAX_HISTORY = 20


def pad_histories(histories: pl.Series, max_len: int = MAX_HISTORY,
                  align: Literal["left", "right"] = "left") -> np.ndarray:
    """(n, max_len) int64 of item ids + 1 (0 = padding); the newest `max_len` items kept.

    `align="right"` puts the newest item in the last column (what causal models read).
    """
    h = histories.list.tail(max_len)
    lengths = h.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = h.explode().drop_nulls().to_numpy().astype(np.int64) + 1
    out = np.zeros((len(lengths), max_len), dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(len(flat)) - starts
    if align == "right":
        pos = pos + np.repeat(max_len - lengths, lengths)
    out[rows, pos] = flat
    return out


class ItemsConfig(TrainConfig):
    """How items are represented (see recbench.items) and the model width."""

    items: Literal["id", "text", "embedding"] = "id"
    dim: Count = 64
    encoder: str = "minilm-l6"  # for items="embedding": an alias, hub id or local path
    pooling: Literal["mean", "max", "last", "eol"] = "mean"
    pca_dim: Count | None = None  # reduce encoder vectors (fitted on training items only)
    freeze_items: bool = False
    text_max_words: Count = 32


def build_items(cfg: ItemsConfig, data: TaskData, ctx) -> ItemTable:
    known = training_items(data)
    if cfg.items == "id":
        return IdTable(data.n_items, known, cfg.dim)
    if cfg.items == "text":
        return TextTable(data.items["text"].to_list(), known, cfg.dim, cfg.text_max_words)
    from recbench.items.embeddings import item_vectors

    vectors = item_vectors(data, encoder=cfg.encoder, pooling=cfg.pooling, pca_dim=cfg.pca_dim,
                           fit_items=known, ctx=ctx)
    return PretrainedTable(vectors, cfg.dim, freeze=cfg.freeze_items)


SEQ_STEPS_PER_EPOCH = 8  # the SeqRec batch size is capped so an epoch has at least this many steps
SEQ_MIN_BATCH = 32


def seq_batch_size(n_train: int, batch_size: int) -> int:
    """The batch size a SeqRec model trains with: `batch_size` (256 by default, RecBench §4.3),
    capped at n / 8 (never below 32) so that a small training split still gets about 8 optimiser
    steps an epoch. Early stopping counts epochs: at 2-3 steps an epoch, patience ran out
    before the model left its initial point (ml-latest-small's 486 sequences at 256: valid
    NDCG@10 stayed 0). Splits of 2,048 sequences or more train at `batch_size` unchanged."""
    return min(batch_size, max(SEQ_MIN_BATCH, n_train // SEQ_STEPS_PER_EPOCH))


C = TypeVar("C", bound=BaseModel)


def with_seq_batch_size(cfg: C, n_train: int) -> C:
    """`cfg` with `batch_size` replaced by what the model trains with (`seq_batch_size`)."""
    return cfg.model_copy(update={"batch_size": seq_batch_size(n_train, cfg.batch_size)})


def seq_batch_note(batch_size: int) -> str:
    """The record note saying which batch size a SeqRec model trained with, and why."""
    return (f"batch size {batch_size} (seq_batch_size: at most n / {SEQ_STEPS_PER_EPOCH}, "
            f"at least {SEQ_MIN_BATCH})")


def _batches(n: int, size: int, rng: np.random.Generator | None):
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, size):
        yield order[start:start + size]


# --- CTR ------------------------------------------------------------------------------------

class CTRConfig(ItemsConfig):
    batch_size: Count = 5000  # RecBench §4.3 for deep CTR models
    lr: PositiveFloat = 1e-3


class CTRNet(nn.Module):
    """items -> (u, t) -> Φ -> logit."""

    def __init__(self, items: ItemTable, phi: nn.Module):
        super().__init__()
        self.items, self.phi = items, phi

    def forward(self, history: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        # Each distinct item of the batch is represented once and gathered (exact, gradients
        # included): a text table would otherwise average 32 word vectors for every one of the
        # B x 20 history slots, most of them repeats of the batch's popular items.
        ids, inverse = torch.unique(torch.cat((history.reshape(-1), item)), return_inverse=True)
        vectors = self.items(ids)  # (U, d)
        hist = vectors[inverse[:history.numel()]].view(*history.shape, -1)  # (B, L, d)
        mask = (history != 0).unsqueeze(-1).float()
        user = (hist * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # Eq. 2
        return self.phi(user, vectors[inverse[history.numel():]]).reshape(-1)  # Eq. 3


class TorchCTR(Recommender):
    """Base of the deep CTR models; subclasses implement `interaction(dim) -> Φ`."""

    Config: ClassVar[type[CTRConfig]] = CTRConfig
    tasks = ("ctr",)
    mode = "train"
    representation: ClassVar[str | None] = None  # fixed by the group (A id, B text, C emb)

    @abstractmethod
    def interaction(self, dim: int) -> nn.Module:
        """Φ: a module mapping (u (B, d), t (B, d)) to logits (B,) or (B, 1)."""

    @property
    def model_id(self) -> str:
        suffix = {"id": "", "text": "_text", "embedding": "_emb"}[self.config.items]
        return f"{type(self).__name__}{suffix}"

    def tensors(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        out = {"history": torch.from_numpy(pad_histories(rows["history"])),
               "item": torch.from_numpy(rows["item_id"].to_numpy().astype(np.int64) + 1)}
        if "label" in rows.columns:
            out["label"] = torch.from_numpy(rows["label"].to_numpy().astype(np.float32))
        return out

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        items = build_items(cfg, data, self.ctx)
        self.net = CTRNet(items, self.interaction(cfg.dim))
        train_t = self.tensors(data.train)
        valid = data.valid
        rng = np.random.default_rng(self.ctx.seed)
        n = data.train.height

        def batches(_epoch):
            for idx in _batches(n, cfg.batch_size, rng):
                yield {k: v[idx] for k, v in train_t.items()}

        def loss_fn(net, b):
            logits = net(b["history"], b["item"])
            return nn.functional.binary_cross_entropy_with_logits(logits, b["label"])

        def validate(net):
            scores = self._predict(net, valid)
            return metrics.gauc(valid["user_id"].to_numpy(), valid["label"].to_numpy(), scores)

        self.result = train(self.net, batches, loss_fn, validate, cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), rng=rng)
        self.net.eval()

    @torch.no_grad()
    def _predict(self, net: nn.Module, rows: pl.DataFrame) -> np.ndarray:
        t = self.tensors(rows)
        device = next(net.parameters()).device
        return torch.sigmoid(net(t["history"].to(device), t["item"].to(device))).cpu().numpy()

    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        return self._predict(self.net, rows)

    def notes(self) -> list[str]:
        return [f"items: {self.net.items.describe()}", f"training: {describe(self.result)}"]


# --- SeqRec ---------------------------------------------------------------------------------

class SeqConfig(ItemsConfig):
    batch_size: Count = 256
    lr: PositiveFloat = 1e-3
    max_len: Count = MAX_HISTORY


class TorchSeq(Recommender):
    """Base of the neural sequential models; subclasses implement `encoder(items) -> module`.

    The encoder maps right-aligned histories (B, L) to user vectors (B, d); an item's score is
    the dot product with its vector (Eq. 8); training minimises full-softmax cross-entropy over
    all items (Eq. 7) for the training rows' targets. Subclasses with per-position training
    (SASRec's causal objective) override `loss`.
    """

    Config: ClassVar[type[SeqConfig]] = SeqConfig
    tasks = ("seq",)
    mode = "train"

    @abstractmethod
    def encoder(self, items: ItemTable) -> nn.Module:
        """A module (holding `items`, so they train) mapping histories (B, L) to users (B, d)."""

    def tensors(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        out = {"history": torch.from_numpy(pad_histories(rows["history"], self.config.max_len,
                                                         align="right"))}
        if "target" in rows.columns:
            out["target"] = torch.from_numpy(rows["target"].to_numpy().astype(np.int64))
        return out

    def item_matrix(self) -> torch.Tensor:
        """(n_items, d) vectors of every item (row i = item id i)."""
        ids = torch.arange(1, self.n_items + 1, device=self._device())
        return self.items(ids)

    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        user = module(batch["history"])
        logits = user @ self.item_matrix().T
        return nn.functional.cross_entropy(logits, batch["target"])

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        self.n_items = data.n_items
        self.items = build_items(cfg, data, self.ctx)
        self.module = self.encoder(self.items)
        train_t = self.tensors(data.train)
        valid = data.valid
        rng = np.random.default_rng(self.ctx.seed)
        n = data.train.height
        self.config = cfg = with_seq_batch_size(cfg, n)

        def batches(_epoch):
            for idx in _batches(n, cfg.batch_size, rng):
                yield {k: v[idx] for k, v in train_t.items()}

        def validate(_module):
            return metrics.valid_ndcg10(self.score_items(valid), valid["target"].to_numpy())

        self.result = train(self.module, batches, self.loss, validate, cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), rng=rng)
        self.module.eval()

    @torch.no_grad()
    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        t = self.tensors(rows)
        user = self.module(t["history"].to(self._device()))
        return (user @ self.item_matrix().T).cpu().numpy()

    def notes(self) -> list[str]:
        return [f"items: {self.items.describe()}", f"training: {describe(self.result)}",
                seq_batch_note(self.config.batch_size)]
