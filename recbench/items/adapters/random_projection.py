"""Gaussian random projection (Johnson-Lindenstrauss; scikit-learn's `GaussianRandomProjection`).

The matrix R (dim, D) has entries drawn from N(0, 1/dim) by `np.random.RandomState(seed)`,
exactly as scikit-learn draws it for an integer `random_state`, so both give the same R.
"""

from __future__ import annotations

import numpy as np


class GaussianRandomProjection:
    """x -> x @ R.T with R ~ N(0, 1/dim)."""

    def __init__(self, dim: int, seed: int = 0):
        self.dim = dim
        self.seed = seed
        self.info: dict = {"seed": seed}

    def fit(self, x: np.ndarray, classes: np.ndarray | None = None) -> GaussianRandomProjection:
        rng = np.random.RandomState(self.seed)
        self.components = rng.normal(0.0, 1.0 / np.sqrt(self.dim), size=(self.dim, x.shape[1]))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.components.T
