"""The interface every recommender implements, and the data it is given.

A CTR model maps rows (user history, candidate item) to click probabilities; a sequential model
maps rows (user history) to a score for every item. Evaluation, latency and the results store
are shared (`recbench.runner`), so a model only says how it trains and how it scores.
"""

from __future__ import annotations

import logging
from abc import ABC
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from recbench.core.config import ClosedConfig


@dataclass
class TaskData:
    """One task's splits of one prepared dataset."""

    dataset: str
    task: str  # "ctr" | "seq"
    items: pl.DataFrame  # item_id, item_key, text, ...
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    test_negatives: pl.DataFrame | None = None  # seq: row, user_id, negatives
    manifest: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the prepared dataset folder (for caches beside it)

    @property
    def n_items(self) -> int:
        return self.items.height


@dataclass
class RunContext:
    """What a model may use besides its config: seed, device, caches, logging, smoke mode."""

    seed: int
    device: str = "cpu"
    cache_dir: Path | None = None
    work_dir: Path | None = None  # checkpoints of an interrupted run live here
    smoke: bool = False
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("recbench.run"))
    extra: dict[str, Any] = field(default_factory=dict)


class Recommender(ABC):  # noqa: B024 - abstract by contract: a model overrides a scorer
    """Base class. Subclasses set `Config`, `tasks`, `mode`, and implement the scoring methods.

    Attributes:
        Config: the model's closed config class.
        tasks: which tasks it supports ("ctr", "seq").
        mode: "none" (no training), "train", "zero-shot" or "finetune".
    """

    Config: ClassVar[type[ClosedConfig]]
    tasks: ClassVar[tuple[str, ...]] = ()
    mode: ClassVar[str] = "train"

    def __init__(self, config: ClosedConfig, ctx: RunContext):
        self.config = config
        self.ctx = ctx

    @property
    def run_mode(self) -> str:
        """The mode stored in the record: the class's `mode`, unless the config chooses it
        (an LLM run either zero-shot or fine-tuned)."""
        return type(self).mode

    @property
    def model_id(self) -> str:
        """The full name stored in records (a hub id or expanded alias where relevant)."""
        return type(self).__name__

    @property
    def model_revision(self) -> str | None:
        return None

    def fit(self, data: TaskData) -> None:  # noqa: B027 - a no-op is right for untrained models
        """Train on `data.train`, early-stop on `data.valid`; models without training skip it."""

    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        """Click probabilities for CTR rows (user_id, history, item_id), shape (n,)."""
        raise TypeError(f"{type(self).__name__} does not do CTR prediction")

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        """Scores of every item for SeqRec rows (user_id, history), shape (n, n_items)."""
        raise TypeError(f"{type(self).__name__} does not do sequential recommendation")

    def score_candidates(self, rows: pl.DataFrame, candidates: np.ndarray) -> np.ndarray:
        """Scores of given candidates (n, c); default: gather from `score_items`."""
        return np.take_along_axis(self.score_items(rows), candidates, axis=1)

    def notes(self) -> list[str]:
        """Facts for the record (e.g. OOV counts, how an LLM is scored)."""
        return []
