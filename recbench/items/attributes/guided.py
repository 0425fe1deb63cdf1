"""Guided embeddings inside a sequential recommender (paper 003 §3.2, A.5, A.6).

Normalisation (A.5): each aspect (column) of the raw 1-10 scores is centred on its mean over
the items and divided by its standard deviation, then multiplied by the standard deviation of
Xavier (Glorot) normal initialisation of the table it joins, sigma = sqrt(2 / (fan_in +
fan_out)) with (fan_out, fan_in) = (rows, width) of the refined item table, as
`torch.nn.init.xavier_normal_` computes for that weight. An aspect constant over the items
becomes 0. (Per aspect, so that every aspect weighs the same; the paper does not say.)
The alternative of §3.2.1 (Eq. 8a/8b) is a learned affine map g -> W g + b of the raw scores
(`guided_norm=linear`), initialised to the A.5 map and trained with the model; the raw scores
stay frozen.

Refined item embedding (§3.2.2, Eq. 9): e_i = [e^b_i (d - g) ; gamma * g_i (g)], total width d,
the base model's (the paper: 48 + 12 = 60 against a 60-d base). The guided part is a buffer:
no parameter, so it gets no gradient and never changes; the base part is the model's usual
table at width d - g.

User guided vectors (§3.1, "trainable"): an embedding u_u (g) per user, initialised from the
user-prompt scores normalised like the items' (over the users), trained with the model. How it
enters the backbones (the paper does not say; recbench's choice, the same for every backbone):
it is added to the guided coordinates of the sequence representation, h'_t = h_t + [0 ; gamma
* u_u], for every position t of training and for the scored position, so that

    score(u, i) = h_t . [e^b_i ; gamma g_i] + gamma^2 u_u . g_i

The user-prompt scores only initialise u_u, so a user with no row starts at 0 (the mean).

The shuffled control permutes the items' guided rows (seeded): the same values and the same
normalisation, assigned to the wrong items.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from recbench.items import PAD, ItemTable


def xavier_std(rows: int, width: int) -> float:
    """The std of Xavier-normal initialisation of a (rows, width) weight."""
    return math.sqrt(2.0 / (rows + width))


def normalise(raw: np.ndarray, std: float) -> np.ndarray:
    """Per aspect: (x - mean) / std_x * `std` (A.5); a constant aspect becomes 0."""
    raw = np.asarray(raw, dtype=np.float64)
    mean, sd = raw.mean(0), raw.std(0)
    out = np.where(sd > 0, (raw - mean) / np.where(sd > 0, sd, 1.0), 0.0) * std
    return out.astype(np.float32)


def shuffle_rows(matrix: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of `matrix` in a seeded random order (the shuffled control) and the order."""
    perm = np.random.default_rng(seed).permutation(matrix.shape[0])
    return matrix[perm], perm


class RefinedTable(ItemTable):
    """[base (d - g) ; gamma * guided (g)] for shifted item ids (0 = padding).

    Args:
        base: the model's own item table, width d - g.
        raw: raw aspect scores (n_items, g), row i = item id i.
        gamma: the guided part's weight.
        norm: `xavier` (A.5, fixed) or `linear` (Eq. 8, a learned affine map of the raw scores,
            initialised to the A.5 map).
    """

    def __init__(self, base: ItemTable, raw: np.ndarray, gamma: float,
                 norm: str = "xavier"):
        super().__init__()
        n_items, g = raw.shape
        self.base, self.gamma, self.norm, self.guided_dim = base, float(gamma), norm, g
        self.dim = base.dim + g
        self.oov_items = base.oov_items
        self.sigma = xavier_std(n_items + 1, self.dim)
        table = np.zeros((n_items + 1, g), dtype=np.float32)
        if norm == "xavier":
            table[1:] = normalise(raw, self.sigma)
            self.map = None
        else:
            table[1:] = raw
            mean, sd = raw.mean(0), raw.std(0)
            scale = np.where(sd > 0, self.sigma / np.where(sd > 0, sd, 1.0), 0.0)
            self.map = nn.Linear(g, g)
            with torch.no_grad():
                self.map.weight.copy_(torch.diag(torch.tensor(scale, dtype=torch.float32)))
                self.map.bias.copy_(torch.tensor(-mean * scale, dtype=torch.float32))
        self.register_buffer("guided", torch.from_numpy(table))  # frozen: not a parameter

    def guided_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """The normalised guided part (..., g) of shifted ids (0 at padding)."""
        g = self.guided[ids]
        if self.map is not None:
            g = self.map(g) * (ids != PAD).unsqueeze(-1).float()
        return g

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.base(ids), self.gamma * self.guided_vectors(ids)], dim=-1)

    def describe(self) -> str:
        how = "A.5 z-score x Xavier std" if self.map is None else "learned affine map (Eq. 8)"
        return (f"refined: {self.base.describe()} at {self.base.dim} + {self.guided_dim} "
                f"frozen guided aspects x gamma {self.gamma:g} ({how}, sigma {self.sigma:.4f})")


class GuidedEncoder(nn.Module):
    """A backbone's encoder with the trainable user guided vectors added to the guided
    coordinates of its output (see the module docstring)."""

    def __init__(self, inner: nn.Module, users: np.ndarray, base_dim: int, gamma: float):
        super().__init__()
        self.inner, self.base_dim, self.gamma = inner, base_dim, float(gamma)
        self.users = nn.Embedding(users.shape[0], users.shape[1])
        with torch.no_grad():
            self.users.weight.copy_(torch.from_numpy(np.asarray(users, dtype=np.float32)))

    def _user_part(self, user: torch.Tensor) -> torch.Tensor:
        u = self.gamma * self.users(user)  # (B, g)
        return nn.functional.pad(u, (self.base_dim, 0))  # (B, d): zeros on the base part

    def sequence(self, tokens: torch.Tensor, user: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inner.sequence(tokens)  # (B, L, d)
        return h if user is None else h + self._user_part(user).unsqueeze(1)

    def forward(self, history: torch.Tensor, user: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inner(history)  # (B, d)
        return h if user is None else h + self._user_part(user)
