"""What the nine deep CTR models share beyond `TorchCTR`: the two-field input, the batch-size
rule, a fast scoring path, paper-style model ids and the registered `_text` / `_emb` variants.

RecBench §3.1 gives every model two "fields": the user vector u (mean of the history's item
vectors, Eq. 2) and the candidate's item vector t (Eq. 2 for ids, Eq. 4 for text, Eq. 5 for
encoder embeddings), both (B, d). Models over field embeddings read `stack(u, t)` (B, 2, d);
models over the flat input read `concat(u, t)` (B, 2d).

Deviations from the papers, all for training on small data from small initial item vectors
(the item tables start at std 0.02, so an MLP first sees near-zero inputs and sits on a plateau
for hundreds of steps before it learns the u-t interaction that decides clicks):
- batch size `auto_batch_size(n)` instead of a fixed 5000 (the same at the paper's 100k rows);
- batch norm in every MLP (RecBench's released code: none) and layer norm in AutoInt's
  interacting layers; batch norm is folded into the Linear layers at inference, so it costs no
  latency;
- 50 epochs with early stopping after 10 epochs without a better validation GAUC (on small
  data a lucky early validation score would otherwise stop a model before it leaves the plateau).
Dropout 0.1 is RecBench's released setting. Widths are smaller than that code's 3 x 1000 MLPs
(256-128-64), which fits the two 64-d fields and per-sample CPU latency; set `hidden` for more.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import create_model

from recbench.core.config import Count, Dropout, NonNegativeInt
from recbench.models.base import TaskData
from recbench.models.ctr.batch_one import batch_one_scorer
from recbench.models.layers.mlp import fold_for_inference
from recbench.models.torch_base import MAX_HISTORY, CTRConfig, TorchCTR, pad_histories

PAPER_BATCH = 5000  # RecBench §4.3: batch size of every deep CTR model
Activation = Literal["relu", "gelu", "silu", "tanh", "leaky_relu", "prelu"]


def stack(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Field embeddings: (B, d), (B, d) -> (B, 2, d)."""
    return torch.stack((u, t), dim=1)


def concat(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Flat input x0: (B, d), (B, d) -> (B, 2d)."""
    return torch.cat((u, t), dim=-1)


def auto_batch_size(n_train: int) -> int:
    """min(5000, max(256, n / 20)): the paper's 5000 on its 100k-row fine-tune sets, and still
    about 20 optimiser steps per epoch on small data, where 5000 would give one or two.

    A size leaving a last batch of one row is bumped by one (batch norm cannot train on it).
    """
    size = min(PAPER_BATCH, max(256, n_train // 20))
    return size + 1 if n_train % size == 1 else size


class DeepCTRConfig(CTRConfig):
    """Training settings shared by the deep CTR models (lr 1e-3 as in RecBench §4.3)."""

    batch_size: Count | None = None  # None: auto_batch_size(n_train) (5000 at the paper's scale)
    epochs: Count = 50
    patience: NonNegativeInt = 10
    dropout: Dropout = 0.1


class DeepCTR(TorchCTR):
    """Base of the deep CTR models: subclasses set `paper_name` and implement `interaction`."""

    Config: ClassVar[type[DeepCTRConfig]] = DeepCTRConfig
    paper_name: ClassVar[str]

    @property
    def model_id(self) -> str:
        suffix = {"id": "", "text": "_text", "embedding": "_emb"}[self.config.items]
        return f"{self.paper_name}{suffix}"  # RecBench's names: DNN, DNN_text, DNN_emb

    def fit(self, data: TaskData) -> None:
        if self.config.batch_size is None:
            self.config = self.config.model_copy(
                update={"batch_size": auto_batch_size(data.train.height)})
        self.n_items = data.n_items
        super().fit(data)
        self._prepare_scoring()

    @torch.no_grad()
    def _prepare_scoring(self) -> None:
        """Exact inference shortcuts: every item's vector t computed once (row 0 = padding), as
        the item tables are deterministic at inference, and Φ with batch norm folded away."""
        ids = torch.arange(self.n_items + 1, device=next(self.net.parameters()).device)
        self.item_vectors = self.net.items(ids)  # (n_items + 1, d)
        self.scorer = fold_for_inference(self.net.phi)
        self.score_one, self.score_one_kind = batch_one_scorer(self.item_vectors, self.scorer)

    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        if rows.height == 1:  # the latency protocol's path: one row, no padding, fewest ops
            history = rows["history"][0]
            ids = (history.to_numpy()[-MAX_HISTORY:].astype(np.int64) + 1 if history is not None
                   else np.zeros(0, dtype=np.int64))
            return self.score_one(ids, int(rows["item_id"][0]) + 1)  # batch_one.py
        return self._predict_batch(rows)

    @torch.inference_mode()
    def _predict_batch(self, rows: pl.DataFrame) -> np.ndarray:
        table = self.item_vectors  # (n_items + 1, d), row 0 = padding
        history = torch.from_numpy(pad_histories(rows["history"])).to(table.device)
        user = F.embedding_bag(history, table, mode="mean", padding_idx=0)  # Eq. 2: (B, d)
        ids = torch.from_numpy(rows["item_id"].to_numpy().astype(np.int64) + 1)
        item = table[ids.to(table.device)]  # (B, d)
        logits = self.scorer(user, item).reshape(-1)  # Eq. 3
        return torch.sigmoid(logits).cpu().numpy()

    def notes(self) -> list[str]:
        return [*super().notes(), f"batch size {self.config.batch_size}",
                f"batch-1 scoring (latency): {self.score_one_kind}"]


def with_items(model: type[DeepCTR], items: Literal["text", "embedding"]) -> type[DeepCTR]:
    """The registered group B (`text`) or C (`embedding`) variant of `model`.

    A subclass whose Config fixes `items` (a one-value Literal), so `--group B --model DNN_text`
    needs no `--set items=text` and cannot silently run on ids.
    """
    suffix = {"text": "Text", "embedding": "Emb"}[items]
    name = f"{model.__name__}{suffix}"
    config = create_model(f"{name}Config", __base__=model.Config, __module__=model.__module__,
                          items=(Literal[items], items))
    label = {"text": "_text (RecBench group B, Eq. 4)", "embedding": "_emb (group C, Eq. 5)"}
    return type(name, (model,), {
        "Config": config, "representation": items, "__module__": model.__module__,
        "__qualname__": name, "__doc__": f"{model.paper_name}{label[items]}: {model.__doc__}"})
