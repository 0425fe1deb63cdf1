"""Run a backbone over item texts: length-sorted batches, any padding side, cached vectors.

Loading goes through `recbench.models.llm.backbones.load_backbone` (catalog aliases such as
`minilm-l6` and `smollm2-135m` offline, hub ids, local folders) and tokenisation through
`recbench.items.embeddings.tokenize` (texts cut to `max_length` tokens before a template
wraps them, so EOL's closing quote survives); neither is duplicated here.

Batches are formed from texts sorted by token length (longest first), so a batch pads to
nearly its own length and little compute goes to padding; each row's vector is independent
of its batch: the attention mask hides padding and, under left padding, position ids count
from each row's first real token (`cumsum(mask) - 1`), so the model sees the positions an
unpadded run would.

`encode_items` is the cached entry point: one `item_vectors` artefact per (texts hash,
backbone id + revision, LoRA adapter key, pooling, template, max length, dtype, padding side).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recbench.core.artifacts import ArtifactCache, ArtifactSpec, texts_hash
from recbench.core.errors import ConfigError, DataError
from recbench.core.progress import Reporter
from recbench.items.embeddings import tokenize
from recbench.items.encoders.pooling import EOL_TEMPLATE, POOLINGS, Pooling, eol_positions, pool

log = logging.getLogger("recbench.items.encoders")

Padding = Literal["right", "left"]
CACHE_VERSION = 1


@dataclass(frozen=True)
class LoraRef:
    """A fitted LoRA adapter: its artefact key (for cache keys and records), its folder, the
    head it was trained with (`causal` for CPT/SFT, `encoder` for SCFT), and the adapter it
    was trained on top of (merged first: CPT under CPT+SFT's SFT stage), if any."""

    key: str
    path: Path
    kind: str = "causal"
    method: str = ""
    base: LoraRef | None = None

    def chain(self) -> list[LoraRef]:
        """The adapters to merge, first to last."""
        return [*(self.base.chain() if self.base is not None else []), self]


def merge_lora(model, lora: LoraRef):
    """`model` with every adapter of `lora`'s chain merged into its weights, in order."""
    from peft import PeftModel

    for ref in lora.chain():
        model = PeftModel.from_pretrained(model, str(ref.path)).merge_and_unload()
    return model


class TextEncoder:
    """A backbone ready to encode: the network whose last hidden states are pooled.

    Args:
        encoder: catalog alias, hub id or local folder.
        device: torch device.
        lora: a LoRA adapter to merge into the weights first (a tuned encoder), or None.
    """

    def __init__(self, encoder: str = "minilm-l6", device: str = "cpu",
                 lora: LoraRef | None = None):
        from recbench.models.llm import backbones

        kind = lora.kind if lora is not None else "encoder"
        model, self.tokenizer = backbones.load_backbone(encoder, kind=kind, device=device)
        self.source = model.recbench_source
        if lora is not None:
            model = merge_lora(model, lora)
            model = model.base_model if lora.kind != "encoder" else model  # drop the LM head
            model.eval()
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()
        self.model, self.device, self.lora = model, device, lora
        self.special = frozenset(self.tokenizer.all_special_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else 0

    def identity(self) -> dict[str, Any]:
        s = self.source
        return {"model_id": s.model_id, "revision": s.revision, "gguf_file": s.gguf_file,
                "dtype": s.dtype, "lora": None if self.lora is None else self.lora.key}

    def hidden(self, input_ids, mask):
        """Last-layer states (B, L, D) of a padded batch."""
        import torch

        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": mask}
        if not bool(mask[:, 0].all()):  # left padding present: positions from the first token
            kwargs["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0)
        return self.model(**kwargs).last_hidden_state.to(torch.float32)

    def encode(self, texts: list[str], pooling: Pooling = "mean", max_length: int = 64,
               batch_size: int = 64, padding: Padding = "right",
               template: str | None = None, reporter: Reporter | None = None) -> np.ndarray:
        """Pooled vectors (n, D) float32 of `texts`, row i = texts[i]."""
        import torch

        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        if padding not in ("right", "left"):
            raise ConfigError(f"padding {padding!r}: expected right or left")
        if template is None and pooling == "eol":
            template = EOL_TEMPLATE
        ids = tokenize(texts, self.tokenizer, max_length, template)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
        out: np.ndarray | None = None
        starts = range(0, len(order), batch_size)
        reporter = reporter or Reporter()
        with torch.inference_mode():
            for start in reporter.track(starts, len(starts),
                                        f"encoding {len(texts):,} texts ({pooling})"):
                batch = order[start:start + batch_size]
                width = int(lengths[batch].max())
                input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    n = int(lengths[i])
                    cols = slice(0, n) if padding == "right" else slice(width - n, width)
                    input_ids[row, cols] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, cols] = 1
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                hidden = self.hidden(input_ids, mask)
                positions = eol_positions(mask, input_ids, self.special) \
                    if pooling == "eol" else None
                pooled = pool(hidden, mask, pooling, positions).cpu().numpy()
                if out is None:
                    out = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
                out[batch] = pooled
        if out is None:
            raise DataError("no item texts to encode")
        return out


@dataclass
class EncodedItems:
    """Item vectors (n, D) and their provenance (for the run's record)."""

    vectors: np.ndarray
    provenance: dict[str, Any]


def encode_items(texts: list[str], encoder: str = "minilm-l6", pooling: Pooling = "mean",
                 cache: ArtifactCache | None = None, *, max_length: int = 64,
                 batch_size: int = 64, padding: Padding = "right",
                 lora: LoraRef | None = None, device: str = "cpu",
                 reporter: Reporter | None = None) -> EncodedItems:
    """Vectors of `texts` under a (possibly LoRA-tuned) backbone, through the artefact cache.

    A hit loads no model where the backbone's revision is known before loading (catalog
    aliases with packaged weights, local folders); a hub model is loaded to learn its commit.
    """
    from recbench.models.llm import backbones, catalog

    started = time.perf_counter()
    cache = cache or ArtifactCache()
    entry = catalog.resolve(encoder)
    source = backbones.source_of(entry)
    template = EOL_TEMPLATE if pooling == "eol" else None
    dtype = str(backbones.default_dtype(device)).removeprefix("torch.")
    loaded: TextEncoder | None = None
    if source.revision is None:
        loaded = TextEncoder(encoder, device, lora)
        source = loaded.source
    spec = ArtifactSpec("item_vectors", CACHE_VERSION, inputs={"texts": texts_hash(texts)},
                        model={"model_id": source.model_id, "revision": source.revision,
                               "gguf_file": source.gguf_file,
                               "lora": None if lora is None else lora.key},
                        settings={"pooling": pooling, "template": template,
                                  "max_length": max_length, "dtype": dtype,
                                  "padding": padding})

    def build() -> np.ndarray:
        nonlocal loaded
        loaded = loaded or TextEncoder(encoder, device, lora)
        t0 = time.perf_counter()
        vectors = loaded.encode(texts, pooling, max_length, batch_size, padding, template,
                                reporter)
        log.info("encoded %d items with %s (%s pooling) in %.1fs", len(texts), encoder,
                 pooling, time.perf_counter() - t0)
        return vectors

    hits = cache.hits
    vectors = cache.array(spec, build).astype(np.float32, copy=False)
    prov = {"kind": "item_vectors", "key": spec.key, "hit": cache.hits > hits,
            "encoder": entry.alias, "model_id": source.model_id, "revision": source.revision,
            "pooling": pooling, "template": template, "max_length": max_length,
            "dtype": dtype, "padding": padding, "n_items": len(texts),
            "dim": int(vectors.shape[1]),
            "lora": None if lora is None else {"key": lora.key, "method": lora.method},
            "seconds": round(time.perf_counter() - started, 3)}
    return EncodedItems(vectors, prov)
