"""Guided embedding refinement (paper 003) over the sequential backbones: `SASRec-guided`,
`BERT4Rec-guided`, `GRU4Rec-guided`,
`GRU4RecPlus-guided` (group `guided`).

`with_guided(model)` is the backbone with its item table replaced by the refined table
[base (dim - guided_dim) ; gamma * guided (guided_dim)] and its encoder wrapped so that the
trainable user guided vectors join the sequence representation (`recbench.items.attributes.
guided` states exactly how). Everything else (encoder, objective, training loop, scoring) is
the backbone's, so Base and Ref. rows differ only in the item/user representation; `dim` is the
total width of both.

The guided vectors come from `recbench.items.attributes`: the dataset domain's aspect table
(or `aspects=`), every item scored with the item prompt and every training user with the user
prompt by `attr_backbone` through `attr_backend` with `attr_extractor`, cached as artefacts.
`guided_dim` keeps the first g aspects of the 12-aspect scores (the prompt always asks for all
of them, so the ablation changes the width only). `guided_shuffle` permutes the items' guided
rows with the run seed: the control that must lose the gain.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl
import torch
from pydantic import create_model, model_validator
from torch import nn

from recbench.core.artifacts import ArtifactCache
from recbench.core.config import Count, PositiveFloat
from recbench.core.errors import ConfigError
from recbench.items.attributes import scores as attribute_scores
from recbench.items.attributes.aspects import load_table
from recbench.items.attributes.guided import (
    GuidedEncoder,
    RefinedTable,
    normalise,
    shuffle_rows,
    xavier_std,
)
from recbench.models.base import TaskData
from recbench.models.seq.base import SeqModel
from recbench.models.torch_base import build_items

GUIDED_FIELDS = {
    "gamma": (PositiveFloat, 1.0),  # weight of the guided part (Eq. 9; ablation 0.25 .. 4)
    "guided_dim": (Count, 12),  # first g aspects (ablation 3 / 6 / 9 / 12)
    "guided_norm": (Literal["xavier", "linear"], "xavier"),  # A.5, or Eq. 8's learned map
    "guided_users": (bool, True),  # the trainable user guided vectors
    "guided_shuffle": (bool, False),  # the control: items' guided rows permuted
    "aspects": (str | None, None),  # None: the dataset domain's table; a name or a YAML file
    "attr_backbone": (str, "smollm2-135m"),
    "attr_backend": (Literal["hf", "llamacpp"], "hf"),
    "attr_extractor": (Literal["expected", "parsed"], "expected"),
    "attr_batch_size": (Count, 16),
    "max_reviews": (Count, 10),  # the user prompt's newest items
}


def _check_widths(self):
    if self.guided_dim >= self.dim:
        raise ValueError(f"guided_dim {self.guided_dim} must be smaller than dim {self.dim}")
    return self


class GuidedMixin:
    """What every `X-guided` model adds to its backbone (see the module docstring)."""

    config: object
    refined: RefinedTable | None = None
    user_init: np.ndarray | None = None  # (n_users, g) normalised user-prompt scores

    def guided_scores(self, data: TaskData) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
        """Raw item scores (n_items, g), raw user scores (n_users, g) or None, and notes."""
        cfg = self.config
        table = load_table(cfg.aspects, data.manifest.get("domain"))
        if cfg.guided_dim > len(table.aspects):
            raise ConfigError(f"guided_dim {cfg.guided_dim}: aspect table {table.name!r} has "
                              f"{len(table.aspects)} aspects")
        scorer = attribute_scores.AspectScorer(attribute_scores.ScorerSettings(
            backbone=cfg.attr_backbone, backend=cfg.attr_backend, extractor=cfg.attr_extractor,
            batch_size=cfg.attr_batch_size, device=self.ctx.device))
        cache = ArtifactCache(self.ctx.cache_dir) if self.ctx.cache_dir else ArtifactCache()
        items = attribute_scores.cached_scores(
            scorer, cache, "item", table, attribute_scores.item_messages(data.items, table))
        g = cfg.guided_dim
        notes = [_score_note("item", items, table.name)]
        users = None
        if cfg.guided_users:
            seqs = attribute_scores.user_sequences(data.train)
            ids, messages = attribute_scores.user_messages(seqs, data.items, table,
                                                           cfg.max_reviews)
            got = attribute_scores.cached_scores(scorer, cache, "user", table, messages)
            notes.append(_score_note("user", got, table.name))
            n_users = 1 + max([*ids, *_user_ids(data)], default=0)
            users = np.full((n_users, g), np.nan, dtype=np.float32)
            users[ids] = got.scores[:, :g]
        self.ctx.extra.setdefault("artifacts", []).append(cache.provenance())
        return items.scores[:, :g], users, notes

    def item_table(self, data: TaskData) -> nn.Module:
        cfg = self.config
        raw_items, raw_users, self.guided_notes = self.guided_scores(data)
        if cfg.guided_shuffle:
            raw_items, _ = shuffle_rows(raw_items, self.ctx.seed)
        base = build_items(cfg.model_copy(update={"dim": cfg.dim - cfg.guided_dim}), data,
                           self.ctx)
        self.refined = RefinedTable(base, raw_items, cfg.gamma, cfg.guided_norm)
        self.user_init = None
        if raw_users is not None:
            known = ~np.isnan(raw_users).any(1)
            init = np.zeros_like(raw_users)
            if known.any():
                init[known] = normalise(raw_users[known],
                                        xavier_std(raw_users.shape[0], cfg.dim))
            self.user_init = init
        return self.refined

    def encoder(self, items):
        inner = super().encoder(items)
        if self.user_init is None:
            return inner
        return GuidedEncoder(inner, self.user_init, self.config.dim - self.config.guided_dim,
                             self.config.gamma)

    def row_inputs(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        if self.user_init is None:
            return {}
        users = rows["user_id"].to_numpy().astype(np.int64)
        users = np.where(users < self.user_init.shape[0], users, 0)  # unseen: row 0's init
        return {"user": torch.from_numpy(users)}

    @property
    def model_id(self) -> str:
        return f"{super().model_id}-guided"

    def notes(self) -> list[str]:
        cfg = self.config
        users = "trainable user guided vectors added to the guided coordinates" \
            if cfg.guided_users else "no user guided vectors"
        shuffle = "; CONTROL: items' guided rows shuffled (seed = run seed)" \
            if cfg.guided_shuffle else ""
        return [*super().notes(), f"guided: {self.refined.describe()}; {users}{shuffle}",
                *self.guided_notes]


def _user_ids(data: TaskData) -> list[int]:
    out = []
    for split in (data.train, data.valid, data.test):
        if "user_id" in split.columns and split.height:
            out.append(int(split["user_id"].max()))
    return out


def _score_note(role: str, s: attribute_scores.AspectScores, table: str) -> str:
    facts = s.meta.get("facts", {})
    n = max(int(facts.get("prompts") or 0), 1)
    tokens = (facts.get("tokens_run") or facts.get("prompt_tokens", 0)) + \
        facts.get("generated_tokens", 0)
    backend = s.meta.get("settings", {}).get("backend")
    counted = "tokens run" if "tokens_run" in facts else "prompt + generated tokens"
    cost = (f"scoring cost on {backend}: {facts.get('seconds', 0) / n:.3f} s and "
            f"{tokens / n:.0f} {counted} per {role}, {facts.get('seconds', 0):.1f} s in all"
            if facts else "")
    parse = facts.get("parse")
    failure = f", parse-failure rate {parse['failure_rate']:.4f}" if parse else ""
    return (f"{role} aspect scores ({table}, {s.meta.get('settings', {}).get('extractor')}): "
            f"artefact aspect_scores/{s.meta.get('key')} ({'hit' if s.hit else 'computed'}; "
            f"{cost}{failure})")


def with_guided(model: type[SeqModel]) -> type[SeqModel]:
    """`model` with guided embedding refinement (a subclass; its Config adds the settings)."""
    name = f"{model.__name__}Guided"
    config = create_model(f"{name}Config", __base__=model.Config, __module__=__name__,
                          __validators__={"_widths": model_validator(mode="after")(
                              _check_widths)},
                          **GUIDED_FIELDS)
    return type(name, (GuidedMixin, model), {
        "Config": config, "__module__": __name__, "__qualname__": name,
        "__doc__": f"{model.paper_name} with guided embedding refinement (paper 003)."})


def _backbones():
    from recbench.models.seq.bert4rec import BERT4Rec
    from recbench.models.seq.gru4rec import GRU4Rec, GRU4RecPlus
    from recbench.models.seq.sasrec import SASRec

    return SASRec, BERT4Rec, GRU4Rec, GRU4RecPlus


SASRecGuided, BERT4RecGuided, GRU4RecGuided, GRU4RecPlusGuided = (
    with_guided(m) for m in _backbones())
