"""The popularity hybrids of paper 002 §6, built around LLMSeqSim.

Popularity p(i) = #sessions containing i / #sessions (the authors' `hybrids/properties.py`),
over the training split by default (`popularity=train`: train rows' history + target); the
authors counted the whole dataset, test sessions included (`popularity=dataset`: train + valid +
test rows, a parity switch that leaks test counts). The cut-off is the `quantile` of p over the
items that occur (p > 0).

- LLMSeqSim&Sequential (§6.1): a row whose prompt's last item has p >= cut-off is scored by the
  sequential model (`sequential`: SKNNEmb by default, LLM2BERT4Rec as in the paper's best, any
  registered seq model), every other row (unpopular last item, or an empty prompt) by LLMSeqSim.
- LLMSeqSim&Popularity (§6.2): LLMSeqSim's top-`candidates` (100 = 5 x 20); walking it in rank
  order, an item with p < cut-off is deleted while the list is longer than `keep` (20); the
  rest is cut to `keep`. Those items are ranked first, in LLMSeqSim's order, then every other
  item in LLMSeqSim's order.

The LLMSeqSim part takes every LLMSeqSim setting directly (`--set dim=128`); the sequential
model takes `sequential_settings`, a list of `key=value` strings (YAML values), since suite
settings are flat.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import polars as pl
import yaml

from recbench.core.config import Count, Probability, resolve
from recbench.core.errors import ConfigError
from recbench.models.base import Recommender, TaskData
from recbench.models.knn.llmseqsim import EXCLUDED, LLMSeqSim, LLMSeqSimConfig


def session_lists(frame: pl.DataFrame) -> list[np.ndarray]:
    """Each row's session: history + target (rows without a target: the history)."""
    hist = [np.asarray(h if h is not None else [], dtype=np.int64)
            for h in frame["history"].to_list()]
    if "target" not in frame.columns:
        return hist
    return [np.append(h, t) for h, t in zip(hist, frame["target"].to_list(), strict=True)]


def item_popularity(data: TaskData, source: str = "train") -> np.ndarray:
    """(n_items,) share of sessions that contain each item (repeats within one count once)."""
    frames = [data.train] if source == "train" else [data.train, data.valid, data.test]
    if source not in ("train", "dataset"):
        raise ConfigError(f"popularity {source!r}: expected train or dataset")
    counts = np.zeros(data.n_items, dtype=np.float64)
    n = 0
    for frame in frames:
        for s in session_lists(frame):
            s = np.unique(s[(s >= 0) & (s < data.n_items)])
            counts[s] += 1
            n += 1
    return counts / max(n, 1)


def popularity_cutoff(popularity: np.ndarray, quantile: float) -> float:
    """The `quantile` of p over the items that occur (p > 0)."""
    seen = popularity[popularity > 0]
    if seen.size == 0:
        raise ConfigError("popularity hybrid: no item occurs in the popularity split")
    return float(np.quantile(seen, quantile))


class HybridConfig(LLMSeqSimConfig):
    quantile: Probability = 0.25
    popularity: Literal["train", "dataset"] = "train"


class _LLMSeqSimHybrid(Recommender):
    tasks = ("seq",)
    mode = "train"

    def _fit_llmseqsim(self, data: TaskData) -> None:
        fields = {k: getattr(self.config, k) for k in LLMSeqSimConfig.model_fields}
        self.sim = LLMSeqSim(LLMSeqSimConfig(**fields), self.ctx)
        self.sim.fit(data)
        self.popularity = item_popularity(data, self.config.popularity)
        self.cutoff = popularity_cutoff(self.popularity, self.config.quantile)
        self.n_items = data.n_items

    def _popularity_note(self) -> str:
        src = "training split" if self.config.popularity == "train" else \
            "whole dataset incl. test (the authors' parity reading)"
        return (f"popularity from the {src}; cut-off = {self.config.quantile:g} quantile = "
                f"{getattr(self, 'cutoff', float('nan')):.6g}")


class LLMSeqSimSequentialConfig(HybridConfig):
    sequential: str = "SKNNEmb"
    sequential_settings: list[str] = []


class LLMSeqSimSequential(_LLMSeqSimHybrid):
    """LLMSeqSim&Sequential (paper 002 §6.1): route each row by its last item's popularity."""

    Config: ClassVar[type[LLMSeqSimSequentialConfig]] = LLMSeqSimSequentialConfig

    def fit(self, data: TaskData) -> None:
        from recbench.models.registry import MODELS

        cfg = self.config
        if cfg.sequential not in MODELS or "seq" not in MODELS.entry(cfg.sequential).meta["tasks"] \
                or cfg.sequential.startswith("LLMSeqSim"):
            seq_models = [e.name for e in MODELS if "seq" in e.meta["tasks"]
                          and not e.name.startswith("LLMSeqSim")]
            raise ConfigError(f"sequential {cfg.sequential!r}: expected a registered sequential "
                              f"model ({', '.join(sorted(seq_models))})")
        settings = {}
        for item in cfg.sequential_settings:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"sequential_settings entry {item!r}: expected key=value")
            settings[key.strip()] = yaml.safe_load(value)
        cls = MODELS.load(cfg.sequential)
        self.seq = cls(resolve({"model": cls.Config}, settings)["model"], self.ctx)
        self._fit_llmseqsim(data)
        self.seq.fit(data)
        self.routed = {"sequential": 0, "llmseqsim": 0}

    def use_sequential(self, rows: pl.DataFrame) -> np.ndarray:
        """(n,) bool: the row's last prompt item has popularity >= the cut-off."""
        out = np.zeros(rows.height, dtype=bool)
        for r, h in enumerate(rows["history"].to_list()):
            if h:
                last = int(h[-1])
                out[r] = 0 <= last < self.n_items and self.popularity[last] >= self.cutoff
        return out

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        seq = self.use_sequential(rows)
        out = np.empty((rows.height, self.n_items), dtype=np.float32)
        if seq.any():
            out[seq] = self.seq.score_items(rows.filter(pl.Series(seq)))
        if (~seq).any():
            out[~seq] = self.sim.score_items(rows.filter(pl.Series(~seq)))
        self.routed["sequential"] += int(seq.sum())
        self.routed["llmseqsim"] += int((~seq).sum())
        return out

    def notes(self) -> list[str]:
        routed = getattr(self, "routed", {})
        return [*self.sim.notes(), f"sequential model: {self.config.sequential} "
                f"({', '.join(self.config.sequential_settings) or 'defaults'})",
                *[f"{self.config.sequential}: {n}" for n in self.seq.notes()],
                self._popularity_note(),
                f"rows routed (evaluation and latency calls together): "
                f"{routed.get('sequential', 0)} to {self.config.sequential}, "
                f"{routed.get('llmseqsim', 0)} to LLMSeqSim"]


class LLMSeqSimPopularityConfig(HybridConfig):
    quantile: Probability = 0.5
    candidates: Count = 100
    keep: Count = 20


class LLMSeqSimPopularity(_LLMSeqSimHybrid):
    """LLMSeqSim&Popularity (paper 002 §6.2): unpopular items leave LLMSeqSim's top list."""

    Config: ClassVar[type[LLMSeqSimPopularityConfig]] = LLMSeqSimPopularityConfig

    def fit(self, data: TaskData) -> None:
        if self.config.keep > self.config.candidates:
            raise ConfigError(f"keep={self.config.keep} must not exceed "
                              f"candidates={self.config.candidates}")
        self._fit_llmseqsim(data)
        self.dropped = 0

    def filtered(self, candidates: np.ndarray) -> list[int]:
        """One row's list: unpopular items deleted in rank order while longer than `keep`."""
        keep = self.config.keep
        out = [int(i) for i in candidates]
        i = 0
        while i < len(out) and len(out) > keep:
            if self.popularity[out[i]] < self.cutoff:
                del out[i]
            else:
                i += 1
        return out[:keep]

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        base = self.sim.score_items(rows).astype(np.float64)  # (n, n_items)
        k = min(self.config.candidates, self.n_items)
        ids, _ = self.sim.recommend(rows, k)
        # Lift the kept list above every other item; excluded prompt items (-1e9) stay out of
        # the span, so float32 keeps the similarities' resolution.
        live = base[base > EXCLUDED / 2]
        lift = (live.max() - live.min() + 1.0) if live.size else 1.0
        for r in range(rows.height):
            kept = self.filtered(ids[r])
            self.dropped += sum(1 for i in ids[r][:self.config.keep] if i not in kept)
            base[r, kept] += lift
        return base.astype(np.float32)

    def notes(self) -> list[str]:
        return [*self.sim.notes(), self._popularity_note(),
                f"top-{self.config.candidates} filtered to {self.config.keep}; "
                f"{getattr(self, 'dropped', 0)} of LLMSeqSim's top-{self.config.keep} items "
                "replaced"]
