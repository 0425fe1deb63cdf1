"""Adapted semantic item vectors fused with item IDs (paper 000 §3.3): the item table a
sequential model (SASRec) reads, for its inputs and its output scores alike (tied, as
LLMEmb's adapter).

    v_i = frozen LLM vector of item i (n_items, D), optionally PCA-reduced first (PCA fitted
          on the training items only: `recbench.items.adapters.reduce`), then divided by one
          factor, the std of the training items' values
    s_i = A(v_i)           A = linear | mlp | moe | pq (learned end to end; PQ codes fitted on
                           the training items only)

Fusion with ID embeddings:
- `replace`: e_i = s_i (dim wide): the semantic vector alone;
- `concat`: e_i = [s_i (dim - id_dim) ‖ u_i (id_dim)], u_i an ID embedding (initialised from
  a pre-trained SASRec's item table when given, else N(0, 0.02); trained). `id_dim` defaults
  to dim // 2: the width is split evenly, so the concatenation is as wide as `replace`;
- `align`: e_i = s_i, plus `align_weight` x LLMEmb's soft contrastive loss
  (`encoders.contrastive`) between s and the frozen item vectors of a pre-trained SASRec over
  the batch's distinct target items, temperature `align_tau` (LLMEmb: weight 0.01, tau 2).

Padding (id 0) maps to a zero vector in every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from recbench.core.errors import ConfigError
from recbench.items import ItemTable
from recbench.items.adapters import LEARNED_ADAPTERS, reduce
from recbench.items.adapters.pq import ProductQuantizer
from recbench.items.encoders.contrastive import soft_contrastive_loss

Fusion = Literal["replace", "concat", "align"]
FUSIONS = ("replace", "concat", "align")


@dataclass(frozen=True)
class AdapterSettings:
    """How LLM vectors become item vectors (see the module docstring)."""

    adapter: str = "linear"
    pca_dim: int | None = None
    fusion: Fusion = "replace"
    id_dim: int | None = None
    align_weight: float = 0.01
    align_tau: float = 2.0
    dropout: float = 0.2
    n_experts: int = 8
    pq_codebooks: int = 8
    pq_codes: int = 256
    seed: int = 0


class AdaptedTable(ItemTable):
    """Shifted ids (..., 0 = padding) -> (..., dim) fused item vectors."""

    def __init__(self, vectors: np.ndarray, known: np.ndarray, dim: int,
                 settings: AdapterSettings, id_vectors: np.ndarray | None = None):
        super().__init__()
        s = settings
        if s.fusion not in FUSIONS:
            raise ConfigError(f"fusion {s.fusion!r}: expected one of {', '.join(FUSIONS)}")
        if s.adapter not in LEARNED_ADAPTERS:
            raise ConfigError(f"adapter {s.adapter!r}: expected one of "
                              f"{', '.join(LEARNED_ADAPTERS.names())}")
        self.dim, self.settings = dim, s
        self.info: dict[str, Any] = {"adapter": s.adapter, "fusion": s.fusion,
                                     "input_dim": int(vectors.shape[1])}
        x = np.asarray(vectors, dtype=np.float32)
        if s.pca_dim is not None:
            reduced = reduce(x, "pca", s.pca_dim, fit_rows=known)
            x = reduced.vectors
            self.info["pca"] = reduced.info
        # one global factor: the training items' vectors get std 1 (raw LLM states reach
        # hundreds in a few dimensions, which would saturate SASRec's attention at init);
        # directions and relative distances are kept
        scale = float(x[known].std())
        x = x / scale if scale > 0 else x
        self.info["scale"] = scale
        id_dim = 0
        if s.fusion == "concat":
            id_dim = s.id_dim if s.id_dim is not None else dim // 2
            if not 1 <= id_dim < dim:
                raise ConfigError(f"concat fusion: id_dim {id_dim} must be in 1..{dim - 1}")
        sem_dim = dim - id_dim
        self.info.update({"semantic_dim": sem_dim, "id_dim": id_dim})
        table = np.zeros((x.shape[0] + 1, x.shape[1]), dtype=np.float32)
        table[1:] = x
        self.register_buffer("semantic", torch.from_numpy(table), persistent=False)
        cls = LEARNED_ADAPTERS.load(s.adapter)
        if s.adapter == "pq":
            pq = ProductQuantizer(s.pq_codebooks, s.pq_codes, s.seed).fit(x[known])
            self.adapter = cls(pq.encode(x), pq.centroids[0].shape[0], sem_dim)
            self.info["pq"] = {"codebooks": s.pq_codebooks,
                               "codes": int(pq.centroids[0].shape[0]),
                               "fit_items": int(len(known)),
                               "train_mse": pq.reconstruction_error(x[known])}
        elif s.adapter == "moe":
            self.adapter = cls(x.shape[1], sem_dim, n_experts=s.n_experts, dropout=s.dropout)
        else:
            self.adapter = cls(x.shape[1], sem_dim, dropout=s.dropout)
        self.id_embedding: nn.Embedding | None = None
        if id_dim:
            self.id_embedding = nn.Embedding(x.shape[0] + 1, id_dim, padding_idx=0)
            nn.init.normal_(self.id_embedding.weight, std=0.02)
            if id_vectors is not None:
                self._check_ids(id_vectors, x.shape[0], id_dim)
                with torch.no_grad():
                    self.id_embedding.weight[1:] = torch.from_numpy(id_vectors)
            with torch.no_grad():
                self.id_embedding.weight[0].zero_()
        self.register_buffer("target_ids", None, persistent=False)
        if s.fusion == "align":
            if id_vectors is None:
                raise ConfigError("align fusion needs the item vectors of a pre-trained SASRec")
            self._check_ids(id_vectors, x.shape[0], sem_dim)
            ids = np.zeros((x.shape[0] + 1, sem_dim), dtype=np.float32)
            ids[1:] = id_vectors
            self.target_ids = torch.from_numpy(ids)

    @staticmethod
    def _check_ids(id_vectors: np.ndarray, n: int, width: int) -> None:
        if id_vectors.shape != (n, width):
            raise ConfigError(f"pre-trained ID vectors have shape {id_vectors.shape}, "
                              f"expected ({n}, {width})")

    def semantic_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        if self.adapter.uses_codes:
            return self.adapter(ids)
        return self.adapter(self.semantic[ids])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.semantic_vectors(ids)
        if self.id_embedding is not None:
            out = torch.cat([out, self.id_embedding(ids)], dim=-1)
        return out * (ids != 0).unsqueeze(-1).to(out.dtype)

    def aux_loss(self, target_ids: torch.Tensor) -> torch.Tensor | None:
        """`align`: weight x soft contrastive(s, pre-trained ID vectors) over the distinct
        non-padding target ids; None for the other fusions."""
        if self.target_ids is None:
            return None
        ids = torch.unique(target_ids[target_ids != 0])
        s = self.settings
        return s.align_weight * soft_contrastive_loss(self.semantic_vectors(ids),
                                                      self.target_ids[ids], s.align_tau)

    def describe(self) -> str:
        pca = f"PCA {self.settings.pca_dim} -> " if self.settings.pca_dim else ""
        return (f"adapted ({self.info['input_dim']}-d LLM vectors -> {pca}{self.settings.adapter}"
                f" -> {self.info['semantic_dim']}, fusion {self.settings.fusion}"
                + (f", id {self.info['id_dim']}" if self.info["id_dim"] else "") + ")")
