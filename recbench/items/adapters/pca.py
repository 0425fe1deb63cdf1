"""PCA by the SVD of the centred fit rows (what scikit-learn's `PCA(svd_solver="full")` does).

Signs follow scikit-learn's `svd_flip(u_based_decision=False)`: each component's
largest-magnitude loading is positive, so the same rows always give the same basis.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


class PCAAdapter:
    """x -> (x - mean) @ components.T, the `dim` directions of largest variance."""

    def __init__(self, dim: int, seed: int = 0):
        self.dim = dim  # seed unused: the full SVD is deterministic
        self.info: dict = {}

    def fit(self, x: np.ndarray, classes: np.ndarray | None = None) -> PCAAdapter:
        x = np.asarray(x, dtype=np.float64)
        self.mean = x.mean(axis=0)
        _, s, vt = scipy.linalg.svd(x - self.mean, full_matrices=False)  # vt: (r, D)
        pivot = np.argmax(np.abs(vt), axis=1)
        vt *= np.sign(vt[np.arange(vt.shape[0]), pivot])[:, None]
        self.components = vt[:self.dim]  # (dim, D)
        var = s ** 2 / max(x.shape[0] - 1, 1)
        total = var.sum()
        self.explained_variance_ratio = var[:self.dim] / total if total > 0 else \
            np.zeros(self.dim)
        self.info = {"explained_variance": float(self.explained_variance_ratio.sum())}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T
