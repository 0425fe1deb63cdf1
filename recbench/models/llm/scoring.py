"""Fast click probabilities from a language model: YES/NO logits (Eq. 6), batched, prefix-shared.

Decoders (causal LMs): P(YES) = softmax(l_yes, l_no)[0] = sigmoid(l_yes - l_no), with the two
logits read at the last prompt position. Which token ids are "YES" and "NO" is decided per
tokenizer by `choose_answer_tokens`: the first token the tokenizer produces for the answer word
right after the real prompt text (a word may be several pieces, or carry a leading space).

Encoders (BERT family) have no next-token head that means anything here: a linear head over
[CLS] gives the click logit; it is only meaningful after fine-tuning (no zero-shot mode).

`BatchScorer` scores many prompts without a per-sample loop over model calls:
- length-sorted dynamic batches under a token budget (padded rows x columns), right-padded,
  with only the final positions projected onto the vocabulary (`logits_to_keep`);
- prefix sharing: rows with the same prefix (one user's system prompt + history) run that
  prefix once; its KV cache (a transformers `DynamicCache`) is gathered per candidate batch and
  only the suffixes (candidate + answer cue) run on top of it, with explicit position ids so
  that every token sees exactly what it sees unshared (tested to fp tolerance).
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from recbench.core.errors import ConfigError, RecbenchError
from recbench.models.llm.prompts import CTRPrompt, PromptBuilder, PromptStyle

log = logging.getLogger("recbench.models.llm")
ANSWER_WORDS = ("Yes", "No")


# --- which tokens are YES and NO --------------------------------------------------------------

@dataclass(frozen=True)
class AnswerTokens:
    """The token ids whose logits are compared, with how they were chosen (for records)."""

    yes_id: int
    no_id: int
    yes_piece: str
    no_piece: str
    how: str

    def describe(self) -> str:
        return (f"P(YES) = softmax(l_yes, l_no) at the last prompt position (Eq. 6); "
                f"YES = token {self.yes_id} {self.yes_piece!r}, NO = token {self.no_id} "
                f"{self.no_piece!r} ({self.how})")


def choose_answer_tokens(tokenizer: Any, style: PromptStyle, words: Sequence[str] = ANSWER_WORDS
                         ) -> tuple[AnswerTokens, PromptStyle]:
    """The first answer token of each word, as the tokenizer writes it after the prompt.

    The prompt's suffix is tokenised on its own, then suffix + word: when the suffix's ids are
    a prefix of the longer encoding, the next id is the answer token. When they are not (the
    suffix ends in whitespace the tokenizer merges into the word, e.g. ": " + "Yes" -> ":",
    " Yes"), the trailing whitespace moves out of the prompt and into the answer (as
    lm-evaluation-harness does), so the model reads ": " then " Yes" the way it was trained.

    Returns:
        (answer tokens, the style to build prompts with: `strip_trailing_space` set if needed).

    Raises:
        ConfigError: YES and NO map to the same token.
    """
    plain = replace(style, strip_trailing_space=False)
    builder = PromptBuilder(tokenizer, plain, max_len=1 << 30)
    full = builder.suffix_text("item")

    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    for strip in (False, True):
        text = full.rstrip() if strip else full
        space = full[len(text):]
        if strip and not space:
            break
        base = enc(text)
        ids = []
        for word in words:
            cont = enc(text + space + word)
            if len(cont) <= len(base) or cont[:len(base)] != base:
                break
            ids.append(cont[len(base)])
        if len(ids) == len(words) and len(set(ids)) == len(ids):
            how = ("first token of the word after the prompt" if not strip else
                   f"first token of {space!r} + word: the prompt's trailing whitespace is "
                   "carried by the answer token")
            return _answer(tokenizer, ids, how), replace(style, strip_trailing_space=strip)
    ids = [enc(w)[0] for w in words]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"YES/NO: {words[0]!r} and {words[1]!r} start with the same token "
                          f"({ids[0]}) for this tokenizer")
    return _answer(tokenizer, ids, "first piece of the word on its own (the prompt does not "
                   "tokenise cleanly before it)"), replace(style, strip_trailing_space=False)


def _answer(tokenizer: Any, ids: list[int], how: str) -> AnswerTokens:
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return AnswerTokens(int(ids[0]), int(ids[1]), str(pieces[0]), str(pieces[1]), how)


# --- the click logit of one batch -------------------------------------------------------------

def _accepts(model: nn.Module, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return name in inspect.signature(base.forward).parameters


class YesNoHead(nn.Module):
    """A causal LM read as a click model: logit = l_yes - l_no at each row's last position."""

    def __init__(self, lm: nn.Module, answer: AnswerTokens):
        super().__init__()
        self.lm = lm
        self.answer = answer
        self.keep_logits = _accepts(lm, "logits_to_keep")
        # transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` before)
        self.cache_arg = "cache" if _accepts(lm, "cache") else "past_key_values"

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                last_pos: torch.Tensor, position_ids: torch.Tensor | None = None,
                cache: Any = None) -> torch.Tensor:
        """(B, L) ids and mask, (B,) last real positions -> (B,) click logits.

        With `cache` (a prefix's KV cache), `input_ids` continue it: `attention_mask` covers
        cache + input, `position_ids` place the input after each row's real prefix tokens.
        """
        kw: dict[str, Any] = {}
        if position_ids is not None:
            kw["position_ids"] = position_ids
        if cache is not None:
            kw[self.cache_arg] = cache
        kw["use_cache"] = cache is not None  # no KV cache is built for a one-pass forward
        if self.keep_logits:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                          logits_to_keep=last_pos[:, None], **kw)
            logits = out.logits[:, 0]  # (B, V)
        else:
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, **kw)
            logits = out.logits[torch.arange(len(last_pos), device=last_pos.device), last_pos]
        pair = logits[:, [self.answer.yes_id, self.answer.no_id]].float()  # (B, 2)
        return pair[:, 0] - pair[:, 1]  # log odds: P(YES) = sigmoid(this) (Eq. 6)

    def prefix_cache(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """Run prefixes only, keeping their KV cache (no vocabulary projection needed)."""
        kw = {"logits_to_keep": 1} if self.keep_logits else {}
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, **kw)
        for name in ("cache", "past_key_values"):
            if name in out and out[name] is not None:
                return out[name]
        raise PrefixSharingUnsupported(f"{type(self.lm).__name__} returned no KV cache")


class ClsHead(nn.Module):
    """An encoder read as a click model: a linear layer over the [CLS] (first) position."""

    def __init__(self, encoder: nn.Module, hidden_size: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                last_pos: torch.Tensor, **kw: Any) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        cls = hidden[:, 0].to(self.head.weight.device, self.head.weight.dtype)  # (B, d)
        return self.head(cls).squeeze(-1)  # (B,)


# --- batching ---------------------------------------------------------------------------------

def pad_right(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) right-padded ids and the 0/1 attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, :len(s)] = 1
    return ids, mask


def token_batches(lengths: Sequence[int], budget: int, extra: Sequence[int] | None = None
                  ) -> list[np.ndarray]:
    """Row indices in length-sorted batches whose padded size rows x (max length) fits `budget`.

    `extra[i]` adds to row i's width without being sorted on (a shared prefix's length). A row
    longer than the budget gets a batch of its own.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    width = lengths + (np.asarray(extra, dtype=np.int64) if extra is not None else 0)
    order = np.argsort(width, kind="stable")
    batches, start, widest = [], 0, 0
    for k, i in enumerate(order):
        w = max(widest, int(width[i]))
        if k > start and (k - start + 1) * w > budget:
            batches.append(order[start:k])
            start, w = k, int(width[i])
        widest = w
    if len(order) > start:
        batches.append(order[start:])
    return batches


class PrefixSharingUnsupported(RecbenchError):
    """The model's cache cannot be gathered per candidate (no `DynamicCache`)."""


def _select_cache(cache: Any, index: torch.Tensor) -> Any:
    """A cache holding rows `index` of `cache` (gathered; `cache` itself is left as it was)."""
    if not hasattr(cache, "layers") or not hasattr(cache, "batch_select_indices"):
        raise PrefixSharingUnsupported(f"prefix sharing needs a transformers Cache, got "
                                       f"{type(cache).__name__}")
    out = copy.copy(cache)
    out.layers = [copy.copy(layer) for layer in cache.layers]
    out.batch_select_indices(index)  # replaces each layer's tensors: the source stays intact
    return out


@dataclass
class ScoringStats:
    rows: int = 0
    model_calls: int = 0
    tokens_run: int = 0  # real (unpadded) tokens through the model
    tokens_saved: int = 0  # prefix tokens not re-run thanks to sharing


class BatchScorer:
    """Scores `CTRPrompt`s with a `YesNoHead` or `ClsHead`: batched, optionally prefix-shared.

    Args:
        net: the click model.
        pad_id: the tokenizer's pad id.
        batch_tokens: the budget of one forward pass, in padded tokens (rows x width; for a
            suffix batch the width includes the shared prefix it attends to).
        share_prefix: run each distinct prefix once (decoders only).
    """

    def __init__(self, net: nn.Module, pad_id: int, batch_tokens: int = 8192,
                 share_prefix: bool = True):
        self.net = net
        self.pad_id = pad_id
        self.batch_tokens = batch_tokens
        self.share_prefix = share_prefix and isinstance(net, YesNoHead)
        self.stats = ScoringStats()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.inference_mode()
    def logits(self, prompts: Sequence[CTRPrompt], share_prefix: bool | None = None
               ) -> np.ndarray:
        """(n,) click logits (P = sigmoid); shared and unshared agree to fp tolerance."""
        share = self.share_prefix if share_prefix is None else share_prefix
        if not prompts:
            return np.zeros(0, dtype=np.float32)
        self.stats.rows += len(prompts)
        if share and isinstance(self.net, YesNoHead):
            n_prefixes = len({p.prefix_ids for p in prompts})
            if n_prefixes < len(prompts):  # something to share; else one pass is cheaper
                try:
                    return self._shared(prompts)
                except PrefixSharingUnsupported as err:
                    log.warning("%s; scoring without prefix sharing", err)
                    self.share_prefix = False
        return self._unshared(prompts)

    def probabilities(self, prompts: Sequence[CTRPrompt], share_prefix: bool | None = None
                      ) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(prompts, share_prefix)))

    def _unshared(self, prompts: Sequence[CTRPrompt]) -> np.ndarray:
        out = np.empty(len(prompts), dtype=np.float32)
        seqs = [p.prefix_ids + p.suffix_ids for p in prompts]
        for idx in token_batches([len(s) for s in seqs], self.batch_tokens):
            ids, mask = pad_right([seqs[i] for i in idx], self.pad_id)
            last = mask.sum(1) - 1
            dev = self.device
            out[idx] = self.net(ids.to(dev), mask.to(dev), last.to(dev)).float().cpu().numpy()
            self.stats.model_calls += 1
            self.stats.tokens_run += int(mask.sum())
        return out

    def _shared(self, prompts: Sequence[CTRPrompt]) -> np.ndarray:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(prompts):
            groups.setdefault(p.prefix_ids, []).append(i)
        keys = list(groups)
        out = np.empty(len(prompts), dtype=np.float32)
        dev = self.device
        # chunks of prefixes (one prefix pass each), then that chunk's candidates in batches
        for chunk in token_batches([len(k) for k in keys], self.batch_tokens):
            pre_ids, pre_mask = pad_right([keys[g] for g in chunk], self.pad_id)
            cache = self.net.prefix_cache(pre_ids.to(dev), pre_mask.to(dev))
            self.stats.model_calls += 1
            self.stats.tokens_run += int(pre_mask.sum())
            pre_len = pre_mask.sum(1)  # (G,)
            local = [(j, i) for j, g in enumerate(chunk) for i in groups[keys[g]]]
            self.stats.tokens_saved += sum(int(pre_len[j]) for j, _ in local) - int(pre_len.sum())
            suf_len = [len(prompts[i].suffix_ids) for _, i in local]
            for sub in token_batches(suf_len, self.batch_tokens,
                                     extra=[pre_ids.shape[1]] * len(local)):
                rows = [local[k] for k in sub]
                sel = torch.tensor([j for j, _ in rows], dtype=torch.long)
                ids, mask = pad_right([prompts[i].suffix_ids for _, i in rows], self.pad_id)
                attn = torch.cat([pre_mask[sel], mask], dim=1)  # (B, P + S)
                pos = pre_len[sel][:, None] + torch.arange(ids.shape[1])[None]  # (B, S)
                last = mask.sum(1) - 1
                logits = self.net(ids.to(dev), attn.to(dev), last.to(dev),
                                  position_ids=pos.to(dev),
                                  cache=_select_cache(cache, sel.to(dev)))
                out[[i for _, i in rows]] = logits.float().cpu().numpy()
                self.stats.model_calls += 1
                self.stats.tokens_run += int(mask.sum())
            del cache
        return out

    def describe(self) -> str:
        st = self.stats
        share = "on" if self.share_prefix else "off"
        return (f"scored {st.rows} rows in {st.model_calls} forward passes "
                f"(token budget {self.batch_tokens}, prefix sharing {share}: "
                f"{st.tokens_run} tokens run, {st.tokens_saved} prefix tokens reused)")
