"""Task evaluation shared by every model: same rows, same candidates, same metrics.

CTR: the model scores every test row; AUC, GAUC (unweighted mean of per-user AUC, RecBench's
definition), weighted GAUC, logloss, F1/precision/recall at 0.5.
SeqRec: protocol `full` ranks the target among all items; `sampled100` among the frozen 100
negatives of the prepared dataset. Ties count against the target (pessimistic). History items
are not masked unless `exclude_history` is set. Beyond-accuracy metrics (coverage, novelty,
serendipity) come from each row's top-k list. A generative model (a `BeamGenerator`: groups H
and J) is scored through its beams, and the record gains a `beam` section: how often a returned
code sequence was no item and how often the target fell outside the beam
(`recbench.models.decoding.BeamResult.statistics`, one definition for every generator).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import polars as pl

from recbench import metrics
from recbench.core.config import EvalConfig
from recbench.core.progress import Reporter
from recbench.models.base import Recommender, TaskData


@runtime_checkable
class BeamGenerator(Protocol):
    """A SeqRec model that generates the next item by beam search (groups H and J)."""

    def generate(self, rows: pl.DataFrame) -> Any:
        """`recbench.models.decoding.BeamResult` of `rows`, one row per input row; its
        `item_scores(n_items)` are what the model's `score_items` returns."""


BEAM_COLUMNS = ("beam_returned", "beam_invalid", "beam_hit")  # per test row, predictions


def beam_metrics(preds: pl.DataFrame) -> dict[str, dict[str, float]]:
    """The `beam` section from the predictions' per-row beam columns (none: no section):
    invalid_rate (returned sequences that are no item), target_in_beam and miss_rate (test
    rows), and the counts behind them."""
    if "beam_returned" not in preds.columns:
        return {}
    rows = preds.height
    returned, invalid = int(preds["beam_returned"].sum()), int(preds["beam_invalid"].sum())
    hits = int(preds["beam_hit"].sum())
    hit = hits / rows if rows else float("nan")
    return {"beam": {"invalid_rate": invalid / returned if returned else float("nan"),
                     "target_in_beam": hit, "miss_rate": 1.0 - hit, "n_rows": float(rows),
                     "n_returned": float(returned), "n_invalid": float(invalid),
                     "n_target_in_beam": float(hits)}}


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
    preds = pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32), "user_id": test["user_id"],
        "item_id": test["item_id"], "label": test["label"], "score": scores,
    })
    return ctr_metrics_from(preds), preds


def ctr_metrics_from(preds: pl.DataFrame) -> dict[str, dict[str, float]]:
    """The CTR metrics of a whole test split's predictions (`evaluate_ctr`'s frame)."""
    return {"ctr": metrics.ctr_metrics(preds["user_id"].to_numpy(), preds["label"].to_numpy(),
                                       preds["score"].to_numpy())}


def evaluate_seq(model: Recommender, data: TaskData, cfg: EvalConfig, reporter: Reporter
                 ) -> tuple[dict[str, dict[str, float]], pl.DataFrame]:
    test, k = data.test, cfg.topk
    negatives = np.stack(data.test_negatives.sort("row")["negatives"].to_numpy())
    targets_all = test["target"].to_numpy().astype(np.int64)
    full_ranks, sampled_ranks, topk = [], [], []
    beams: list[dict[str, np.ndarray]] | None = [] if isinstance(model, BeamGenerator) else None
    n_batches = -(-test.height // cfg.eval_batch_size)
    for i, batch in enumerate(reporter.track(_batches(test, cfg.eval_batch_size), n_batches,
                                             "ranking")):
        lo = i * cfg.eval_batch_size
        targets = targets_all[lo:lo + batch.height]
        if beams is not None:
            result = model.generate(batch)
            beams.append(result.statistics(targets))
            scores = result.item_scores(data.n_items)
        else:
            scores = model.score_items(batch)
        scores = np.asarray(scores, dtype=np.float32)
        exclude = batch["history"].to_list() if cfg.exclude_history else None
        full_ranks.append(metrics.full_ranks(scores, targets, exclude))
        cands = np.concatenate([targets[:, None], negatives[lo:lo + batch.height]], axis=1)
        sampled_ranks.append(metrics.ranks_from_scores(np.take_along_axis(scores, cands, 1),
                                                       np.zeros(len(targets), dtype=np.int64)))
        topk.append(metrics.topk_items(scores, k))
    full = np.concatenate(full_ranks)
    sampled = np.concatenate(sampled_ranks)
    top = np.concatenate(topk)
    preds = pl.DataFrame({
        "row": np.arange(test.height, dtype=np.int32), "user_id": test["user_id"],
        "target": test["target"], "rank_full": full, "rank_sampled100": sampled,
        "topk": pl.Series(top.astype(np.int32)).cast(pl.List(pl.Int32)),
    })
    if beams is not None:
        preds = preds.with_columns(pl.Series(name, np.concatenate([b[name] for b in beams]))
                                   for name in BEAM_COLUMNS)
    return {**_seq_metrics(full, sampled, top, targets_all, data, k), **beam_metrics(preds)}, preds


def seq_metrics_from(preds: pl.DataFrame, data: TaskData, cfg: EvalConfig
                     ) -> dict[str, dict[str, float]]:
    """The SeqRec metrics of a whole test split's predictions (`evaluate_seq`'s frame, rows in
    order), e.g. shards scored by several processes and concatenated back."""
    width = int(preds["topk"].list.len().max() or 0) if preds.height else 0
    top = preds["topk"].explode().to_numpy().astype(np.int64).reshape(preds.height, width)
    return {**_seq_metrics(preds["rank_full"].to_numpy(), preds["rank_sampled100"].to_numpy(),
                           top, preds["target"].to_numpy().astype(np.int64), data, cfg.topk),
            **beam_metrics(preds)}


def _seq_metrics(full: np.ndarray, sampled: np.ndarray, top: np.ndarray, targets_all: np.ndarray,
                 data: TaskData, k: int) -> dict[str, dict[str, float]]:
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
    return {"full": full_metrics, "sampled100": metrics.ranking_metrics(sampled)}


def _train_counts(data: TaskData) -> np.ndarray:
    ids = pl.concat([data.train["history"].explode().drop_nulls().cast(pl.Int64),
                     data.train["target"].cast(pl.Int64)]).to_numpy()
    return np.bincount(ids, minlength=data.n_items).astype(np.float64)


EVALUATORS = {"ctr": evaluate_ctr, "seq": evaluate_seq}


def metrics_from_predictions(task: str, preds: pl.DataFrame, data: TaskData, cfg: EvalConfig
                             ) -> dict[str, dict[str, float]]:
    """What `EVALUATORS[task]` returns as metrics, computed from its predictions frame alone."""
    return ctr_metrics_from(preds) if task == "ctr" else seq_metrics_from(preds, data, cfg)
