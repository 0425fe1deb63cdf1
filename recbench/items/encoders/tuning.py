"""LLM tuning for feature extraction (paper 000 §3.2.0.1, RQ3): LoRA adapters fitted on the
training split only, each cached as a peft folder (artefact kind `lora`).

Methods (LoRA r 8, alpha 32, dropout 0.1 on every linear layer but the LM head: peft's
`all-linear`, LLMEmb's q/k/v/o/gate/up/down on LLaMA):

- `frozen`: no adapter;
- `cpt` (continued pre-training): the causal-LM loss on the training items' texts;
- `sft` (supervised fine-tuning): "Items: <t_1>; ...; <t_k>\\nNext item:" -> " <t_{k+1}>"
  from the training rows (the last `sft_history` history items and the target), the loss on
  the answer tokens only (LLM2Rec's CSFT / TALLRec form; the paper gives no recipe);
- `scft` (LLMEmb's supervised contrastive fine-tuning): two views of each training item,
  each its attributes shuffled and the last floor(0.4 n) dropped (LLMEmb `dropout_feature`),
  mean-pooled last states X, Y (B, d), and the soft-target contrastive loss

      L = 1/B sum_i 1/2 [CE(XY^T/tau, T)_i + CE(YX^T/tau, T^T)_i],
      T = softmax_row(tau (XX^T + YY^T) / 2),

  with tau a learnable parameter initialised to 3 (LLMEmb overrides its CLI value so);
  an item with a single attribute (the P5 Beauty layout: title only) gives two equal views,
  so on such data SCFT only spreads items apart;
- `cpt+sft`: CPT, merged into the weights, then SFT on top (the SFT adapter is trained on the
  merged model; encoding merges both, in order).

CPT and SFT need a causal LM (`smollm2-135m`, a hub decoder); SCFT runs on any backbone
(`minilm-l6` too). The defaults are tiny (`steps` 20, batch 8, 64 tokens) so a tiny run
finishes in minutes on CPU. Cost of a paper-size run: LLMEmb tunes LLaMA-7B for 4,000 steps
of 64 x 4 GPUs at up to 1,024 tokens (DeepSpeed, fp16), i.e. GPU-days. Measured here on a
shared 2-core CPU (load ~11): CPT on SmolLM2-135M, 20 steps of 8 texts (<= 64 tokens each),
took 473 s, so 4,000 steps of 64 x 128 tokens (~3,200x the tokens) would be weeks on this
CPU; it needs a GPU (one GPU runs SmolLM2-135M at that size in the order of an hour).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from recbench.core.artifacts import ArtifactCache, ArtifactSpec, content_hash, texts_hash
from recbench.core.errors import ConfigError
from recbench.items.encoders.encode import LoraRef, merge_lora

log = logging.getLogger("recbench.items.encoders.tuning")

Tuning = Literal["frozen", "cpt", "sft", "scft", "cpt+sft"]
TUNINGS: tuple[str, ...] = ("frozen", "cpt", "sft", "scft", "cpt+sft")
CACHE_VERSION = 1


@dataclass(frozen=True)
class LoraSettings:
    """LoRA and optimisation settings (paper 000 §4.1: r 8, alpha 32; dropout 0.1)."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    steps: int = 20
    batch_size: int = 8
    lr: float = 2e-4
    max_length: int = 64
    sft_history: int = 5
    scft_tau: float = 3.0
    scft_drop: float = 0.4
    seed: int = 0


@dataclass(frozen=True)
class TuningData:
    """What tuning may see: the training split only.

    Attributes:
        texts: every item's text (SAC), item-id order; only training items' rows are read.
        attributes: every item's attribute strings ("name: value"), for SCFT's views.
        train_items: item ids occurring in the training split.
        sequences: training rows as item-id lists (history + target), oldest first.
    """

    texts: list[str]
    attributes: list[list[str]]
    train_items: np.ndarray
    sequences: list[list[int]]

    def fingerprint(self) -> dict[str, str]:
        flat = np.array([i for s in self.sequences for i in (*s, -1)], dtype=np.int64)
        return {"texts": texts_hash(self.texts),
                "attributes": content_hash(self.attributes),
                "train_items": content_hash(np.asarray(self.train_items, dtype=np.int64)),
                "sequences": content_hash(flat)}


def tune(method: Tuning, encoder: str, data: TuningData, cache: ArtifactCache | None = None,
         settings: LoraSettings = LoraSettings(), device: str = "cpu") -> LoraRef | None:
    """The LoRA adapter of `method` on `encoder` (None for `frozen`), fitted or from cache."""
    if method not in TUNINGS:
        raise ConfigError(f"tuning {method!r}: expected one of {', '.join(TUNINGS)}")
    if method == "frozen":
        return None
    cache = cache or ArtifactCache()
    if method == "cpt+sft":
        cpt = tune("cpt", encoder, data, cache, settings, device)
        return _stage("sft", encoder, data, cache, settings, device, base=cpt)
    return _stage(method, encoder, data, cache, settings, device, base=None)


def _stage(method: str, encoder: str, data: TuningData, cache: ArtifactCache,
           settings: LoraSettings, device: str, base: LoraRef | None) -> LoraRef:
    from recbench.models.llm import backbones, catalog

    entry = catalog.resolve(encoder)
    if method in ("cpt", "sft") and entry.family != "decoder":
        raise ConfigError(f"tuning {method}: needs a causal LM backbone; {entry.alias} is an "
                          f"{entry.family} (use scft, or a decoder such as smollm2-135m)")
    source = backbones.source_of(entry)
    kind = "encoder" if method == "scft" else "causal"
    spec = ArtifactSpec("lora", CACHE_VERSION, inputs={**data.fingerprint(),
                                                       "base": base.key if base else ""},
                        model={"model_id": source.model_id, "revision": source.revision,
                               "gguf_file": source.gguf_file},
                        settings={"method": method, **dataclasses.asdict(settings)})

    def build(folder: Path) -> dict:
        t0 = time.perf_counter()
        losses = _fit(method, entry, kind, data, settings, device, base, folder)
        log.info("LoRA %s on %s: %d steps in %.1fs, loss %.4f -> %.4f", method, entry.alias,
                 settings.steps, time.perf_counter() - t0, losses[0], losses[-1])
        return {"losses": losses, "seconds": round(time.perf_counter() - t0, 2)}

    path = cache.folder(spec, build, required=("adapter_config.json",))
    return LoraRef(spec.key, path, kind, method, base)


def _fit(method, entry, kind, data: TuningData, s: LoraSettings, device, base, folder: Path
         ) -> list[float]:
    import torch
    from peft import LoraConfig, get_peft_model

    from recbench.models.llm import backbones

    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    model, tok = backbones.load_backbone(entry, kind=kind, device=device)
    if base is not None:
        model = merge_lora(model, base)
    model = get_peft_model(model, LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                                             target_modules="all-linear",
                                             task_type="CAUSAL_LM" if kind == "causal"
                                             else None))
    model.train()
    tau = torch.nn.Parameter(torch.tensor(float(s.scft_tau), device=device))
    params = [p for p in model.parameters() if p.requires_grad]
    if method == "scft":
        params.append(tau)
    optim = torch.optim.AdamW(params, lr=s.lr)
    train = np.asarray(data.train_items, dtype=np.int64)
    if train.size == 0:
        raise ConfigError("tuning: the training split has no items")
    losses: list[float] = []
    for _ in range(s.steps):
        if method == "cpt":
            batch = [data.texts[i] for i in rng.choice(train, size=s.batch_size)]
            loss = _lm_loss(model, tok, [""] * len(batch), batch, s.max_length, device)
        elif method == "sft":
            rows = [data.sequences[i] for i in rng.integers(len(data.sequences),
                                                             size=s.batch_size)]
            prompts = ["Items: " + "; ".join(data.texts[i] for i in r[:-1][-s.sft_history:])
                       + "\nNext item:" for r in rows]
            answers = [" " + data.texts[r[-1]] for r in rows]
            loss = _lm_loss(model, tok, prompts, answers, s.max_length * 4, device)
        else:
            items = rng.choice(train, size=min(s.batch_size, train.size), replace=False)
            views = [_view(data.attributes[i], s.scft_drop, rng) for i in items]
            views2 = [_view(data.attributes[i], s.scft_drop, rng) for i in items]
            from recbench.items.encoders.contrastive import soft_contrastive_loss

            x = _mean_pooled(model, tok, views, s.max_length, device)
            y = _mean_pooled(model, tok, views2, s.max_length, device)
            loss = soft_contrastive_loss(x, y, tau)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(round(float(loss.detach()), 5))
    model.save_pretrained(str(folder))
    return losses


def _view(attributes: list[str], drop: float, rng: np.random.Generator) -> str:
    """LLMEmb's `dropout_feature`: shuffle the attributes, drop the last floor(drop n)."""
    order = list(rng.permutation(len(attributes))) if attributes else []
    keep = len(order) - int(np.floor(drop * len(order)))
    return "; ".join(attributes[i] for i in order[:max(keep, 1)]) if attributes else ""


def _lm_loss(model, tok, prompts: list[str], answers: list[str], max_length: int, device):
    """Causal-LM loss over `answers` given `prompts` (prompt tokens are not scored; an empty
    prompt scores the whole text)."""
    import torch

    seqs, labels = [], []
    eos = tok.eos_token_id
    for p, a in zip(prompts, answers, strict=True):
        pi = tok(p, add_special_tokens=False)["input_ids"] if p else []
        ai = tok(a, add_special_tokens=False)["input_ids"] + ([eos] if eos is not None else [])
        ids = (pi + ai)[-max_length:]
        n_answer = min(len(ai), len(ids))
        seqs.append(ids)
        labels.append([-100] * (len(ids) - n_answer) + ids[len(ids) - n_answer:])
    width = max(len(x) for x in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    target = torch.full_like(input_ids, -100)
    for r, (x, y) in enumerate(zip(seqs, labels, strict=True)):
        input_ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
        target[r, :len(y)] = torch.tensor(y)
    out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                labels=target.to(device))
    return out.loss


def _mean_pooled(model, tok, texts: list[str], max_length: int, device):
    from recbench.items.encoders.pooling import pool

    batch = tok([t or " " for t in texts], truncation=True, max_length=max_length,
                padding=True, return_tensors="pt").to(device)
    hidden = model(**batch).last_hidden_state.float()
    return pool(hidden, batch["attention_mask"], "mean")
