"""Item vectors from a language model: item text -> encoder -> pooled hidden states (-> PCA).

Pooling follows the four aggregation strategies of paper 000 §3.2, over the last layer:
- `mean`: the average over the non-padding tokens (special tokens included, as in
  sentence-transformers; for `minilm-l6` this is its embedding before normalisation);
- `max`: the element-wise maximum over the non-padding tokens;
- `last`: the last non-padding token (what a causal LM has read the whole text at);
- `eol` (Explicit One-word Limitation): the text is wrapped in `EOL_TEMPLATE`, which asks for
  a one-word summary, and the prompt's final token (the open quote, where that word would be
  generated) is taken; special tokens a tokenizer appends after it ([SEP], EOS) are skipped.

`last` is literally the final token: for BERT-like encoders that is [SEP].

Texts are truncated to `max_length` tokens *before* a prompt template wraps them, so the
template's end (EOL's open quote) always survives. Batches are formed from length-sorted
texts; right padding with an attention mask keeps each text's vectors independent of its batch.

Vectors are cached under `<cache>/item_embeddings/<dataset>/<key>.npy` with `<key>.json`
metadata, keyed by everything that determines them: a hash of the item texts, the encoder's
id and revision (hub commit, package version or local-folder fingerprint), pooling, prompt
template, max length and weights dtype; a PCA reduction is cached beside them, keyed further
by `pca_dim` and a hash of the items it was fitted on. A cache hit loads no model.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recbench.core import paths
from recbench.core.atomic import write_bytes, write_json
from recbench.core.errors import ConfigError, DataError
from recbench.core.hashing import stable_hash
from recbench.core.names import path_component
from recbench.core.progress import Reporter

if TYPE_CHECKING:
    from recbench.models.base import RunContext, TaskData

log = logging.getLogger("recbench.items.embeddings")

Pooling = Literal["mean", "max", "last", "eol"]
POOLINGS = ("mean", "max", "last", "eol")
EOL_TEMPLATE = 'This item: "{text}" means in one word: "'
CACHE_VERSION = 1  # bump when the computation changes; old entries then miss


@dataclass(frozen=True)
class EmbeddingCacheInfo:
    """How a set of item vectors was obtained (for logs and result records).

    Attributes:
        key: the cache key of the returned vectors.
        hit: True when no encoder ran (the raw vectors came from the cache).
        path: the cached `.npy` file of the returned vectors.
        encoder: the alias or name the caller gave.
        model_id: the hub id / local path of the encoder.
        revision: hub commit, `package==version` or `local:<fingerprint>`.
        pooling: mean | max | last | eol.
        prompt_template: the template texts were wrapped in (EOL's by default), or None.
        max_length: the token limit applied to each text.
        dtype: the weights' dtype the vectors were computed in.
        n_items: rows.
        dim: columns of the returned vectors.
        pca_dim: the PCA dimension, or None.
        explained_variance: fraction of the fit rows' variance the PCA keeps, or None.
        seconds: time spent in this call.
    """

    key: str
    hit: bool
    path: str
    encoder: str
    model_id: str
    revision: str | None
    pooling: str
    prompt_template: str | None
    max_length: int
    dtype: str
    n_items: int
    dim: int
    pca_dim: int | None = None
    explained_variance: float | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        pca = "" if self.pca_dim is None else \
            f", PCA to {self.pca_dim} ({self.explained_variance:.1%} of variance)"
        return (f"{self.encoder} ({self.model_id} @ {self.revision or 'unknown revision'}), "
                f"{self.pooling} pooling, {self.dim}-d{pca}, cache "
                f"{'hit' if self.hit else 'miss'}")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ItemEmbeddings:
    """Vectors (n_items, D) float32, row i = item id i, and how they were obtained."""

    vectors: np.ndarray
    info: EmbeddingCacheInfo


def item_vectors(data: TaskData, encoder: str = "minilm-l6", pooling: Pooling = "mean",
                 pca_dim: int | None = None, fit_items: np.ndarray | None = None,
                 ctx: RunContext | None = None, max_length: int = 64, batch_size: int = 64,
                 prompt_template: str | None = None) -> np.ndarray:
    """(n_items, D) float32 vectors of every item's text; see `embed_items`."""
    return embed_items(data, encoder, pooling, pca_dim, fit_items, ctx, max_length, batch_size,
                       prompt_template).vectors


def embed_items(data: TaskData, encoder: str = "minilm-l6", pooling: Pooling = "mean",
                pca_dim: int | None = None, fit_items: np.ndarray | None = None,
                ctx: RunContext | None = None, max_length: int = 64, batch_size: int = 64,
                prompt_template: str | None = None) -> ItemEmbeddings:
    """Embed every item's text with a language model, through the on-disk cache.

    Args:
        data: the task data; `data.items` has `item_id` (0..n-1) and `text`.
        encoder: a catalog alias, hub id or local folder (`recbench.models.llm.catalog`).
        pooling: mean | max | last | eol (see the module docstring).
        pca_dim: reduce to this many principal components; None keeps the encoder's width.
        fit_items: item ids the PCA is fitted on (pass the training items, so nothing about
            valid/test-only items leaks into the basis); None = all items.
        ctx: run context: `device`, `cache_dir`, `log`, `extra["reporter"]`. The returned
            info is appended to `ctx.extra["item_embeddings"]` for the run's record.
        max_length: tokens kept per text (special tokens included, before the template).
        batch_size: texts per forward pass.
        prompt_template: wraps each text; must contain `{text}`. Default: `EOL_TEMPLATE` for
            eol pooling, none otherwise.

    Returns:
        The vectors (row i = item id i) and an `EmbeddingCacheInfo`.

    Raises:
        ConfigError: an invalid pooling, template, length or PCA dimension.
        DataError: items without dense ids 0..n-1.
    """
    started = time.perf_counter()
    template = _check_args(pooling, prompt_template, max_length, batch_size, pca_dim)
    from recbench.models.llm import backbones, catalog

    entry = catalog.resolve(encoder)
    device = ctx.device if ctx is not None else "cpu"
    logger = ctx.log if ctx is not None else log
    reporter: Reporter = (ctx.extra.get("reporter") if ctx is not None else None) or Reporter()
    texts = item_texts(data)
    dtype = str(backbones.default_dtype(device)).removeprefix("torch.")
    root = cache_root(ctx) / "item_embeddings" / path_component(data.dataset or "_")
    spec = {"v": CACHE_VERSION, "texts": texts_hash(texts), "n_items": len(texts),
            "pooling": pooling, "template": template, "max_length": max_length, "dtype": dtype}
    source = backbones.source_of(entry)
    raw_key = _raw_key(spec, source)
    raw = _read(root, raw_key, len(texts)) if source.revision is not None else None
    hit = raw is not None
    if raw is None:
        reporter.stage(f"embedding {len(texts):,} items with {entry.alias} ({pooling} pooling)")
        model, tokenizer = backbones.load_backbone(entry, kind="encoder", device=device)
        source = model.recbench_source
        raw_key = _raw_key(spec, source)
        raw = _read(root, raw_key, len(texts))  # a hub model's revision is known only now
        hit = raw is not None
        if raw is None:
            t0 = time.perf_counter()
            vectors = encode_texts(texts, model, tokenizer, pooling=pooling,
                                   max_length=max_length, batch_size=batch_size,
                                   template=template, reporter=reporter,
                                   description=f"embedding items ({entry.alias}, {pooling})")
            meta = {**spec, "key": raw_key, "encoder": entry.alias, **_source_meta(source),
                    "dataset": data.dataset,
                    "dataset_version": data.manifest.get("content_hash"),
                    "dim": int(vectors.shape[1]), "device": str(device),
                    "encode_seconds": round(time.perf_counter() - t0, 3)}
            _write(root, raw_key, vectors, meta)
            raw = (vectors, meta)
        del model
    vectors, meta = raw
    key, pca_meta = raw_key, {}
    if pca_dim is not None:
        vectors, key, pca_meta = _reduced(root, raw_key, vectors, meta, pca_dim, fit_items)
    info = EmbeddingCacheInfo(
        key=key, hit=hit, path=str(root / f"{key}.npy"), encoder=entry.alias,
        model_id=meta["model_id"], revision=meta["revision"], pooling=pooling,
        prompt_template=template, max_length=max_length, dtype=dtype, n_items=len(texts),
        dim=int(vectors.shape[1]), pca_dim=pca_dim,
        explained_variance=pca_meta.get("explained_variance"),
        seconds=round(time.perf_counter() - started, 3))
    logger.info("item embeddings: %s", info.describe())
    if ctx is not None:
        ctx.extra.setdefault("item_embeddings", []).append(info)
    return ItemEmbeddings(vectors, info)


def _check_args(pooling, prompt_template, max_length, batch_size, pca_dim) -> str | None:
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    template = prompt_template if prompt_template is not None else \
        (EOL_TEMPLATE if pooling == "eol" else None)
    if template is not None and "{text}" not in template:
        raise ConfigError(f"prompt template {template!r} must contain '{{text}}'")
    if max_length < 1 or batch_size < 1:
        raise ConfigError(f"max_length ({max_length}) and batch_size ({batch_size}) must be "
                          "positive")
    if pca_dim is not None and pca_dim < 1:
        raise ConfigError(f"pca_dim must be a positive integer or None, got {pca_dim}")
    return template


def item_texts(data: TaskData) -> list[str]:
    """The items' texts in item-id order (missing text = empty string)."""
    items = data.items.sort("item_id")
    ids = items["item_id"].to_numpy()
    if not np.array_equal(ids, np.arange(len(ids))):
        raise DataError(f"{data.dataset}: items.parquet item_id must be dense 0..n-1")
    return [t or "" for t in items["text"].to_list()]


def texts_hash(texts: list[str]) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_root(ctx: RunContext | None) -> Path:
    """ctx.cache_dir, else $RECBENCH_HOME/cache."""
    if ctx is not None and ctx.cache_dir is not None:
        return Path(ctx.cache_dir)
    return paths.cache_dir(paths.home())


def _raw_key(spec: dict, source) -> str:
    return stable_hash({**spec, "model_id": source.model_id, "revision": source.revision,
                        "gguf_file": source.gguf_file})


def _source_meta(source) -> dict[str, Any]:
    return {"model_id": source.model_id, "revision": source.revision,
            "gguf_file": source.gguf_file}


# --- encoding --------------------------------------------------------------------------------

def encode_texts(texts: list[str], model, tokenizer, pooling: Pooling = "mean",
                 max_length: int = 64, batch_size: int = 64, template: str | None = None,
                 reporter: Reporter | None = None, description: str = "embedding") -> np.ndarray:
    """Pooled last-layer hidden states (n, D) float32 of `texts` under a loaded model.

    The model is a bare transformers network (`load_backbone(kind="encoder")`); for
    encoder-decoder models only the encoder runs. No gradients; inputs go to the model's device.
    """
    import torch

    reporter = reporter or Reporter()
    ids = tokenize(texts, tokenizer, max_length, template)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    # eol reads the prompt's own final token: skip special tokens a tokenizer appends ([SEP])
    skip = trailing_special(ids, tokenizer) if pooling == "eol" else np.zeros_like(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    network = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) \
        else model
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: np.ndarray | None = None
    with torch.inference_mode():
        for batch in reporter.track(batches, len(batches), description):
            width = int(lengths[batch].max())
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # right padding: positions match unpadded runs
                input_ids[row, :lengths[i]] = torch.tensor(ids[i], dtype=torch.long)
                mask[row, :lengths[i]] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            hidden = network(input_ids=input_ids, attention_mask=mask).last_hidden_state
            last = torch.from_numpy(lengths[batch] - 1 - skip[batch]).to(device)
            pooled = pool(hidden.float(), mask, pooling, last).cpu().numpy()
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            out[batch] = pooled
    if out is None:
        raise DataError("no item texts to embed")
    return out


def pool(hidden, mask, pooling: Pooling, last=None):
    """(B, L, D) hidden states and a (B, L) 0/1 mask of right-padded rows -> (B, D).

    `last` (B,) overrides the position `last`/`eol` read (default: the final non-padding one).
    """
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    if pooling == "mean":
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    if pooling == "max":
        return hidden.masked_fill(m == 0, float("-inf")).amax(1)
    if last is None:
        last = mask.sum(1).long() - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def trailing_special(ids: list[list[int]], tokenizer) -> np.ndarray:
    """How many special tokens (EOS, [SEP]) end each sequence, never the whole sequence."""
    special = set(tokenizer.all_special_ids)
    out = np.zeros(len(ids), dtype=np.int64)
    for i, x in enumerate(ids):
        k = 0
        while k < len(x) - 1 and x[len(x) - 1 - k] in special:
            k += 1
        out[i] = k
    return out


def tokenize(texts: list[str], tokenizer, max_length: int,
             template: str | None = None) -> list[list[int]]:
    """Token ids per text, at most `max_length` tokens of the text itself.

    Without a template, special tokens are added and count towards `max_length` (as in
    sentence-transformers). With one, the text is cut to `max_length` tokens first and the
    whole prompt is then tokenised untruncated, so the template's end is always there.
    """
    if template is None:
        ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    else:
        cut = _truncate(texts, tokenizer, max_length)
        ids = tokenizer([template.replace("{text}", t) for t in cut])["input_ids"]
    fallback = next((t for t in (tokenizer.eos_token_id, tokenizer.unk_token_id,
                                 tokenizer.pad_token_id) if t is not None), 0)
    return [list(x) if len(x) else [fallback] for x in ids]  # an empty text still gets a row


def _truncate(texts: list[str], tokenizer, max_length: int) -> list[str]:
    try:
        enc = tokenizer(texts, add_special_tokens=False, truncation=True,
                        max_length=max_length, return_offsets_mapping=True)
    except NotImplementedError:  # slow tokenizers have no offsets: decode instead
        enc = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)
        return [t if len(x) < max_length else tokenizer.decode(x)
                for t, x in zip(texts, enc["input_ids"], strict=True)]
    return [t if len(offs) < max_length else t[:offs[-1][1]]
            for t, offs in zip(texts, enc["offset_mapping"], strict=True)]


# --- PCA ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PCA:
    """Principal components fitted on some rows: project with `(x - mean) @ components.T`."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D), orthonormal rows, largest variance first
    explained_variance_ratio: np.ndarray  # (k,)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float64) - self.mean) @ self.components.T).astype(np.float32)


def fit_pca(x: np.ndarray, k: int, chunk: int = 8192) -> PCA:
    """PCA of the rows of `x` (n, D): eigen-decomposition of their covariance (D, D).

    This is the SVD of the centred rows without holding them centred in float64 at once.
    Each component's sign is fixed (its largest-magnitude loading is positive), so the same
    rows always give the same basis.
    """
    n, d = x.shape
    if not 1 <= k <= min(n, d):
        raise ConfigError(f"pca_dim={k} must be between 1 and min(fit rows, encoder dim) = "
                          f"{min(n, d)}")
    mean = x.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, chunk):
        c = x[start:start + chunk].astype(np.float64) - mean
        cov += c.T @ c
    cov /= max(n - 1, 1)
    values, vectors = np.linalg.eigh(cov)  # ascending
    top = np.argsort(values)[::-1][:k]
    components = vectors[:, top].T
    rows = np.arange(k)
    components *= np.sign(components[rows, np.abs(components).argmax(axis=1)])[:, None]
    total = float(np.clip(values, 0, None).sum())
    ratio = np.clip(values[top], 0, None) / total if total > 0 else np.zeros(k)
    return PCA(mean, components, ratio)


def _reduced(root: Path, raw_key: str, vectors: np.ndarray, raw_meta: dict, pca_dim: int,
             fit_items: np.ndarray | None) -> tuple[np.ndarray, str, dict]:
    n = vectors.shape[0]
    if fit_items is None:
        fit = np.arange(n, dtype=np.int64)
    else:
        fit = np.unique(np.asarray(fit_items, dtype=np.int64))
        if fit.size == 0 or fit[0] < 0 or fit[-1] >= n:
            raise ConfigError(f"fit_items must be item ids in 0..{n - 1} (got {fit.size} ids)")
    fit_hash = hashlib.sha256(fit.tobytes()).hexdigest()[:16]
    key = stable_hash({"raw": raw_key, "pca_dim": pca_dim, "fit": fit_hash})
    cached = _read(root, key, n)
    if cached is not None:
        return cached[0], key, cached[1]["pca"]
    pca = fit_pca(vectors[fit], pca_dim)
    reduced = pca.transform(vectors)
    meta_pca = {"dim": pca_dim, "fit_items": int(fit.size),
                "fit_all_items": fit_items is None, "fit_items_hash": fit_hash,
                "explained_variance": float(pca.explained_variance_ratio.sum()),
                "explained_variance_ratio": [float(r) for r in pca.explained_variance_ratio]}
    meta = {**raw_meta, "key": key, "raw_key": raw_key, "dim": pca_dim, "pca": meta_pca}
    _write(root, key, reduced, meta)
    return reduced, key, meta_pca


# --- cache files -------------------------------------------------------------------------------

def _read(root: Path, key: str, n_items: int) -> tuple[np.ndarray, dict] | None:
    npy, meta_path = root / f"{key}.npy", root / f"{key}.json"
    if not (npy.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        vectors = np.load(npy, allow_pickle=False)
    except (OSError, ValueError) as err:
        log.warning("ignoring unreadable item-embedding cache %s: %s", npy, err)
        return None
    if vectors.ndim != 2 or vectors.shape[0] != n_items or meta.get("key") != key:
        log.warning("ignoring item-embedding cache %s: shape %s, expected %d rows", npy,
                    vectors.shape, n_items)
        return None
    return vectors.astype(np.float32, copy=False), meta


def _write(root: Path, key: str, vectors: np.ndarray, meta: dict) -> None:
    """The .npy first, then the .json: an entry counts only once both are whole."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    write_bytes(root / f"{key}.npy", buf.getvalue())
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(root / f"{key}.json", {**meta, "shape": list(vectors.shape), "created": created})
