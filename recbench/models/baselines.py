"""Non-personalised baselines for both tasks: MostPopular and Random."""

from __future__ import annotations

import numpy as np
import polars as pl

from recbench.core.config import ClosedConfig
from recbench.models.base import Recommender, TaskData


class MostPopularConfig(ClosedConfig):
    pass


class MostPopular(Recommender):
    """Scores an item by how often it occurs in the training split (histories and positives).

    CTR probability = log(1 + count) / log(1 + max count), in [0, 1]; SeqRec ranks every user's
    candidates by the same counts.
    """

    Config = MostPopularConfig
    tasks = ("ctr", "seq")
    mode = "none"

    def fit(self, data: TaskData) -> None:
        train = data.train
        seen = [train["history"].explode().drop_nulls()]
        if data.task == "ctr":
            seen.append(train.filter(pl.col("label") == 1)["item_id"])
        else:
            seen.append(train["target"])
        ids = pl.concat([s.cast(pl.Int64) for s in seen]).to_numpy()
        self.counts = np.bincount(ids, minlength=data.n_items).astype(np.float64)
        self.scores = np.log1p(self.counts) / np.log1p(max(self.counts.max(), 1.0))

    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        return self.scores[rows["item_id"].to_numpy()]

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        return np.broadcast_to(self.scores, (rows.height, self.scores.size))


class RandomConfig(ClosedConfig):
    pass


class Random(Recommender):
    """Uniform random scores from the run's seed (a floor every model must clear)."""

    Config = RandomConfig
    tasks = ("ctr", "seq")
    mode = "none"

    def fit(self, data: TaskData) -> None:
        self.rng = np.random.default_rng(self.ctx.seed)
        self.n_items = data.n_items

    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        return self.rng.random(rows.height)

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        return self.rng.random((rows.height, self.n_items))
