"""P5-style LLM recommenders over unique-ID item tokens: RecBench groups D (CTR) and I (SeqRec).

Each item is one new token `<item_i>` (`recbench.models.llm.item_tokens`); a prompt is the
user's history (the newest 20 items) written as item tokens. The backbone is fine-tuned with
LoRA plus the V new embedding rows (RecBench §4.3: lr 1e-4, batch 64; LoRA r=32, α=128 for CTR
and r=α=128 for SeqRec) by the shared training loop, then merged for inference.

- `P5CTR` (group D): the prompt adds the candidate's token and an answer cue. A decoder's click
  probability is softmax(l_yes, l_no) at the final position (Eq. 6), trained with BCE on
  l_yes - l_no; an encoder (BERT-like: no next-token head) uses a linear head over [CLS]
  trained with BCE. Both heads are group E's (`scoring.YesNoHead`, `scoring.ClsHead`), so the
  two groups read a click the same way. Early stopping on valid GAUC.
- `P5Seq` (group I): f(s_u, t) is the final position's LM logit of t's token (decoder; Eq. 8
  with v_t = the token's output row) or [CLS] · t's input row (encoder), over all V item
  tokens; trained with cross-entropy over all items (Eq. 7). Early stopping on valid NDCG@10.
"""

from __future__ import annotations

import collections
import inspect
from typing import ClassVar

import numpy as np
import polars as pl
import torch
from torch import nn

from recbench import metrics
from recbench.core.config import Count, Dropout, PositiveFloat
from recbench.core.errors import RecbenchError
from recbench.items import training_items
from recbench.models.base import Recommender, RunContext, TaskData
from recbench.models.llm.backbones import load_backbone, source_of
from recbench.models.llm.catalog import resolve
from recbench.models.llm.item_tokens import (
    ItemVocabulary,
    add_item_tokens,
    attach_lora,
    count_parameters,
)
from recbench.models.llm.scoring import ANSWER_WORDS, AnswerTokens, ClsHead, YesNoHead
from recbench.training.loop import TrainConfig, describe, train

CTR_PROMPT = "User history: {history}\nCandidate item: {item}\nAnswer (Yes/No):"
SEQ_PROMPT = "User history: {history}\nNext item:"
EMPTY_HISTORY = "(none)"


class P5Config(TrainConfig):
    """A P5 construction around one backbone (an alias, hub id or local path)."""

    backbone: str = "minilm-l6"
    lr: PositiveFloat = 1e-4
    batch_size: Count = 64
    lora_r: Count = 32
    lora_alpha: Count = 128
    lora_dropout: Dropout = 0.0
    lora_targets: list[str] | None = None  # None: peft's default (attention query/value)
    max_history: Count = 20
    infer_batch_size: Count = 32
    trust_remote_code: bool = False  # opt in to a checkpoint's own modelling code (catalog)


class P5SeqConfig(P5Config):
    lora_r: Count = 128  # RecBench §4.3: r = α = 128 for list-wise recommendation


class P5Net(nn.Module):
    """The LoRA-wrapped backbone behind both recommenders, with group E's click heads for CTR.

    `body` is what trains: the peft model (SeqRec) or a `YesNoHead` / `ClsHead` around it (CTR).
    `state_dict()` holds only the trained parameters (LoRA, item-token rows, [CLS] head): the
    frozen backbone is reloaded from its source, so checkpoints and best-epoch copies stay small.
    """

    def __init__(self, lm: nn.Module, vocab: ItemVocabulary, encoder: bool,
                 click: nn.Module | None = None):
        super().__init__()
        self.body = click if click is not None else lm
        self._lm = [lm]  # a list: registered once, through `body`
        self.vocab, self.encoder = vocab, encoder
        self.keep_logits = not encoder and "logits_to_keep" in inspect.signature(
            (lm.get_base_model() if hasattr(lm, "get_base_model") else lm).forward).parameters
        self._trained = {n for n, p in self.named_parameters() if p.requires_grad}

    @property
    def lm(self) -> nn.Module:
        return self._lm[0]

    def state_dict(self, *args, **kwargs):
        full = super().state_dict(*args, **kwargs)
        prefix = kwargs.get("prefix", "")
        return collections.OrderedDict((k, v) for k, v in full.items()
                                       if k[len(prefix):] in self._trained)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        missing = self._trained - set(state_dict)
        if strict and missing:
            raise RuntimeError(f"checkpoint lacks trained parameters: {sorted(missing)[:5]}")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    def merge(self) -> None:
        """Fold LoRA and the trained item rows into the backbone (training is over)."""
        merged = self.lm.merge_and_unload()
        if self.body is self.lm:
            self.body = merged
        else:
            for name, child in self.body.named_children():
                if child is self.lm:
                    setattr(self.body, name, merged)
        self._lm = [merged]
        self._trained = set()

    def ctr_logit(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) click logit: l_yes - l_no at the last position (Eq. 6 is its sigmoid) or the
        [CLS] head."""
        return self.body(batch["input_ids"], batch["attention_mask"], batch["last"])

    def item_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, V) f(s_u, t) for every item t (Eq. 8)."""
        ids, mask, last = batch["input_ids"], batch["attention_mask"], batch["last"]
        first, n = self.vocab.first_id, self.vocab.n_items
        if self.encoder:
            cls = self.lm(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]  # (B, d)
            rows = self.lm.get_input_embeddings()(torch.arange(first, first + n,
                                                               device=ids.device))  # (V, d)
            return cls @ rows.T
        if self.keep_logits:
            logits = self.lm(input_ids=ids, attention_mask=mask,
                             logits_to_keep=last[:, None]).logits[:, 0]  # (B, |vocab|)
        else:
            logits = self.lm(input_ids=ids, attention_mask=mask).logits
            logits = logits[torch.arange(len(last), device=last.device), last]
        return logits[:, first:first + n]


def length_batches(lengths: np.ndarray, size: int, rng: np.random.Generator | None = None
                   ) -> list[np.ndarray]:
    """Row indices in batches of `size` whose prompts have similar lengths (less padding).

    Without `rng`: rows sorted by length, then cut. With `rng` (training): a random order cut
    into windows of 16 batches, each window sorted by length and cut, the batches shuffled, so
    every epoch still sees fresh random batches.
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + size] for i in range(0, len(order), size)]
    order, window, out = rng.permutation(len(lengths)), size * 16, []
    for start in range(0, len(order), window):
        chunk = order[start:start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
    return [out[i] for i in rng.permutation(len(out))]


def answer_tokens(tokenizer, prompt_end: str, words=ANSWER_WORDS) -> AnswerTokens:
    """Group E's rule for a fixed prompt end: the first token the tokenizer writes for
    `prompt_end + " " + word` after the tokens of `prompt_end`."""
    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    base, ids = enc(prompt_end), []
    for word in words:
        cont = enc(f"{prompt_end} {word}")
        ids.append(cont[len(base)] if cont[:len(base)] == base and len(cont) > len(base)
                   else enc(word)[0])
    if ids[0] == ids[1]:
        raise RecbenchError(f"the tokenizer starts {words[0]!r} and {words[1]!r} with the same "
                            "token; P(YES) cannot be read from one position")
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return AnswerTokens(int(ids[0]), int(ids[1]), str(pieces[0]), str(pieces[1]),
                        "first token of ' ' + word after the prompt")


class _P5(Recommender):
    """Shared plumbing: backbone, item tokens, prompts, LoRA training, merge, notes.

    The semantic-ID constructions (`recbench.models.llm.sid`, groups F and J) reuse it: they
    override `add_tokens` (how items become new tokens) and `tokens_note`; `self.vocab` only
    needs `render(items)`, `token(item)` and `token_ids`.
    """

    Config: ClassVar[type[P5Config]] = P5Config
    mode = "finetune"
    task: ClassVar[str]
    construction: ClassVar[str] = "P5"

    def __init__(self, config: P5Config, ctx: RunContext):
        super().__init__(config, ctx)
        self.entry = resolve(config.backbone, trust_remote_code=config.trust_remote_code)
        if self.entry.backend != "hf" or self.entry.family == "seq2seq":
            what = "served over an API" if self.entry.backend != "hf" else "a seq2seq model"
            raise RecbenchError(f"{self.construction} backbone {config.backbone!r} "
                                f"({self.entry.source}) is {what}; {self.construction}-<backbone>"
                                " needs local encoder or decoder weights")
        self.encoder = self.entry.family == "encoder"

    @property
    def model_id(self) -> str:
        return f"P5-{self.entry.name}"

    @property
    def model_revision(self) -> str | None:
        return source_of(self.entry).revision

    # -- prompts ---------------------------------------------------------------------------
    def prompts(self, rows: pl.DataFrame) -> list[str]:
        k = self.config.max_history
        hists = [self.vocab.render((h or [])[-k:]) or EMPTY_HISTORY
                 for h in rows["history"].to_list()]
        if self.task == "ctr":
            return [CTR_PROMPT.format(history=h, item=self.vocab.token(i))
                    for h, i in zip(hists, rows["item_id"].to_list(), strict=True)]
        return [SEQ_PROMPT.format(history=h) for h in hists]

    def tensors(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(self.prompts(rows), padding=True, return_tensors="pt")
        out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
               "last": enc["attention_mask"].sum(1) - 1}  # right padding: the prompt's end
        if self.task == "ctr" and "label" in rows.columns:
            out["label"] = torch.from_numpy(rows["label"].to_numpy().astype(np.float32))
        if self.task == "seq" and "target" in rows.columns:
            out["target"] = torch.from_numpy(rows["target"].to_numpy().astype(np.int64))
        return out

    # -- training --------------------------------------------------------------------------
    def add_tokens(self, lm: nn.Module, n_items: int) -> ItemVocabulary:
        """Make the items new tokens of `lm` and `self.tokenizer`: one `<item_i>` each."""
        return add_item_tokens(lm, self.tokenizer, n_items, seed=self.ctx.seed)

    def build(self, n_items: int) -> None:
        """Load the backbone, add V item tokens, wrap with LoRA (seeded by the run)."""
        cfg = self.config
        lm, self.tokenizer = load_backbone(self.entry, "encoder" if self.encoder else "causal",
                                           device=self.ctx.device)
        self.source = lm.recbench_source
        self.vocab = self.add_tokens(lm, n_items)
        self.tokenizer.padding_side = "right"
        torch.manual_seed(self.ctx.seed)
        self.hidden = lm.get_input_embeddings().weight.shape[1]
        self.tied = not self.encoder and \
            lm.get_output_embeddings().weight is lm.get_input_embeddings().weight
        peft_lm = attach_lora(lm, self.vocab, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout,
                              cfg.lora_targets)
        self.lora_targets = sorted(peft_lm.peft_config["default"].target_modules)
        click, self.answer = None, None
        if self.task == "ctr" and self.encoder:
            click = ClsHead(peft_lm, self.hidden)
        elif self.task == "ctr":
            self.answer = answer_tokens(self.tokenizer, CTR_PROMPT.rsplit("\n", 1)[-1])
            click = YesNoHead(peft_lm, self.answer)
        self.net = P5Net(peft_lm, self.vocab, self.encoder, click).to(self.ctx.device)
        self.n_trainable, self.n_total = count_parameters(self.net)

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        self.n_items = data.n_items
        self.untrained = data.n_items - len(training_items(data))
        self.build(data.n_items)
        train_rows, valid = data.train, data.valid
        rng = np.random.default_rng(self.ctx.seed)
        n = train_rows.height

        lengths = self.history_lengths(train_rows)

        def batches(_epoch):
            for idx in length_batches(lengths, cfg.batch_size, rng):
                yield self.tensors(train_rows[idx])

        self.result = train(self.net, batches, self.loss, self.validate(valid), cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size),
                            params=[p for p in self.net.parameters() if p.requires_grad], rng=rng)
        self.net.merge()
        self.net.eval()

    def history_lengths(self, rows: pl.DataFrame) -> np.ndarray:
        lengths = rows["history"].list.len().fill_null(0).to_numpy()
        return np.minimum(lengths, self.config.max_history)

    @torch.no_grad()
    def _score(self, rows: pl.DataFrame, fn) -> torch.Tensor:
        """`fn(batch)` over `rows` in length-sorted chunks (little padding), in row order."""
        parts, order = [], []
        for idx in length_batches(self.history_lengths(rows), self.config.infer_batch_size):
            t = self.tensors(rows[idx])
            parts.append(fn({k: v.to(self.ctx.device) for k, v in t.items()}).float().cpu())
            order.append(idx)
        out = torch.cat(parts)
        out[torch.from_numpy(np.concatenate(order))] = out.clone()
        return out

    # -- record ----------------------------------------------------------------------------
    def tokens_note(self) -> str:
        v = self.vocab
        return (f"item tokens: V = {v.n_items} new tokens <item_i> (ids {v.first_id}.."
                f"{v.first_id + v.n_items - 1} after a vocabulary of {v.base_vocab}), rows drawn "
                "N(0, initializer_range^2); "
                f"{self.untrained} of {v.n_items} items never occur in the training split")

    def notes(self) -> list[str]:
        cfg, src = self.config, self.source
        template = (CTR_PROMPT if self.task == "ctr" else SEQ_PROMPT).replace("\n", "\\n")
        return [
            f"backbone: {self.entry.name} ({src.model_id}, {src.revision}), {self.entry.family},"
            f" {src.dtype} on {src.device}; plain prompt, no chat template",
            f"prompt: {template!r}, history = the newest {cfg.max_history} items as item tokens",
            self.tokens_note(),
            f"fine-tuning: LoRA r={cfg.lora_r} alpha={cfg.lora_alpha} dropout={cfg.lora_dropout}"
            f" on {', '.join(self.lora_targets)} + the V new rows (peft trainable_token_indices"
            f"{'; the tied output layer shares them' if self.tied else ''}); "
            f"{self.n_trainable:,} of {self.n_total:,} parameters trained; lr {cfg.lr}, batch "
            f"{cfg.batch_size}; adapters merged into the backbone for evaluation",
            self.scoring_note(),
            f"training: {describe(self.result)}",
        ]


class P5CTR(_P5):
    """Group D: P5-<backbone> CTR over item tokens, P(YES) at the final position."""

    tasks = ("ctr",)
    task = "ctr"

    def loss(self, net: P5Net, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(net.ctr_logit(batch),
                                                              batch["label"])

    def validate(self, valid: pl.DataFrame):
        users, labels = valid["user_id"].to_numpy(), valid["label"].to_numpy()
        return lambda _net: metrics.gauc(users, labels, self.predict_ctr(valid))

    @torch.no_grad()
    def predict_ctr(self, rows: pl.DataFrame) -> np.ndarray:
        if rows.height == 0:
            return np.zeros(0, dtype=np.float32)
        return torch.sigmoid(self._score(rows, self.net.ctr_logit)).numpy()

    def scoring_note(self) -> str:
        if self.encoder:
            return ("CTR score: sigmoid of a trained linear head over the [CLS] hidden state "
                    "(group E's ClsHead: an encoder has no next-token logits, so Eq. 6's YES/NO "
                    "is not read); BCE")
        return f"CTR score: {self.answer.describe()}; BCE on l_yes - l_no"


class P5Seq(_P5):
    """Group I: P5-<backbone> next-item scores over all V item tokens."""

    Config: ClassVar[type[P5Config]] = P5SeqConfig
    tasks = ("seq",)
    task = "seq"

    def loss(self, net: P5Net, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(net.item_scores(batch).float(), batch["target"])

    def validate(self, valid: pl.DataFrame):
        targets = valid["target"].to_numpy()

        def ndcg10(_net) -> float:
            return metrics.valid_ndcg10(self.score_items(valid), targets)
        return ndcg10

    @torch.no_grad()
    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        if rows.height == 0:
            return np.zeros((0, self.n_items), dtype=np.float32)
        return self._score(rows, self.net.item_scores).numpy()

    def scoring_note(self) -> str:
        if self.encoder:
            how = "[CLS] hidden state · each item token's input embedding row"
        else:
            how = ("the final position's LM logits restricted to the V item tokens (output rows "
                   f"{'tied to' if self.tied else 'separate from'} the input rows)")
        return f"SeqRec score f(s_u, t): {how}; cross-entropy over all V items (Eq. 7)"
