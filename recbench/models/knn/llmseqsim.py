"""LLMSeqSim (paper 002 §3, Fig. 2): recommend the catalogue items nearest the session embedding.

1. every item's text -> a vector: an encoder of the items pipeline (`minilm-l6`,
   `smollm2-135m`, a hub id; `encoder_pooling` over its tokens) or an OpenAI-compatible
   `/v1/embeddings` endpoint (`encoder=openai:MODEL`, or any `base_url`);
2. optionally reduced (`reduction` = pca | lda | autoencoder | random, to `dim`, §3.2-3.3),
   fitted on the training items (`fit_on=train`; the authors fitted on the whole catalogue:
   `fit_on=catalogue`), rows L2-normalised when `normalize` (the authors' `DimReducer`);
3. the prompt's item vectors pooled into e_S (`pooling` mean | last, `decay` of Table 1,
   `recbench.models.knn.session`);
4. score(i) = sim(e_S, e_i): cosine, dot or 1 / (1 + euclidean) (§3, footnote 3);
   the prompt's own items score -1e9 when `filter_prompt_items` (the authors' rule).

`score_items` returns every item's score, so the shared evaluator ranks the full catalogue with
pessimistic ties; `recommend` gives the exact top-k (`recbench.models.knn.similarity.top_k`:
chunked matmul + a threshold selection) for the hybrids and the benchmark. Defaults are the authors'
Beauty optimum (PCA to 512, normalised, cosine, mean, harmonic) with the paper's decay reading;
`dim` above what the reduction can give is capped, and the record says so.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from recbench.core.config import ClosedConfig, Count
from recbench.core.errors import ConfigError
from recbench.models.base import Recommender, TaskData
from recbench.models.knn.session import Decay, SessionPooling, session_embeddings
from recbench.models.knn.similarity import Similarity, prepare_items, scores, top_k

EXCLUDED = -1e9  # the authors' score for prompt items


class LLMSeqSimConfig(ClosedConfig):
    encoder: str = "minilm-l6"  # alias / hub id / local folder, or openai:MODEL
    encoder_pooling: Literal["mean", "max", "last", "eol"] = "mean"  # over the text's tokens
    base_url: str | None = None  # an OpenAI-compatible API root: embeddings come from there
    api_key_env: str = "OPENAI_API_KEY"
    reduction: Literal["none", "pca", "lda", "autoencoder", "random"] = "pca"
    dim: Count = 512
    normalize: bool = True
    fit_on: Literal["train", "catalogue"] = "train"
    category: str = "genres"  # items column of LDA classes ("A|B" -> sorted, joined by "_")
    pooling: SessionPooling = "mean"
    decay: Decay = "harmonic"
    similarity: Similarity = "cosine"
    filter_prompt_items: bool = True


def item_classes(items: pl.DataFrame, column: str) -> np.ndarray:
    """(n_items,) object array of LDA classes: the column's values split on "|" or ",",
    sorted and joined by "_" (the paper's "sorted keywords concatenated with underscore");
    None where an item has no value.

    Raises:
        ConfigError: the items table has no such column.
    """
    if column not in items.columns:
        raise ConfigError(f"reduction=lda: items.parquet has no column {column!r} for item "
                          f"classes (columns: {', '.join(items.columns)}); set category=NAME")
    values = items.sort("item_id")[column].cast(pl.Utf8).to_list()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        parts = sorted({p.strip() for p in (v or "").replace(",", "|").split("|") if p.strip()})
        out[i] = "_".join(parts) if parts else None
    return out


class LLMSeqSim(Recommender):
    """LLMSeqSim (Boz et al., paper 002 §3): session-embedding similarity to every item."""

    Config: ClassVar[type[LLMSeqSimConfig]] = LLMSeqSimConfig
    tasks = ("seq",)
    mode = "none"  # nothing is trained: fit embeds the items and fits the reduction

    def fit(self, data: TaskData) -> None:
        from recbench.items import training_items
        from recbench.items.adapters import reduce

        cfg = self.config
        raw, self.source = self._raw_vectors(data)
        fit_rows = training_items(data) if cfg.fit_on == "train" else None
        classes = item_classes(data.items, cfg.category) if cfg.reduction == "lda" else None
        reduced = reduce(raw, cfg.reduction, cfg.dim, fit_rows=fit_rows, classes=classes,
                         seed=self.ctx.seed, normalize=cfg.normalize)
        self.reduction_info = reduced.info
        self.set_vectors(reduced.vectors)
        self.ctx.extra.setdefault("item_adapters", []).append(reduced.info)

    def set_vectors(self, vectors: np.ndarray) -> None:
        """Use these item vectors (row = item id) as the catalogue (also for tests)."""
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n_items = self.vectors.shape[0]
        self.prepared, self.sq_norms = prepare_items(self.vectors, self.config.similarity)
        self.empty_prompts = 0

    def _raw_vectors(self, data: TaskData) -> tuple[np.ndarray, dict[str, Any]]:
        cfg = self.config
        if cfg.base_url is not None or cfg.encoder.startswith("openai:"):
            from recbench.models.knn.api_embeddings import api_item_vectors
            from recbench.models.llm.openai_backend import DEFAULT_BASE_URL

            model = cfg.encoder.removeprefix("openai:")
            return api_item_vectors(data, model, cfg.base_url or DEFAULT_BASE_URL,
                                    cfg.api_key_env, self.ctx)
        from recbench.items.embeddings import embed_items

        emb = embed_items(data, encoder=cfg.encoder, pooling=cfg.encoder_pooling, ctx=self.ctx)
        return emb.vectors, emb.info.as_dict()

    def session_vectors(self, rows: pl.DataFrame) -> tuple[np.ndarray, list[list[int]]]:
        """e_S per row (n, D) and the rows' prompt items."""
        histories = [h if h is not None else [] for h in rows["history"].to_list()]
        queries, ok = session_embeddings(self.vectors, histories, self.config.pooling,
                                         self.config.decay)
        self.empty_prompts += int((~ok).sum())
        return queries, histories

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        queries, histories = self.session_vectors(rows)
        out = scores(queries, self.prepared, self.config.similarity, self.sq_norms,
                     prepared=True)  # (n, n_items)
        if self.config.filter_prompt_items:
            for r, h in enumerate(histories):
                h = np.asarray(h, dtype=np.int64)
                out[r, h[(h >= 0) & (h < self.n_items)]] = EXCLUDED
        return out

    def recommend(self, rows: pl.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k item ids (n, k) and their similarities, prompt items excluded."""
        queries, histories = self.session_vectors(rows)
        exclude = histories if self.config.filter_prompt_items else None
        return top_k(queries, self.vectors, k, self.config.similarity, exclude=exclude)

    def notes(self) -> list[str]:
        cfg = self.config
        info = getattr(self, "reduction_info", {})
        out = [f"LLMSeqSim: {cfg.encoder} ({cfg.encoder_pooling} token pooling) -> "
               f"{cfg.reduction} to {info.get('dim', '?')} (fitted on "
               f"{'the training items' if cfg.fit_on == 'train' else 'the whole catalogue'}"
               f"{', L2-normalised' if cfg.normalize else ''}); session = {cfg.pooling}"
               f"{'' if cfg.pooling == 'last' else f' with decay {cfg.decay}'}; "
               f"{cfg.similarity} similarity; prompt items "
               f"{'excluded' if cfg.filter_prompt_items else 'kept'}"]
        if info.get("note"):
            out.append(str(info["note"]))
        if getattr(self, "empty_prompts", 0):
            out.append(f"{self.empty_prompts} prompts had no known item (all scores 0)")
        return out
