"""Product quantisation adapter, as VQ-Rec (Hou et al., WWW 2023; Jégou et al. 2011).

Fitting (numpy, on the training items only): the D input dimensions are split into
`n_codebooks` contiguous sub-spaces and each is clustered by k-means (k-means++ seeding, Lloyd
iterations, best of 3) into `n_codes` centroids; every item (training or not) gets the index of its
nearest centroid in each sub-space: `codes` (n_items, M) in [0, n_codes).

Adapter (torch, learned end to end): one embedding per (codebook, code), and an item's vector is
the mean of its M code embeddings (VQ-Rec's `code_embedding` mean). VQ-Rec runs faiss
`OPQ32,IVF1,PQ32x8` (a learned rotation first); this is plain PQ (no rotation), and "PQ w/ PCA"
puts PCA before it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbench.core.errors import ConfigError


def kmeans(x: np.ndarray, k: int, seed: int = 0, iters: int = 50, n_init: int = 3
           ) -> np.ndarray:
    """Centroids (k, d) of the rows of `x`: greedy k-means++ seeding (2 + log k candidates
    per centre, as scikit-learn) and Lloyd iterations; the best of `n_init` runs (inertia)."""
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(n_init):
        c = _lloyd(x, _kmeanspp(x, min(k, x.shape[0]), rng), iters)
        inertia = ((x - c[nearest(x, c)]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    return best


def _kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    trials = 2 + int(np.log(k))
    centroids = np.empty((k, x.shape[1]), dtype=np.float64)
    centroids[0] = x[rng.integers(n)]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for j in range(1, k):
        total = d2.sum()
        if total <= 0:
            centroids[j] = x[rng.integers(n)]
            continue
        candidates = rng.choice(n, size=trials, p=d2 / total)
        options = [np.minimum(d2, ((x - x[c]) ** 2).sum(1)) for c in candidates]
        pick = int(np.argmin([o.sum() for o in options]))
        centroids[j], d2 = x[candidates[pick]], options[pick]
    return centroids


def _lloyd(x: np.ndarray, centroids: np.ndarray, iters: int) -> np.ndarray:
    for _ in range(iters):
        assign = nearest(x, centroids)
        moved = False
        for j in range(len(centroids)):
            members = x[assign == j]
            if len(members):
                new = members.mean(0)
                moved |= not np.allclose(new, centroids[j])
                centroids[j] = new
        if not moved:
            break
    return centroids


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n,) index of each row's nearest centroid (squared Euclidean)."""
    d = (x ** 2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids ** 2).sum(1)[None, :]
    return d.argmin(1)


class ProductQuantizer:
    """PQ codebooks fitted on some rows; `encode` gives codes, `decode` the reconstruction."""

    def __init__(self, n_codebooks: int = 8, n_codes: int = 256, seed: int = 0):
        if n_codebooks < 1 or n_codes < 1:
            raise ConfigError(f"PQ needs n_codebooks >= 1 and n_codes >= 1, got {n_codebooks}, "
                              f"{n_codes}")
        self.n_codebooks, self.n_codes, self.seed = n_codebooks, n_codes, seed

    def fit(self, x: np.ndarray) -> ProductQuantizer:
        x = np.asarray(x, dtype=np.float64)
        if self.n_codebooks > x.shape[1]:
            raise ConfigError(f"PQ: {self.n_codebooks} codebooks exceed the input width "
                              f"{x.shape[1]}")
        self.splits = np.array_split(np.arange(x.shape[1]), self.n_codebooks)
        self.centroids = [kmeans(x[:, cols], self.n_codes, self.seed + m)
                          for m, cols in enumerate(self.splits)]
        return self

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.stack([nearest(x[:, cols], c) for cols, c in zip(self.splits, self.centroids,
                                                                    strict=True)], axis=1)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.concatenate([c[codes[:, m]] for m, c in enumerate(self.centroids)], axis=1)

    def reconstruction_error(self, x: np.ndarray) -> float:
        """Mean squared error of the rows' reconstruction from their codes."""
        x = np.asarray(x, dtype=np.float64)
        return float(((x - self.decode(self.encode(x))) ** 2).sum(1).mean())


class PQAdapter(nn.Module):
    """Shifted item ids (..., 0 = padding) -> (..., dim): mean of the item's code embeddings."""

    uses_codes = True

    def __init__(self, codes: np.ndarray, n_codes: int, dim: int):
        super().__init__()
        n, m = codes.shape
        offsets = np.arange(m) * n_codes + 1  # 0 = padding row
        table = np.zeros((n + 1, m), dtype=np.int64)
        table[1:] = codes + offsets
        self.register_buffer("codes", torch.from_numpy(table), persistent=False)
        self.embedding = nn.Embedding(m * n_codes + 1, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.codes[ids]).mean(-2)
