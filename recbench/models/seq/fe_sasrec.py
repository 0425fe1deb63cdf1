"""FE-SASRec: SASRec over LLM-extracted item features, the RecXplore pipeline (paper 000 §3).

One model whose settings are the paper's design choices (a suite row is a set of settings,
never a class per combination):

    items.parquet -> text (sac | keyword | summary | expansion)        recbench.items.text
                  -> LLM tuning (frozen | cpt | sft | scft | cpt+sft)  recbench.items.encoders
                  -> pooling (mean | max | last | eol) -> v_i (D)      recbench.items.encoders
                  -> [PCA to pca_dim] -> adapter (linear | mlp | pq | moe)
                  -> fusion (replace | concat | align) -> e_i (dim)    recbench.items.fusion
                  -> SASRec (causal; `non_causal` for LLMEmb parity), scores e_i^T h_L

The base configuration of §4.1 is the default: SAC, frozen LLM, mean pooling, a linear
adapter without PCA, replace. The LLM stages run once and are cached (`core/artifacts`);
the adapter and SASRec are trained together with SASRec's causal objective (plus the
alignment loss under `align`). `concat` and `align` need a pre-trained ID SASRec: one is
trained first on the same training split (cached as kind `id_vectors`). Every artefact used
is listed in the record's notes and in `ctx.extra["artifacts"]`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from recbench.core.artifacts import ArtifactCache, ArtifactSpec, content_hash
from recbench.core.config import Count, Dropout, PositiveFloat
from recbench.items import training_items
from recbench.items.embeddings import cache_root
from recbench.items.fusion import AdaptedTable, AdapterSettings
from recbench.items.text import enhance_texts, sac_texts
from recbench.models.base import TaskData
from recbench.models.seq.sasrec import SASRec, SASRecConfig, SASRecEncoder


class FESASRecConfig(SASRecConfig):
    """The RecXplore design choices (defaults: the base configuration of paper 000 §4.1)."""

    items: Literal["adapted"] = "adapted"
    text: Literal["sac", "keyword", "summary", "expansion"] = "sac"
    generator: str = "smollm2-135m"  # the LLM writing keyword / summary / expansion text
    generator_backend: Literal["llamacpp", "hf"] = "llamacpp"
    tuning: Literal["frozen", "cpt", "sft", "scft", "cpt+sft"] = "frozen"
    tuning_steps: Count = 20
    tuning_batch_size: Count = 8
    tuning_lr: PositiveFloat = 2e-4
    text_max_length: Count = 64  # tokens of item text the encoder reads
    adapter: Literal["linear", "mlp", "pq", "moe"] = "linear"
    fusion: Literal["replace", "concat", "align"] = "replace"
    id_dim: Count | None = None  # concat: the ID part's width (default dim // 2)
    align_weight: PositiveFloat = 0.01  # LLMEmb's alpha
    align_tau: PositiveFloat = 2.0  # LLMEmb's tau
    adapter_dropout: Dropout = 0.2
    n_experts: Count = 8
    pq_codebooks: Count = 8
    pq_codes: Count = 256
    non_causal: bool = False  # LLMEmb's SASRec attends both ways (parity switch)
    pretrain_epochs: Count = 200  # the ID SASRec that concat / align start from


class FESASRec(SASRec):
    """SASRec over adapted LLM item features (RecXplore, paper 000)."""

    Config = FESASRecConfig
    paper_name = "FE-SASRec"

    @property
    def model_id(self) -> str:
        return "FE-SASRec"

    def encoder(self, items) -> nn.Module:
        cfg = self.config
        return SASRecEncoder(items, cfg.max_len, cfg.n_layers, cfg.heads, cfg.dropout,
                             cfg.scale_embeddings, causal=not cfg.non_causal)

    # -- the item pipeline -------------------------------------------------------------------
    def item_table(self, data: TaskData) -> nn.Module:
        from recbench.items.encoders.encode import encode_items
        from recbench.items.encoders.tuning import LoraSettings, TuningData, tune

        cfg, ctx = self.config, self.ctx
        cache = ArtifactCache(cache_root(ctx))
        sac = sac_texts(data.items)
        texts = sac if cfg.text == "sac" else enhance_texts(sac, cfg.text, self._generator(),
                                                            cache)
        known = training_items(data)
        lora = None
        if cfg.tuning != "frozen":
            seqs = data.train.select(pl.concat_list("history", "target").alias("s"))["s"]
            tdata = TuningData(texts, [t.split("; ") if t else [] for t in sac], known,
                               [list(map(int, s)) for s in seqs.to_list()])
            lora = tune(cfg.tuning, cfg.encoder, tdata, cache,
                        LoraSettings(steps=cfg.tuning_steps, batch_size=cfg.tuning_batch_size,
                                     lr=cfg.tuning_lr, max_length=cfg.text_max_length,
                                     seed=ctx.seed), device=ctx.device)
        encoded = encode_items(texts, cfg.encoder, cfg.pooling, cache,
                               max_length=cfg.text_max_length, lora=lora, device=ctx.device,
                               reporter=ctx.extra.get("reporter"))
        id_vectors = None
        if cfg.fusion != "replace":
            width = (cfg.id_dim or cfg.dim // 2) if cfg.fusion == "concat" else cfg.dim
            id_vectors = self._pretrained_ids(data, width, cache)
        settings = AdapterSettings(adapter=cfg.adapter, pca_dim=cfg.pca_dim, fusion=cfg.fusion,
                                   id_dim=cfg.id_dim, align_weight=cfg.align_weight,
                                   align_tau=cfg.align_tau, dropout=cfg.adapter_dropout,
                                   n_experts=cfg.n_experts, pq_codebooks=cfg.pq_codebooks,
                                   pq_codes=cfg.pq_codes, seed=ctx.seed)
        table = AdaptedTable(encoded.vectors, known, cfg.dim, settings, id_vectors)
        self.provenance = {**cache.provenance(), "vectors": encoded.provenance,
                           "adapter": table.info}
        ctx.extra.setdefault("artifacts", []).append(self.provenance)
        return table

    def _generator(self):
        cfg = self.config
        if cfg.generator_backend == "hf":
            from recbench.items.text.enhance import HFGenerator

            return HFGenerator(cfg.generator, self.ctx.device)
        from recbench.items.text.enhance import LlamaCppGenerator
        from recbench.models.llm import catalog

        entry = catalog.resolve(cfg.generator)
        folder = entry.weights_dir()
        if folder is None or not entry.gguf_file:
            from recbench.core.errors import ConfigError

            raise ConfigError(f"generator_backend=llamacpp needs a GGUF model; "
                              f"{cfg.generator!r} has none (use generator_backend=hf)")
        return LlamaCppGenerator(folder / entry.gguf_file)

    def _pretrained_ids(self, data: TaskData, width: int, cache: ArtifactCache) -> np.ndarray:
        """(n_items, width) item vectors of an ID SASRec trained on the training split."""
        cfg = self.config
        heads = cfg.heads if width % cfg.heads == 0 else 1
        id_cfg = SASRecConfig(dim=width, n_layers=cfg.n_layers, heads=heads,
                              dropout=cfg.dropout, max_len=cfg.max_len,
                              epochs=cfg.pretrain_epochs, patience=cfg.patience,
                              batch_size=cfg.batch_size, lr=cfg.lr)
        seqs = data.train.select(pl.concat_list("history", "target").alias("s"))["s"]
        spec = ArtifactSpec("id_vectors", 1,
                            inputs={"dataset": str(data.manifest.get("content_hash", "")),
                                    "train": content_hash(seqs.to_list()),
                                    "n_items": str(data.n_items)},
                            settings={"sasrec": id_cfg.model_dump(mode="json"),
                                      "seed": self.ctx.seed})

        def build() -> np.ndarray:
            ctx = dataclasses.replace(self.ctx, work_dir=None, extra=dict(self.ctx.extra))
            model = SASRec(id_cfg, ctx)
            model.fit(data)
            with torch.no_grad():
                return model.item_matrix().cpu().numpy().astype(np.float32)

        return cache.array(spec, build)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """SASRec's causal objective, plus the alignment loss under `fusion=align`."""
        loss = super().loss(module, batch)
        aux = self.items.aux_loss(batch["seq"][:, 1:])
        return loss if aux is None else loss + aux

    def notes(self) -> list[str]:
        p = getattr(self, "provenance", None)
        if not p:
            return super().notes()
        v = p["vectors"]
        arts = ", ".join(f"{a['kind']}:{a['key']}({'hit' if a['hit'] else 'miss'})"
                         for a in p["artifacts"])
        return [*super().notes(),
                f"vectors: {v['encoder']} ({v['model_id']} @ {v['revision']}), {v['pooling']} "
                f"pooling, {v['dim']}-d, lora {v['lora']['method'] if v['lora'] else 'none'}",
                f"causal: {not self.config.non_causal}",
                f"artifacts: {arts} (hits {p['hits']}, misses {p['misses']})"]
