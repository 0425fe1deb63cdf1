"""Linear discriminant analysis as a projection (scikit-learn's `svd` solver, step for step).

With class means mu_c, priors pi_c and the overall mean xbar = Σ pi_c mu_c:
1. whiten the within-class scatter: SVD of (X - mu_{y}) / std / sqrt(n), keep the
   directions whose singular value exceeds `tol`: scalings W = V / std / S;
2. SVD of the priors-weighted class centres in that space, sqrt(n pi_c / (C - 1)) (mu_c -
   xbar) W; keep the directions with singular value > tol * S_max: scalings W V2;
3. transform: (x - xbar) @ scalings, cut to min(dim, C - 1) columns.

The class of an item comes from its category attribute (e.g. the sorted genres joined); the
caller (`recbench.items.adapters.reduce`) leaves items without one out of the fit.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


class LDAAdapter:
    """x -> (x - xbar) @ scalings[:, :dim]."""

    def __init__(self, dim: int, seed: int = 0, tol: float = 1e-4):
        self.dim = dim  # seed unused: deterministic
        self.tol = tol
        self.info: dict = {}

    def fit(self, x: np.ndarray, classes: np.ndarray | None = None) -> LDAAdapter:
        if classes is None:
            raise ValueError("LDA needs classes")
        x = np.asarray(x, dtype=np.float64)
        labels, y = np.unique(np.asarray(classes), return_inverse=True)
        n, n_classes = x.shape[0], len(labels)
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        priors = counts / n
        means = np.zeros((n_classes, x.shape[1]))
        np.add.at(means, y, x)
        means /= counts[:, None]
        centred = np.concatenate([x[y == c] - means[c] for c in range(n_classes)])
        std = centred.std(axis=0)
        std[std == 0] = 1.0
        _, s, vt = scipy.linalg.svd(np.sqrt(1.0 / n) * (centred / std), full_matrices=False)
        rank = int(np.sum(s > self.tol))
        scalings = (vt[:rank] / std).T / s[:rank]
        self.xbar = priors @ means
        fac = 1.0 if n_classes == 1 else 1.0 / (n_classes - 1)
        centres = (np.sqrt(n * priors * fac) * (means - self.xbar).T).T @ scalings
        _, s2, vt2 = scipy.linalg.svd(centres, full_matrices=False)
        rank2 = int(np.sum(s2 > self.tol * s2[0]))
        self.scalings = scalings @ vt2.T[:, :rank2]
        self.dim = min(self.dim, n_classes - 1, self.scalings.shape[1])
        self.info = {"classes": int(n_classes),
                     "explained_variance": float((s2 ** 2 / np.sum(s2 ** 2))[:self.dim].sum())}
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.xbar) @ self.scalings)[:, :self.dim]
