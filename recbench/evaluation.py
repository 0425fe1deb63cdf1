"""Task evaluation shared by every model: same rows, same candidates, same metrics.

CTR: the model scores every test row; AUC, GAUC (unweighted mean of per-user AUC, RecBench's
definition), weighted GAUC, logloss, F1/precision/recall at 0.5.
SeqRec: protocol `full` ranks the target among all items; `sampled100` among the frozen 100
negatives of the prepared dataset. Ties count against the target (pessimistic). History items
are not masked unless `exclude_history` is set. Beyond-accuracy metrics (coverage, novelty,
serendipity) come from each row's top-k list.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recbench import metrics
from recbench.core.config import EvalConfig
from recbench.core.progress import Reporter
from recbench.models.base import Recommender, TaskData


def _batches(df: pl.DataFrame, size: int):
    for start in range(0, df.height, size):
        yield df.slice(start, size)


def evaluate_ctr(model: Recommender, data: TaskData, cfg: EvalConfig, reporter: Reporter
                 ) -> tuple[dict[str, dict[str, float]], pl.DataFrame]:
    test = data.test
    n_batches = -(-test.height // cfg.eval_batch_size)
    scores = np.concatenate([
        np.asarray(model.predict_ctr(batch), dtype=np.float64).reshape(-1)
        for batch in reporter.track(_batches(test, cfg.eval_batch_size), n_batches, "scoring")
    ])
    if scores.shape[0] != test.height:
        raise RuntimeError(f"{model.model_id} returned {scores.shape[0]} scores for "
                           f"{test.height} rows")
    labels = test["label"].to_numpy()
    users = test["user_id"].to_numpy()
    result = metrics.ctr_metrics(users, labels, scores)
    preds = pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32), "user_id": users,
        "item_id": test["item_id"], "label": labels, "score": scores,
    })
    return {"ctr": result}, preds


def evaluate_seq(model: Recommender, data: TaskData, cfg: EvalConfig, reporter: Reporter
                 ) -> tuple[dict[str, dict[str, float]], pl.DataFrame]:
    test, k = data.test, cfg.topk
    negatives = np.stack(data.test_negatives.sort("row")["negatives"].to_numpy())
    targets_all = test["target"].to_numpy().astype(np.int64)
    full_ranks, sampled_ranks, topk = [], [], []
    n_batches = -(-test.height // cfg.eval_batch_size)
    for i, batch in enumerate(reporter.track(_batches(test, cfg.eval_batch_size), n_batches,
                                             "ranking")):
        lo = i * cfg.eval_batch_size
        targets = targets_all[lo:lo + batch.height]
        scores = np.asarray(model.score_items(batch), dtype=np.float32)
        exclude = batch["history"].to_list() if cfg.exclude_history else None
        full_ranks.append(metrics.full_ranks(scores, targets, exclude))
        cands = np.concatenate([targets[:, None], negatives[lo:lo + batch.height]], axis=1)
        sampled_ranks.append(metrics.ranks_from_scores(np.take_along_axis(scores, cands, 1),
                                                       np.zeros(len(targets), dtype=np.int64)))
        topk.append(metrics.topk_items(scores, k))
    full = np.concatenate(full_ranks)
    sampled = np.concatenate(sampled_ranks)
    top = np.concatenate(topk)

    counts = _train_counts(data)
    popular = np.argsort(-counts, kind="stable")
    full_metrics = metrics.ranking_metrics(full)
    for cut in (10, 20):
        if cut > k:
            continue
        full_metrics[f"coverage@{cut}"] = metrics.catalog_coverage(top[:, :cut], data.n_items)
        full_metrics[f"novelty@{cut}"] = metrics.novelty(top[:, :cut], counts)
        full_metrics[f"serendipity@{cut}"] = metrics.serendipity(top[:, :cut], targets_all,
                                                                 popular[:cut])
    preds = pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32), "user_id": test["user_id"],
        "target": test["target"], "rank_full": full, "rank_sampled100": sampled,
        "topk": pl.Series(top.astype(np.int32)).cast(pl.List(pl.Int32)),
    })
    return {"full": full_metrics, "sampled100": metrics.ranking_metrics(sampled)}, preds


def _train_counts(data: TaskData) -> np.ndarray:
    ids = pl.concat([data.train["history"].explode().drop_nulls().cast(pl.Int64),
                     data.train["target"].cast(pl.Int64)]).to_numpy()
    return np.bincount(ids, minlength=data.n_items).astype(np.float64)


EVALUATORS = {"ctr": evaluate_ctr, "seq": evaluate_seq}
