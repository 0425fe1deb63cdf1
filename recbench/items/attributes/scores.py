"""Aspect scores of every item and every training user, computed once and cached.

`AspectScorer` runs one backbone through one backend with one extractor (`extract`):

| backend | expected extractor | parsed extractor |
|---|---|---|
| `hf` (transformers) | digit probabilities over a KV cache | greedy generation + the rule |
| `llamacpp` (GGUF, CPU) | no: its protocol exposes no full logits | greedy generation + the rule |

Prompts are rendered with the backbone's chat template (a system turn and a user turn; the
offline SmolLM2 has one) and fed as token ids, so both backends read the same ids.

Scores are artefacts of the one cache (`recbench.core.artifacts`, kind `aspect_scores`), keyed
by the hash of the user messages (the item or user texts), the system prompt, the aspect table,
the prompt version, the backbone's id and revision (or the GGUF file's sha256), the backend and
the extractor; the meta holds the scoring cost (seconds, tokens, items/s) and, for `parsed`,
the parse statistics. A hit loads no model.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from recbench.core.artifacts import ArtifactCache, ArtifactSpec, content_hash, texts_hash
from recbench.core.atomic import write_bytes
from recbench.core.errors import ConfigError
from recbench.items.attributes import prompts
from recbench.items.attributes.aspects import AspectTable
from recbench.items.attributes.extract import (
    expected_from_ids,
    parse_replies,
    parse_reply,
    rating_tokens,
)

log = logging.getLogger("recbench.items.attributes")

Extractor = Literal["expected", "parsed"]
EXTRACTORS = ("expected", "parsed")
ScoringBackend = Literal["hf", "llamacpp"]
SCORING_BACKENDS = ("hf", "llamacpp")
CACHE_VERSION = 1
_SENTINEL = "\u0000RECBENCH-MESSAGE\u0000"


@dataclass(frozen=True)
class ScorerSettings:
    """Which LLM scores, how, and in what batches.

    Attributes:
        backbone: a catalog alias (`smollm2-135m`), hub id or local path.
        backend: `hf` or `llamacpp` (GGUF backbones only).
        extractor: `expected` (hf only) or `parsed`.
        batch_size: prompts per forward (hf).
        device: torch device (hf).
        threads: CPU threads (llamacpp).
    """

    backbone: str = "smollm2-135m"
    backend: str = "hf"
    extractor: str = "expected"
    batch_size: int = 16
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.backend not in SCORING_BACKENDS:
            raise ConfigError(f"attribute backend {self.backend!r}: expected one of "
                              f"{', '.join(SCORING_BACKENDS)}")
        if self.extractor not in EXTRACTORS:
            raise ConfigError(f"attribute extractor {self.extractor!r}: expected one of "
                              f"{', '.join(EXTRACTORS)}")
        if self.extractor == "expected" and self.backend != "hf":
            raise ConfigError(f"the expected extractor reads the digit logits, which backend "
                              f"{self.backend!r} does not expose (only YES/NO); use "
                              "backend hf, or extractor parsed")
        if self.batch_size < 1 or self.threads < 1:
            raise ConfigError("attribute scoring: batch_size and threads must be >= 1")


@dataclass
class AspectScores:
    """Raw scores (n, g) in [1, 10] of n prompts, their integer reading and provenance.

    Attributes:
        scores: the extractor's scores (expected values, or parsed integers with failures
            filled), float32.
        ratings: integers (n, g): the argmax rating (expected) or the parsed value, 0 where
            parsing failed.
        names: the aspect names (columns).
        meta: the cache entry's meta (cost, parse statistics, key, ...).
        hit: whether the scores came from the cache.
    """

    scores: np.ndarray
    ratings: np.ndarray
    names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    hit: bool = False


class AspectScorer:
    """One backbone + backend + extractor; the model loads on first use (a cache hit needs
    none)."""

    def __init__(self, settings: ScorerSettings):
        self.settings = settings
        self._model: Any = None
        self._tokenizer: Any = None
        self._llama: Any = None

    # -- identity (no model load) --------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        from recbench.core.hashing import sha256_file
        from recbench.models.llm import backbones, catalog

        entry = catalog.resolve(self.settings.backbone)
        if self.settings.backend == "llamacpp":
            path = entry.gguf_path()
            if path is None:
                raise ConfigError(f"backend llamacpp needs a GGUF backbone; "
                                  f"{self.settings.backbone!r} has none")
            return {"backend": "llamacpp", "gguf_file": path.name,
                    "sha256": sha256_file(path)[:24]}
        src = backbones.source_of(entry)
        return {"backend": "hf", "model_id": src.model_id, "revision": src.revision,
                "gguf_file": src.gguf_file}

    # -- loading -------------------------------------------------------------------------------
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self.settings.backend == "llamacpp":
                from recbench.llm.backends.llamacpp import gguf_tokenizer
                from recbench.models.llm import catalog

                path = catalog.resolve(self.settings.backbone).gguf_path()
                self._tokenizer = gguf_tokenizer(str(path))
            else:
                self.model()
        return self._tokenizer

    def model(self) -> Any:
        if self._model is None:
            from recbench.models.llm import backbones

            self._model, self._tokenizer = backbones.load_backbone(
                self.settings.backbone, kind="causal", device=self.settings.device)
        return self._model

    def llama(self) -> Any:
        if self._llama is None:
            from recbench.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig
            from recbench.models.llm import catalog

            path = catalog.resolve(self.settings.backbone).gguf_path()
            self._llama = LlamaCppBackend(LlamaCppConfig(
                model_path=str(path), n_threads=self.settings.threads, n_ctx=4096))
        return self._llama

    # -- prompts as ids ------------------------------------------------------------------------
    def frame(self, system: str) -> tuple[list[int], str]:
        """The shared start (ids) of every prompt with this system prompt, and the template
        text that follows each user message (the assistant header)."""
        tok = self.tokenizer()
        if not getattr(tok, "chat_template", None):
            return tok(f"{system}\n\n", add_special_tokens=True)["input_ids"], "\n\n"
        rendered = tok.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": _SENTINEL}],
            tokenize=False, add_generation_prompt=True)
        before, after = rendered.split(_SENTINEL)
        return tok(before, add_special_tokens=False)["input_ids"], after

    def pieces(self, names: list[str]) -> list[list[int]]:
        tok = self.tokenizer()
        return [tok(("\n" if j else "") + f"{name}: ", add_special_tokens=False)["input_ids"]
                for j, name in enumerate(names)]

    # -- scoring -------------------------------------------------------------------------------
    def score(self, system: str, messages: list[str], names: list[str]
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Scores (n, g), integer ratings (n, g) and facts (cost, parse stats) of the prompts
        (system, message) for the aspects `names`."""
        started = time.perf_counter()
        shared, after = self.frame(system)
        tok = self.tokenizer()
        rows = [tok(m + after, add_special_tokens=False)["input_ids"] for m in messages]
        facts: dict[str, Any] = {"prompts": len(messages),
                                 "prompt_tokens": len(shared) * len(rows) + sum(map(len, rows))}
        if self.settings.extractor == "expected":
            res = expected_from_ids(self.model(), shared, rows, self.pieces(names),
                                    rating_tokens(tok), self.settings.batch_size,
                                    pad_id=tok.pad_token_id or 0)
            scores, ratings = res.expected, res.argmax
            facts.update(tokens_run=res.tokens_run, forward_calls=res.forward_calls,
                         digit_mass_mean=float(res.digit_mass.mean()) if res.digit_mass.size
                         else None)
        else:
            replies, generated = self.generate(shared, rows, names)
            scores, stats = parse_replies(replies, names)
            ratings = np.stack([np.nan_to_num(parse_reply(r, names)) for r in replies]).astype(
                np.int64) if replies else np.zeros((0, len(names)), np.int64)
            facts.update(parse=stats.as_dict(), generated_tokens=generated,
                         sample_replies=replies[:3])
        seconds = time.perf_counter() - started
        facts.update(seconds=seconds, prompts_per_s=len(messages) / seconds if seconds else None)
        return scores.astype(np.float32), ratings.astype(np.int64), facts

    def max_new_tokens(self, names: list[str]) -> int:
        tok = self.tokenizer()
        answer = "\n".join(f"{n}: 10" for n in names)
        return len(tok(answer, add_special_tokens=False)["input_ids"]) + 8

    def generate(self, shared: list[int], rows: list[list[int]], names: list[str]
                 ) -> tuple[list[str], int]:
        """Greedy replies of every prompt and the number of tokens generated."""
        limit = self.max_new_tokens(names)
        prompts_ids = [shared + r for r in rows]
        if self.settings.backend == "llamacpp":
            backend = self.llama()
            before = backend.stats.generated
            replies = backend.generate(prompts_ids, max_new_tokens=limit, temperature=0.0)
            return replies, backend.stats.generated - before
        import torch

        model, tok = self.model(), self.tokenizer()
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        replies, generated = [], 0
        for start in range(0, len(prompts_ids), self.settings.batch_size):
            batch = prompts_ids[start:start + self.settings.batch_size]
            width = max(map(len, batch))
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, p in enumerate(batch):  # left padding: every continuation starts together
                ids[r, width - len(p):] = torch.tensor(p)
                mask[r, width - len(p):] = 1
            device = next(model.parameters()).device
            with torch.inference_mode():
                out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                     max_new_tokens=limit, do_sample=False, top_p=None,
                                     top_k=None, temperature=None, pad_token_id=pad)
            new = out[:, width:].cpu()
            eos = {tok.eos_token_id, pad}
            for row in new.tolist():
                kept = []
                for t in row:
                    if t in eos:
                        break
                    kept.append(t)
                generated += len(kept)
                replies.append(tok.decode(kept, skip_special_tokens=True))
        return replies, generated


# -- what is scored ----------------------------------------------------------------------------

def item_messages(items: pl.DataFrame, table: AspectTable) -> list[str]:
    """Table 9's user message for every item (row i = item id i)."""
    return [prompts.item_message(table, prompts.item_prompt(row))
            for row in items.sort("item_id").iter_rows(named=True)]


def user_sequences(train: pl.DataFrame) -> dict[int, list[int]]:
    """Each training user's items (history + target of the user's last training row), oldest
    first: what the user prompt shows."""
    seqs: dict[int, list[int]] = {}
    cols = ["user_id", "history", "target" if "target" in train.columns else "item_id"]
    for user, history, last in train.select(cols).iter_rows():
        seqs[int(user)] = [*(history or []), int(last)]
    return seqs


def user_messages(seqs: dict[int, list[int]], items: pl.DataFrame, table: AspectTable,
                  max_reviews: int) -> tuple[list[int], list[str]]:
    """(user ids, Table 10's user message) for the users of `seqs`, the newest `max_reviews`
    items each."""
    item_prompts = [prompts.item_prompt(row) for row in items.sort("item_id").iter_rows(named=True)]
    users = sorted(seqs)
    return users, [prompts.user_message(table, [item_prompts[i] for i in seqs[u][-max_reviews:]])
                   for u in users]


def cached_scores(scorer: AspectScorer, cache: ArtifactCache, role: Literal["item", "user"],
                  table: AspectTable, messages: list[str]) -> AspectScores:
    """The scores of `messages` (item or user prompts) from the cache, computed on a miss."""
    system = prompts.item_system_prompt(table) if role == "item" else \
        prompts.user_system_prompt(table)
    s = scorer.settings
    spec = ArtifactSpec("aspect_scores", CACHE_VERSION,
                        inputs={"messages": texts_hash(messages), "system": content_hash(system)},
                        model=scorer.identity(),
                        settings={"role": role, "extractor": s.extractor, "backend": s.backend,
                                  "table": content_hash(table.as_dict()),
                                  "prompt_version": prompts.PROMPT_VERSION})
    found: dict[str, Any] = {}

    def build(folder):
        log.info("scoring %d %s prompts x %d aspects with %s (%s, %s)", len(messages), role,
                 len(table.aspects), s.backbone, s.backend, s.extractor)
        scores, ratings, facts = scorer.score(system, messages, table.names)
        for name, arr in (("scores", scores), ("ratings", ratings)):
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            write_bytes(folder / f"{name}.npy", buf.getvalue())
        found["built"] = True
        return {"facts": facts, "names": table.names, "table": table.name,
                "backbone": s.backbone}

    entry = cache.get_or_build(spec, build)
    scores = np.load(entry.path / "scores.npy", allow_pickle=False)
    ratings = np.load(entry.path / "ratings.npy", allow_pickle=False)
    if scores.shape != (len(messages), len(table.aspects)):
        raise ConfigError(f"aspect scores {entry.path}: shape {scores.shape}, expected "
                          f"{(len(messages), len(table.aspects))}")
    return AspectScores(scores, ratings, table.names, dict(entry.meta),
                        hit=not found.get("built", False))


@dataclass
class DatasetScores:
    """A dataset's aspect scores: the table, the items' (row i = item id i) and the training
    users' (`user_ids[k]` is row k of `users.scores`), and where they came from."""

    table: AspectTable
    items: AspectScores
    users: AspectScores | None
    user_ids: list[int]
    provenance: dict[str, Any]


def score_dataset(items: pl.DataFrame, train: pl.DataFrame, domain: str | None,
                  settings: ScorerSettings, cache: ArtifactCache, aspects: str | None = None,
                  users: bool = True, max_reviews: int = 10) -> DatasetScores:
    """Score every item (and every training user) of a prepared dataset, through the cache.

    Args:
        items: items.parquet (item_id, text, attributes).
        train: the seq training split (user_id, history, target).
        domain: the dataset's domain (picks the aspect table unless `aspects` is given).
        settings: backbone, backend, extractor.
        cache: the artefact cache.
        aspects: a built-in table name or a YAML file (None: the domain's table).
        users: also score the training users with the user prompt.
        max_reviews: the user prompt's newest items.
    """
    from recbench.items.attributes.aspects import load_table

    table = load_table(aspects, domain)
    scorer = AspectScorer(settings)
    got_items = cached_scores(scorer, cache, "item", table, item_messages(items, table))
    got_users, ids = None, []
    if users:
        ids, messages = user_messages(user_sequences(train), items, table, max_reviews)
        got_users = cached_scores(scorer, cache, "user", table, messages)
    return DatasetScores(table, got_items, got_users, ids, cache.provenance())
