"""Paired significance of two runs on the same test rows (paper 000, Table 5: p < 0.05).

CTR runs are compared on per-user AUC (users with both labels); SeqRec runs on per-row values of
a ranking metric (default NDCG@10 under the full protocol).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from recbench import metrics
from recbench.core.errors import DataError
from recbench.results.record import Record
from recbench.results.store import ResultStore


@dataclass
class Comparison:
    a: Record
    b: Record
    unit: str  # what one paired value is
    metric: str
    stats: dict


def find_run(store: ResultStore, ref: str, dataset: str | None, task: str | None) -> Record:
    """A record by key (or key prefix), or the newest record of a model name."""
    candidates = [r for r in store.records() if not r.smoke
                  and (dataset is None or r.dataset == dataset)
                  and (task is None or r.task == task)]
    by_key = [r for r in candidates if r.key.startswith(ref)]
    if by_key:
        if len(by_key) > 1:
            raise DataError(f"run key prefix {ref!r} is ambiguous ({len(by_key)} runs)")
        return by_key[0]
    by_model = [r for r in candidates if ref in (r.model, r.model_id)]
    if not by_model:
        where = f" on {dataset}" if dataset else ""
        raise DataError(f"no finished run {ref!r}{where}{f' ({task})' if task else ''}: give a "
                        "run key (from the record file name) or a model name with --dataset")
    datasets = {r.dataset for r in by_model}
    if len(datasets) > 1:
        raise DataError(f"{ref!r} has runs on {sorted(datasets)}: pass --dataset")
    return max(by_model, key=lambda r: r.finished_at)


def compare(store: ResultStore, a: Record, b: Record, metric: str = "ndcg@10",
            protocol: str = "full") -> Comparison:
    if a.task != b.task or a.dataset_version != b.dataset_version:
        raise DataError("runs are not comparable: they must share task and dataset version "
                        f"({a.task}/{a.dataset_version} vs {b.task}/{b.dataset_version})")
    pa, pb = store.predictions(a), store.predictions(b)
    if pa.height != pb.height:
        raise DataError(f"runs scored different rows ({pa.height} vs {pb.height})")
    if a.task == "ctr":
        ua, va, _ = metrics.per_user_auc(pa["user_id"], pa["label"], pa["score"])
        ub, vb, _ = metrics.per_user_auc(pb["user_id"], pb["label"], pb["score"])
        if not np.array_equal(ua, ub):
            raise DataError("runs cover different users")
        return Comparison(a, b, "user", "auc", metrics.paired_tests(va, vb))
    col = "rank_full" if protocol == "full" else "rank_sampled100"
    order = pl.col("row")
    va = metrics.per_row_metric(pa.sort(order)[col].to_numpy(), metric)
    vb = metrics.per_row_metric(pb.sort(order)[col].to_numpy(), metric)
    return Comparison(a, b, "test row", f"{metric} ({protocol})", metrics.paired_tests(va, vb))
