"""Adapters: item vectors -> item vectors, fitted on training items (paper 002 §3.2-3.3).

One module per adapter, registered lazily by name (`ADAPTERS`); each is a small class with
`fit(x, classes=None) -> self` and `transform(x) -> (n, dim)`:

- `pca`: principal components (scikit-learn's `PCA(svd_solver="full")`, the same signs);
- `lda`: linear discriminant analysis on item classes (scikit-learn's default `svd` solver);
  at most n_classes - 1 dimensions;
- `autoencoder`: a linear autoencoder trained with MSE (the authors' `SideEncoder`);
- `random`: a Gaussian random projection (scikit-learn's `GaussianRandomProjection`).

`reduce` is the one entry point models use: fit on the rows the caller names (the training
items by default; the authors fitted on the whole catalogue, a parity switch for the caller),
transform every item, optionally L2-normalise the rows (as the authors' `DimReducer` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from recbench.core.errors import ConfigError
from recbench.core.registry import Registry

Reduction = Literal["none", "pca", "lda", "autoencoder", "random"]
_P = "recbench.items.adapters"


class Adapter(Protocol):
    """What every adapter does; `dim` is the output width after `fit`."""

    dim: int

    def fit(self, x: np.ndarray, classes: np.ndarray | None = None) -> Adapter: ...

    def transform(self, x: np.ndarray) -> np.ndarray: ...


ADAPTERS: Registry[type] = Registry("adapter")
ADAPTERS.add("pca", f"{_P}.pca:PCAAdapter", description="principal components")
ADAPTERS.add("lda", f"{_P}.lda:LDAAdapter",
             description="linear discriminant analysis on item classes (<= n_classes - 1 dims)")
ADAPTERS.add("autoencoder", f"{_P}.autoencoder:LinearAutoencoder",
             description="linear autoencoder, MSE")
ADAPTERS.add("random", f"{_P}.random_projection:GaussianRandomProjection",
             description="Gaussian random projection")

# Learned adapters (paper 000 §3.3): torch modules trained end to end with the recommender,
# `(in_dim, dim, ...)` -> (..., D) -> (..., dim); `pq` maps item ids through fitted codes
# (`uses_codes`). Built by `recbench.items.fusion`.
LEARNED_ADAPTERS: Registry[type] = Registry("learned adapter")
LEARNED_ADAPTERS.add("linear", f"{_P}.linear:LinearAdapter", description="one affine map")
LEARNED_ADAPTERS.add("mlp", f"{_P}.mlp:MLPAdapter", description="two layers, GELU")
LEARNED_ADAPTERS.add("pq", f"{_P}.pq:PQAdapter",
                     description="product-quantisation codes, mean of code embeddings (VQ-Rec)")
LEARNED_ADAPTERS.add("moe", f"{_P}.moe:MoEAdapter",
                     description="8 PW experts, softmax gate (UniSRec MoEAdaptorLayer)")


@dataclass
class Reduced:
    """Reduced vectors (n_items, dim) float32 and what made them (for the record)."""

    vectors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def reduce(vectors: np.ndarray, method: str, dim: int, *, fit_rows: np.ndarray | None = None,
           classes: np.ndarray | None = None, seed: int = 0, normalize: bool = False
           ) -> Reduced:
    """Fit `method` on `vectors[fit_rows]` (all rows if None) and transform every row.

    Args:
        vectors: (n_items, D) item vectors, row = item id.
        method: none | pca | lda | autoencoder | random.
        dim: target width; capped at what the method can give (D for pca/random, the fit
            rows, n_classes - 1 for lda), and the cap is stated in `info["note"]`.
        fit_rows: item ids to fit on; None = the whole catalogue.
        classes: (n_items,) class labels for lda; rows labelled None/"" are not fitted on
            (they are still transformed).
        seed: seeds the random projection and the autoencoder.
        normalize: L2-normalise each output row.

    Raises:
        ConfigError: an unknown method, dim < 1, lda without classes or with fewer than 2.
    """
    if dim < 1:
        raise ConfigError(f"reduction dim must be >= 1, got {dim}")
    x = np.asarray(vectors, dtype=np.float64)
    n, width = x.shape
    rows = np.arange(n) if fit_rows is None else np.unique(np.asarray(fit_rows, np.int64))
    if method != "none" and (rows.size == 0 or rows[0] < 0 or rows[-1] >= n):
        raise ConfigError(f"fit rows must be item ids in 0..{n - 1} (got {rows.size} ids)")
    info: dict[str, Any] = {"method": method, "requested_dim": dim, "normalize": normalize,
                            "fit_items": int(rows.size), "fit_all_items": fit_rows is None,
                            "input_dim": width}
    notes: list[str] = []
    if method == "none":
        out = x
    else:
        cls = ADAPTERS.load(method)
        fit_x, fit_y = x[rows], None
        if method == "lda":
            if classes is None:
                raise ConfigError("reduction=lda needs item classes (an item category column)")
            labels = np.asarray(classes, dtype=object)[rows]
            keep = np.array([c is not None and c != "" for c in labels], dtype=bool)
            if (~keep).any():
                notes.append(f"lda: {int((~keep).sum())} of {rows.size} fit items have no "
                             "class and were left out of the fit (they are still projected)")
            fit_x, fit_y = fit_x[keep], labels[keep].astype(str)
            n_classes = len(np.unique(fit_y))
            if n_classes < 2:
                raise ConfigError(f"reduction=lda needs at least 2 item classes among the fit "
                                  f"items, found {n_classes}")
            cap = min(width, n_classes - 1)
        elif method == "pca":
            cap = min(width, fit_x.shape[0])
        else:
            cap = width if method == "autoencoder" else dim
        if dim > cap:
            notes.append(f"{method}: dim {dim} capped at {cap} (input width {width}, "
                         f"{fit_x.shape[0]} fit rows)")
        adapter = cls(min(dim, cap), seed=seed).fit(fit_x, fit_y)
        out = adapter.transform(x)
        info.update(getattr(adapter, "info", {}))
    if normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    info["dim"] = int(out.shape[1])
    if notes:
        info["note"] = "; ".join(notes)
    return Reduced(np.ascontiguousarray(out, dtype=np.float32), info)
