"""Evaluation metrics: CTR (AUC, GAUC, ...), top-k ranking, beyond-accuracy and significance.

Submodules:
    ctr: point-wise CTR metrics (`auc`, `gauc`, `logloss`, ...), GAUC fully vectorised.
    ranking: pessimistic-tie ranks and NDCG/HR/MRR@k for sampled and full-catalogue protocols.
    beyond: catalogue coverage, novelty and serendipity (LLMSeqSim's beyond-accuracy metrics).
    significance: paired t-test and Wilcoxon signed-rank on per-user metric values.

The public functions are re-exported here lazily, so `import recbench.metrics` costs nothing
until a metric is used (scipy is only imported by `significance`).
"""

from __future__ import annotations

import importlib
from typing import Any

from recbench.core.errors import RecbenchError


class MetricError(RecbenchError):
    """Metric input a user can get wrong: mismatched shapes, one class only, ids out of range."""


# name -> submodule; resolved on first attribute access (PEP 562).
_EXPORTS: dict[str, str] = {
    "auc": "ctr",
    "per_user_auc": "ctr",
    "gauc": "ctr",
    "logloss": "ctr",
    "precision_recall_f1": "ctr",
    "ctr_metrics": "ctr",
    "KS": "ranking",
    "ranks_from_scores": "ranking",
    "full_ranks": "ranking",
    "ranking_metrics": "ranking",
    "valid_ndcg10": "ranking",
    "topk_items": "ranking",
    "per_row_metric": "ranking",
    "catalog_coverage": "beyond",
    "novelty": "beyond",
    "serendipity": "beyond",
    "paired_tests": "significance",
}

__all__ = ["MetricError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    submodule = _EXPORTS.get(name)
    if submodule is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{submodule}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
