"""Session embeddings: a session's item vectors pooled into one vector (paper 002 §3.4, Table 1).

Shared by LLMSeqSim and the hybrids (and usable by SKNNEmb). A session is its item vectors
(L, D), oldest first; i is the distance from the end plus one, so **i = 1 is the most recent
item** and i = L the oldest (as in the authors' `decay_utils.compute_decay_array`).

`pooling="last"` is E[-1]; `pooling="mean"` is the weighted mean Σ w_i e_i / Σ w_i with the
decay's weights (`none`: the plain mean). Table 1 gives each decay as a "decay per step":

| decay (paper's reading)   | w_i, i = 1 the newest                        |
|---------------------------|----------------------------------------------|
| `constant_linear`         | max(1e-5, 1 - (i - 1) / 10)                  |
| `scaling_linear`          | max(1e-5, 1 - (i - 1) / L)                   |
| `scaling_quadratic`       | max(1e-5, 1 - (i - 1) / L²)                  |
| `scaling_cubic`           | max(1e-5, 1 - (i - 1) / L³)                  |
| `log`                     | 1 / ln(i + 1)  (any base: the mean is the same) |
| `harmonic`                | 1 / i                                        |
| `squared_harmonic`        | 1 / i²                                       |

The authors' code (dh-r/LLM-Sequential-Recommendation @ 6464b39, see
../shared/notes/suites-anchors.md §1.3) reads three of them differently; those readings are
offered under explicit names and are never the default:

| decay (authors' code)         | w_i                          |
|-------------------------------|------------------------------|
| `authors_log`                 | 1 / (ln i + 1)               |
| `authors_scaling_quadratic`   | max(1e-5, 1 - (i - 1)/L)²    |
| `authors_scaling_cubic`       | max(1e-5, 1 - (i - 1)/L)³    |

The 1e-5 floor is the authors' (it only matters for `constant_linear` beyond 10 items).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from recbench.core.errors import ConfigError

Decay = Literal["none", "constant_linear", "scaling_linear", "scaling_quadratic",
                "scaling_cubic", "log", "harmonic", "squared_harmonic", "authors_log",
                "authors_scaling_quadratic", "authors_scaling_cubic"]
DECAYS: tuple[str, ...] = get_args(Decay)
SessionPooling = Literal["mean", "last"]
FLOOR = 1e-5


def decay_weights(length: int, decay: str) -> np.ndarray:
    """(length,) float64 weights of a session's items, oldest first (i = 1 is the last item).

    Raises:
        ConfigError: an unknown decay or a length below 1.
    """
    if length < 1:
        raise ConfigError(f"a session needs at least one item to be weighted, got {length}")
    big_l = float(length)
    i = np.arange(length, 0, -1, dtype=np.float64)  # oldest first: L, L-1, ..., 1
    if decay == "none":
        return np.ones(length)
    if decay == "constant_linear":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / 10.0)
    if decay == "scaling_linear":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / big_l)
    if decay == "scaling_quadratic":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / big_l ** 2)
    if decay == "scaling_cubic":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / big_l ** 3)
    if decay == "log":
        return 1.0 / np.log(i + 1.0)
    if decay == "harmonic":
        return 1.0 / i
    if decay == "squared_harmonic":
        return 1.0 / i ** 2
    if decay == "authors_log":
        return 1.0 / (np.log(i) + 1.0)
    if decay == "authors_scaling_quadratic":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / big_l) ** 2
    if decay == "authors_scaling_cubic":
        return np.maximum(FLOOR, 1.0 - (i - 1.0) / big_l) ** 3
    raise ConfigError(f"decay {decay!r}: expected one of {', '.join(DECAYS)}")


def session_embedding(vectors: np.ndarray, pooling: str = "mean", decay: str = "none"
                      ) -> np.ndarray:
    """One session's embedding (D,) from its item vectors (L, D), oldest first.

    Raises:
        ConfigError: an unknown pooling or decay, or an empty session.
    """
    if vectors.ndim != 2 or vectors.shape[0] == 0:
        raise ConfigError(f"a session embedding needs (L >= 1, D) item vectors, got "
                          f"{vectors.shape}")
    if pooling == "last":
        return np.asarray(vectors[-1], dtype=np.float64)
    if pooling != "mean":
        raise ConfigError(f"session pooling {pooling!r}: expected mean or last")
    w = decay_weights(vectors.shape[0], decay)
    return (w @ vectors.astype(np.float64)) / w.sum()


def session_embeddings(item_vectors: np.ndarray, sessions: Sequence[Sequence[int]],
                       pooling: str = "mean", decay: str = "none") -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Embeddings (n, D) of many sessions (item ids, oldest first) and which were non-empty.

    Ids outside the table are ignored; a session left empty gets a zero row and False in
    the returned mask, so the caller decides what an empty prompt means.
    """
    n_items, dim = item_vectors.shape
    out = np.zeros((len(sessions), dim), dtype=np.float64)
    ok = np.zeros(len(sessions), dtype=bool)
    for row, session in enumerate(sessions):
        ids = np.asarray(session if session is not None else [], dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < n_items)]
        if len(ids):
            out[row] = session_embedding(item_vectors[ids], pooling, decay)
            ok[row] = True
    return out, ok
