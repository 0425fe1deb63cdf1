"""Group E: an LLM reading item text, zero-shot or LoRA fine-tuned (RecBench §3.1, Eq. 6).

A (history, candidate) pair becomes the RecBench CTR prompt (`prompts`); the click probability is
P(YES) = softmax(l_yes, l_no) at the last prompt position (`scoring`), scored in length-sorted
batches with each user's prefix (system prompt + history) run once.

- `mode=zero-shot`: the backbone as it is (decoders only: an encoder has no next-token head that
  could answer; its [CLS] head means nothing before training).
- `mode=finetune`: LoRA (peft; r=32, α=128, lr 1e-4, batch 64 as in §4.3) on the prepared
  fine-tune split, BCE on P(YES) (= BCE with logits on l_yes - l_no), early stopping on valid
  GAUC by the shared training loop. An encoder gets a linear head over [CLS] instead of YES/NO.
  The adapter is saved in peft's format under `<home>/cache/adapters/` (see the record's notes)
  and `--set adapter=DIR` scores with a saved one instead of training.

`--model smollm2-135m` in group E means this model with `backbone=smollm2-135m`; `--model gpt-3.5`
(an `openai` catalog entry) is handed to `recbench.models.llm.openai_backend`.

`--set backend=...` chooses who runs the backbone (`auto`: the catalog's, i.e. `hf` for local
weights and `openai` for API models):
- `hf`: transformers in process (the only one that fine-tunes);
- `llamacpp`: llama-cpp-python in process on the backbone's GGUF file (`recbench.llm.backends.
  llamacpp`), CPU, `llamacpp_threads` threads; zero-shot;
- `vllm`: vLLM's in-process engine (`recbench.models.llm.vllm_backend`, a CUDA GPU); zero-shot;
- `openai`: an OpenAI-compatible server at `base_url` serving the backbone (under `api_model`,
  else its hub id).
`hf`, `llamacpp` and `vllm` score the same prompts: one prompt builder over the backbone's
tokenizer (for `llamacpp` the transformers tokenizer of the same GGUF, so the token ids and the
YES/NO tokens are the `hf` path's); the record's notes say which backend scored.
"""

from __future__ import annotations

import copy
import json
import logging
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl
import torch
from torch import nn

from recbench import metrics
from recbench.core.config import Count, Dropout, NonNegativeInt, PositiveFloat
from recbench.core.errors import ConfigError, RecbenchError
from recbench.llm.backends import require
from recbench.models.base import Recommender, RunContext, TaskData
from recbench.models.llm.backbones import BackboneSource, load_backbone, source_of
from recbench.models.llm.catalog import OPENAI_PREFIX, LLMEntry, resolve
from recbench.models.llm.openai_backend import APISettings
from recbench.models.llm.prompts import (
    MAX_HISTORY,
    TEMPLATE,
    PromptBuilder,
    item_texts,
    make_style,
    row_texts,
)
from recbench.models.llm.scoring import (
    BatchScorer,
    ClsHead,
    YesNoHead,
    choose_answer_tokens,
    pad_right,
    token_batches,
)
from recbench.training.loop import TrainConfig, describe, train

log = logging.getLogger("recbench.models.llm")
ADAPTER_META = "recbench_adapter.json"
HEAD_FILE = "cls_head.pt"


class LLMTextConfig(TrainConfig, APISettings):
    """Settings of `LLM-text` (training defaults: RecBench §4.3 for LLMs under 7B).

    The `APISettings` fields (`base_url`, `api_model`, `concurrency`, ...) reach the client when
    the backbone is served over an API (`gpt-3.5`, `openai:NAME`); the hf path ignores them.
    """

    backbone: str = "smollm2-135m"  # a catalog alias, hf:ORG/NAME, ORG/NAME or a local folder
    mode: Literal["zero-shot", "finetune"] = "zero-shot"
    # who runs the backbone (module docstring); auto: the catalog's (hf local, openai API)
    backend: Literal["auto", "hf", "openai", "vllm", "llamacpp"] = "auto"
    llamacpp_threads: Count = 1  # llama.cpp's CPU threads (1: the latency protocol's)
    max_len: Count = 1024  # token budget of one prompt (clamped to the model's positions)
    max_history: Count = MAX_HISTORY
    chat_template: Literal["auto", "on", "off"] = "auto"  # auto: as the catalog says
    batch_tokens: Count = 8192  # padded tokens per scoring forward pass
    train_batch_tokens: Count = 4096  # padded tokens per micro-batch within one optimiser step
    prefix_sharing: bool = True
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"  # auto: bf16 CUDA, fp32 CPU
    device_map: str | None = None  # e.g. "auto": accelerate spreads the layers over the GPUs
    quantization: Literal["none", "8bit", "4bit"] = "none"  # bitsandbytes weights (CUDA only)
    trust_remote_code: bool = False  # opt in to a checkpoint's own modelling code (catalog)
    lora_r: Count = 32
    lora_alpha: Count = 128
    lora_dropout: Dropout = 0.1
    lora_targets: list[str] | None = None  # None: peft's default modules for the architecture
    gradient_checkpointing: bool = False
    adapter: str | None = None  # a saved adapter folder: score with it instead of training
    lr: PositiveFloat = 1e-4
    batch_size: Count = 64
    epochs: Count = 10
    patience: NonNegativeInt = 2


# --- loaded backbones, shared within a process -----------------------------------------------

_LOADED: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
_KEEP = 2  # models kept loaded (runs after one another on one backbone load it once)


def cached_backbone(entry: LLMEntry, kind: str, device: str, dtype: torch.dtype | None,
                    device_map: str | None = None, quantization: str = "none"
                    ) -> tuple[Any, Any]:
    """`load_backbone`, remembered for the process. Callers must not modify the model."""
    key = (entry, kind, device, str(dtype), device_map, quantization)
    if key not in _LOADED:
        while len(_LOADED) >= _KEEP:
            _LOADED.popitem(last=False)
        _LOADED[key] = load_backbone(entry, kind, device, dtype, device_map, quantization)
    _LOADED.move_to_end(key)
    return _LOADED[key]


def private_copy(entry: LLMEntry, kind: str, device: str, dtype: torch.dtype | None,
                 device_map: str | None = None, quantization: str = "none"
                 ) -> tuple[Any, Any]:
    """A model that may be modified (LoRA is injected in place): a copy of the cached one
    when small and unquantized, else the cached one itself, taken out of the cache."""
    model, tokenizer = cached_backbone(entry, kind, device, dtype, device_map, quantization)
    if (quantization == "none" and device_map is None
            and sum(p.numel() for p in model.parameters()) <= 2_000_000_000):
        return copy.deepcopy(model), tokenizer
    _LOADED.pop((entry, kind, device, str(dtype), device_map, quantization), None)
    return model, tokenizer


class _TrainableState(nn.Module):
    """The click model as the training loop sees it: `state_dict` holds only the trainable
    tensors (LoRA, head), so best-epoch copies and checkpoints stay adapter-sized."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.net(*args, **kwargs)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # noqa: ARG002
        return {n: p.detach().clone() for n, p in self.net.named_parameters() if p.requires_grad}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True,
                        assign: bool = False) -> None:  # noqa: ARG002
        params = dict(self.net.named_parameters())
        unknown = [n for n in state if n not in params]
        if unknown:
            raise RecbenchError(f"checkpoint holds unknown parameters: {unknown[:3]}")
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)


def accumulated_bce(net: nn.Module, batch: dict[str, torch.Tensor], budget: int,
                    params: list[nn.Parameter]) -> torch.Tensor:
    """BCE on P(YES) (mean over the batch), run in micro-batches of at most `budget` padded
    tokens.

    With several micro-batches their gradients are accumulated here and returned through a
    surrogate whose value is the loss and whose gradient is the accumulated one, since the
    training loop calls `backward` once on what the loss function returns.
    """
    ids, mask, label = batch["input_ids"], batch["attention_mask"], batch["label"]
    lengths = mask.sum(1)
    parts = token_batches(lengths.tolist(), budget)
    n = len(label)

    def part_loss(idx: np.ndarray) -> torch.Tensor:
        rows = torch.as_tensor(idx, device=ids.device)
        width = int(lengths[rows].max())
        logit = net(ids[rows, :width], mask[rows, :width], lengths[rows] - 1)
        return nn.functional.binary_cross_entropy_with_logits(
            logit, label[rows].float(), reduction="sum") / n

    if len(parts) == 1:
        return part_loss(parts[0])
    for p in params:
        p.grad = None
    total = 0.0
    for idx in parts:
        loss = part_loss(idx)
        loss.backward()
        total += float(loss.detach())
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    for p in params:
        p.grad = None
    surrogate = sum((p * g).sum() for p, g in zip(params, grads, strict=True))
    return surrogate - surrogate.detach() + total


class LLMText(Recommender):
    """RecBench group E: P(YES) of an LLM reading the user's history and the candidate as text."""

    Config: ClassVar[type[LLMTextConfig]] = LLMTextConfig
    tasks = ("ctr",)
    mode = "zero-shot"

    def __init__(self, config: LLMTextConfig, ctx: RunContext):
        super().__init__(config, ctx)
        self._api: Recommender | None = None
        self.lm: Any = None  # the llamacpp / vllm scorer; None on the hf path
        if config.backbone.startswith(OPENAI_PREFIX):  # any OpenAI-compatible endpoint
            self.backend = _chosen_backend(config.backend, "openai", config.backbone)
            self._api = _api_model(config.backbone, "openai", config, ctx)
            return
        self.entry = resolve(config.backbone, trust_remote_code=config.trust_remote_code)
        self.backend = _chosen_backend(config.backend, self.entry.backend, self.entry.alias)
        if self.backend == "openai":  # an API model, or local weights served by a server
            served = self.entry.alias if self.entry.backend == "openai" else \
                OPENAI_PREFIX + (config.api_model or self.entry.source)
            self._api = _api_model(served, "openai", config, ctx)
            return
        if self.entry.family == "seq2seq":
            raise ConfigError(f"backbone {self.entry.alias!r} is an encoder-decoder (T5-like) "
                              "model; LLM-text scores encoders and decoders only")
        self.encoder = self.entry.family == "encoder"
        if self.encoder and config.mode == "zero-shot":
            raise ConfigError(f"backbone {self.entry.alias!r} is an encoder: it has no "
                              "next-token head to answer Yes/No, so zero-shot scoring is not "
                              "meaningful; use --mode finetune (a [CLS] head is trained)")
        if config.adapter is not None and config.mode != "finetune":
            raise ConfigError("--set adapter=... scores with a fine-tuned adapter: add "
                              "--mode finetune")
        if self.backend in ("llamacpp", "vllm"):
            if config.mode != "zero-shot":
                raise ConfigError(f"backend={self.backend} scores zero-shot only (LoRA "
                                  "fine-tuning runs on backend=hf): drop --mode finetune")
            if self.backend == "llamacpp" and self.entry.gguf_file is None:
                raise ConfigError(f"backend=llamacpp reads a GGUF file; backbone "
                                  f"{self.entry.alias!r} has none: use smollm2-135m or "
                                  "--model /path/to/model.gguf")
            require(self.backend)  # the install hint before any data loads
        self.source = source_of(self.entry)
        if self.backend == "vllm" and self.entry.local_dir is None:
            # vLLM loads the transformers checkpoint of the hub id, not packaged GGUF weights
            self.source = BackboneSource(self.entry.alias, self.entry.source, self.entry.revision)
        self.result = None
        self.adapter_dir: Path | None = None

    # -- what the record says ------------------------------------------------------------------
    @property
    def run_mode(self) -> str:
        return self.config.mode

    @property
    def model_id(self) -> str:
        return self._api.model_id if self._api is not None else self.entry.name

    @property
    def model_revision(self) -> str | None:
        return self._api.model_revision if self._api is not None else self.source.revision

    # -- setup ---------------------------------------------------------------------------------
    def _dtype(self) -> torch.dtype | None:
        return None if self.config.dtype == "auto" else getattr(torch, self.config.dtype)

    def _setup(self, data: TaskData) -> None:
        if self.backend != "hf":
            self._setup_engine(data)
            return
        cfg, ctx = self.config, self.ctx
        self.texts = item_texts(data.items)
        kind = "encoder" if self.encoder else "causal"
        load = private_copy if cfg.mode == "finetune" else cached_backbone
        model, self.tokenizer = load(self.entry, kind, ctx.device, self._dtype(),
                                     cfg.device_map, cfg.quantization)
        positions = getattr(model.config, "max_position_embeddings", None) or cfg.max_len
        self.max_len = min(cfg.max_len, int(positions))
        style = make_style(self.entry, self.tokenizer, cfg.chat_template, encoder=self.encoder)
        if self.encoder:
            self.answer = None
        else:
            self.answer, style = choose_answer_tokens(self.tokenizer, style)
        self.style = style
        self.builder = PromptBuilder(self.tokenizer, style, self.max_len, cfg.max_history)
        if cfg.mode == "finetune":
            model = self._attach_lora(model)
        net = (ClsHead(model, model.config.hidden_size) if self.encoder
               else YesNoHead(model, self.answer))
        if cfg.device_map is None and cfg.quantization == "none":
            net.to(ctx.device)
        elif self.encoder:  # the backbone stays where the loader placed it; only the head moves
            net.head.to(ctx.device)
        self.net = net.eval()
        self.scorer = BatchScorer(self.net, self.tokenizer.pad_token_id, cfg.batch_tokens,
                                  cfg.prefix_sharing)

    def _setup_engine(self, data: TaskData) -> None:
        """backend llamacpp / vllm: the hf path's prompts and YES/NO tokens, another engine."""
        cfg = self.config
        self.texts = item_texts(data.items)
        self.max_len = cfg.max_len
        if self.backend == "llamacpp":
            from recbench.llm.backends.llamacpp import (
                LlamaCppBackend,
                LlamaCppConfig,
                gguf_tokenizer,
            )

            path = self.entry.gguf_path()
            self.tokenizer = gguf_tokenizer(str(path))
        else:
            from recbench.models.llm.vllm_backend import VLLMConfig, VLLMScorer

            engine = VLLMScorer(VLLMConfig(
                model=self.entry.local_dir or self.entry.source, revision=self.entry.revision,
                seed=self.ctx.seed, top_logprobs=cfg.top_logprobs,
                trust_remote_code=self.entry.trust_remote_code))
            self.tokenizer = engine.llm.get_tokenizer()
        style = make_style(self.entry, self.tokenizer, cfg.chat_template)
        self.answer, self.style = choose_answer_tokens(self.tokenizer, style)
        self.builder = PromptBuilder(self.tokenizer, self.style, self.max_len, cfg.max_history)
        if self.backend == "llamacpp":
            self.lm = LlamaCppBackend(
                LlamaCppConfig(model_path=str(path), n_threads=cfg.llamacpp_threads,
                               n_ctx=self.max_len, prefix_reuse=cfg.prefix_sharing),
                yes_no=(self.answer.yes_id, self.answer.no_id))
        else:
            self.lm = _VLLMText(engine)

    def _attach_lora(self, model: nn.Module) -> nn.Module:
        from peft import LoraConfig, PeftModel, get_peft_model

        cfg = self.config
        if cfg.adapter is not None:
            folder = Path(cfg.adapter)
            if not (folder / "adapter_config.json").is_file():
                raise ConfigError(f"adapter {folder}: no adapter_config.json (expected a folder "
                                  "written by a finetune run)")
            return PeftModel.from_pretrained(model, str(folder), is_trainable=False)
        if cfg.quantization != "none":  # QLoRA: norms in fp32, input grads for checkpointing
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=cfg.gradient_checkpointing)
        elif cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=cfg.lora_targets, bias="none")
        return get_peft_model(model, lora)

    # -- training ------------------------------------------------------------------------------
    def fit(self, data: TaskData) -> None:
        if self._api is not None:
            self._api.fit(data)
            return
        self._setup(data)
        cfg = self.config
        if cfg.mode != "finetune":
            return
        if cfg.adapter is not None:
            if self.encoder:
                head = Path(cfg.adapter) / HEAD_FILE
                try:  # weights only: an adapter folder is user data, its pickle must not run code
                    state = torch.load(head, map_location=self.ctx.device, weights_only=True)
                except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
                    raise ConfigError(f"--set adapter: {head} is not a saved [CLS] head (a "
                                      f"weights-only state dict): {exc.__class__.__name__}"
                                      ) from None
                self.net.head.load_state_dict(state)
            self.adapter_dir = Path(cfg.adapter)
            return
        self._finetune(data)
        self.adapter_dir = self._save_default()

    def _finetune(self, data: TaskData) -> None:
        cfg, ctx = self.config, self.ctx
        prompts = self.builder.build_many(*row_texts(data.train, self.texts))
        seqs = [p.prefix_ids + p.suffix_ids for p in prompts]
        labels = data.train["label"].to_numpy().astype(np.float32)
        valid = data.valid
        users, valid_labels = valid["user_id"].to_numpy(), valid["label"].to_numpy()
        pad = self.tokenizer.pad_token_id
        rng = np.random.default_rng(ctx.seed)
        n = len(seqs)
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        module = _TrainableState(self.net)

        def batches(_epoch: int):
            order = rng.permutation(n)
            for start in range(0, n, cfg.batch_size):
                idx = order[start:start + cfg.batch_size]
                ids, mask = pad_right([seqs[i] for i in idx], pad)
                yield {"input_ids": ids, "attention_mask": mask,
                       "label": torch.from_numpy(labels[idx])}

        def loss_fn(mod: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return accumulated_bce(mod, batch, cfg.train_batch_tokens, trainable)

        def validate(_mod: nn.Module) -> float:
            return metrics.gauc(users, valid_labels, self.predict_ctr(valid))

        self.result = train(module, batches, loss_fn, validate, cfg, ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), params=trainable,
                            rng=rng)
        self.net.eval()

    # -- adapters ------------------------------------------------------------------------------
    def save_adapter(self, folder: Path) -> Path:
        """Write the fine-tuned adapter (peft format; plus the [CLS] head for encoders)."""
        lm = self.net.encoder if self.encoder else self.net.lm
        if not hasattr(lm, "save_pretrained") or not hasattr(lm, "peft_config"):
            raise RecbenchError("only a fine-tuned (LoRA) model has an adapter to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lm.save_pretrained(str(folder))
        if self.encoder:
            torch.save(self.net.head.state_dict(), folder / HEAD_FILE)
        meta = {"backbone": self.entry.alias, "model_id": self.source.model_id,
                "revision": self.source.revision, "prompt": self.style.describe(),
                "answer": self.answer.describe() if self.answer else "[CLS] head",
                "lora": {"r": self.config.lora_r, "alpha": self.config.lora_alpha,
                         "dropout": self.config.lora_dropout}}
        (folder / ADAPTER_META).write_text(json.dumps(meta, indent=1))
        return folder

    def _save_default(self) -> Path | None:
        ctx = self.ctx
        if ctx.cache_dir is None or ctx.smoke:
            return None
        name = Path(ctx.work_dir).name.removesuffix(".work") if ctx.work_dir else \
            f"{self.entry.alias.replace('/', '_')}-seed{ctx.seed}"
        return self.save_adapter(Path(ctx.cache_dir) / "adapters" / name)

    # -- scoring -------------------------------------------------------------------------------
    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        if self._api is not None:
            return self._api.predict_ctr(rows)
        if rows.height == 0:
            return np.zeros(0, dtype=np.float32)
        prompts = self.builder.build_many(*row_texts(rows, self.texts))
        if self.lm is not None:
            return self.lm.score_yes_no(prompts)
        return self.scorer.probabilities(prompts)

    def notes(self) -> list[str]:
        if self._api is not None:
            return ["backend openai: an OpenAI-compatible server", *self._api.notes()]
        cfg = self.config
        out = [f"backbone {self.entry.alias} = {self.source.model_id} "
               f"(revision {self.source.revision}); mode {cfg.mode}",
               f"prompt: {self.style.describe()}; template {TEMPLATE!r} after the system "
               f"prompt; last {cfg.max_history} history items; token budget {self.max_len}",
               f"prompt lengths: {self.builder.stats.describe()}"]
        if self.encoder:
            out.append("score: sigmoid of a linear head over [CLS] (an encoder has no "
                       "next-token head: Eq. 6 is not read); trained with BCE")
        else:
            out.append(f"score: {self.answer.describe()}")
        if self.lm is not None:
            out.append(self.lm.describe())
            return out
        import transformers

        placed = getattr(self.net.encoder if self.encoder else self.net.lm, "recbench_source",
                         None)
        where = f"{placed.dtype} on {placed.device}" if placed is not None else self.ctx.device
        out.append(f"backend hf: transformers {transformers.__version__} in process, {where}")
        out.append(self.scorer.describe())
        if cfg.mode == "finetune":
            out.append(f"LoRA r={cfg.lora_r} alpha={cfg.lora_alpha} dropout={cfg.lora_dropout} "
                       f"targets {cfg.lora_targets or 'peft default'}; lr {cfg.lr}, batch "
                       f"{cfg.batch_size}; BCE on P(YES), early stopping on valid GAUC")
            if self.result is not None:
                out.append(f"training: {describe(self.result)}")
            if self.adapter_dir is not None:
                out.append(f"adapter (peft format): {self.adapter_dir}; score with it again: "
                           f"--mode finetune --set adapter={self.adapter_dir}")
        return out


def _chosen_backend(setting: str, native: str, backbone: str) -> str:
    """The backend that runs `backbone`: its own (`native`, from the catalog) for `auto`,
    else the one asked for, which must be able to run it."""
    if setting == "auto":
        return native
    if native == "openai" and setting != "openai":
        raise ConfigError(f"backend={setting}: backbone {backbone!r} is served over an "
                          "OpenAI-compatible API and has no local weights; use backend=openai "
                          "(or auto)")
    return setting


class _VLLMText:
    """backend vllm: the group-E prompt texts through vLLM's engine (P(YES) from the first
    token's top logprobs, `recbench.models.llm.vllm_backend`); vLLM tokenises the texts."""

    def __init__(self, engine: Any):
        from recbench.models.llm.openai_backend import LogprobStats

        self.engine = engine
        self.stats = LogprobStats()

    def score_yes_no(self, prompts: list) -> np.ndarray:
        return self.engine.score_yes_no([p.text for p in prompts], stats=self.stats)

    def describe(self) -> str:
        cfg = self.engine.cfg
        return "; ".join([f"backend vllm: vLLM {self.engine.version} in process, model "
                          f"{cfg.model} (revision {cfg.revision or 'main'}), P(YES) from the "
                          f"first token's top-{cfg.top_logprobs} logprobs", *self.stats.notes()])


def _api_model(backbone: str, backend: str, config: LLMTextConfig, ctx: RunContext
               ) -> Recommender:
    """The group-E model of an API backbone (`openai` catalog entries, `openai:NAME`):
    zero-shot only, with the `APISettings` fields of `config` (`--set base_url=...`)."""
    if config.mode != "zero-shot":
        raise ConfigError(f"backbone {backbone!r} is served over the {backend} API: it can "
                          "only be scored zero-shot (drop --mode finetune)")
    from recbench.models.llm.openai_backend import OpenAIText

    return OpenAIText.from_settings(backbone, config, ctx)
