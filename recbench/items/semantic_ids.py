"""Semantic IDs: item text -> encoder embedding -> RQ-VAE -> a short code per item (TIGER).

(Interface first; the RQ-VAE tokenizer, collision handling, diagnostics and the on-disk cache
are filled in below this dataclass.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SemanticIDs:
    """The codes of every item of one prepared dataset.

    Attributes:
        codes: (n_items, n_levels) int64; row i is item i's code, every entry in
            [0, codebook_size); no two rows are equal (collisions resolved).
        codebook_size: K, codes per level (256 in RecBench).
        key: the cache key the codes were stored under.
        diagnostics: collision rate before/after resolution, per-level utilisation and
            perplexity, reconstruction error, items per prefix (see `diagnose`).
    """

    codes: np.ndarray
    codebook_size: int
    key: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])
