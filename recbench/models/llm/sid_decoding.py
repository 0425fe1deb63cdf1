"""A transformers language model's forward passes over semantic-ID tokens (RecBench group J).

`recbench.models.decoding.beam_search` asks a decoder for level-by-level log-probs over the K
codes of one level (a softmax restricted to that level's K tokens of the `SIDVocabulary`). The
decoders are shared with group H (`decoding.CachedDecoder`, `decoding.RecomputeDecoder`); this
module is the language model behind them, `LMCodes`:

- `prefill` / `extend` (causal LMs, the cached path): the right-padded prompts run once and
  their KV cache is kept (B rows); each level reorders the cache rows by the beam parents
  (`Cache.reorder_cache`, an index_select per layer: B rows become B x W), feeds one token per
  row with position id = that row's real length (padding stays masked inside the cache) and
  reads the level's log-probs at it. No recomputation of the prompt.
- `rescore` (the recompute path): prompt + codes so far, users x beams rows at once. Causal LMs
  read the last real position (the reference the cached path is tested against); encoders (no
  causal cache) read the hidden state at a [MASK] slot after the codes,
  [CLS] prompt c_<l [MASK] [SEP] (`encoder_row`), scored against the level's K input rows.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from recbench.models.decoding import CachedDecoder, Decoder, RecomputeDecoder
from recbench.models.llm.scoring import pad_right

if TYPE_CHECKING:
    from recbench.models.llm.sid import SIDVocabulary


def _level_logprobs(logits: torch.Tensor, vocab: SIDVocabulary, level: int) -> torch.Tensor:
    """(R, |vocab|) LM logits -> (R, K) log-softmax over level `level`'s K tokens."""
    ids = vocab.level_ids(level).to(logits.device)
    return torch.log_softmax(logits.index_select(-1, ids).float(), dim=-1)


def _accepts(lm: nn.Module, name: str) -> bool:
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return name in inspect.signature(base.forward).parameters


def _last_logits(lm: nn.Module, ids: torch.Tensor, mask: torch.Tensor, **kw: Any):
    """(model output, (R, |vocab|) logits at each row's last real position), projecting only
    those positions onto the vocabulary where the model allows it (`logits_to_keep`)."""
    last = mask.sum(1) - 1  # (R,) right padding
    if _accepts(lm, "logits_to_keep"):
        out = lm(input_ids=ids, attention_mask=mask, logits_to_keep=last[:, None], **kw)
        return out, out.logits[:, 0]
    out = lm(input_ids=ids, attention_mask=mask, **kw)
    return out, out.logits[torch.arange(len(last), device=ids.device), last]


def _cache_of(out: Any) -> Any:
    for name in ("cache", "past_key_values"):
        if name in out and out[name] is not None:
            return out[name]
    raise RuntimeError("the language model returned no KV cache")


class LMCodes:
    """A language model's forward passes over B prompts, for the shared decoders
    (`decoding.CachedCodeModel` for causal LMs, `decoding.CodeModel` for every LM).

    Args:
        lm: the (merged) language model; an encoder when `special` is given.
        prompts: B token-id lists, each prompt before any code (encoders: without specials).
        vocab: the code tokens.
        pad_id: the tokenizer's padding id.
        device: where the LM runs.
        special: (cls, mask, sep) ids for an encoder (scored at a [MASK] slot), None for a
            causal LM.
        chunk: rows per forward of `rescore`.
    """

    def __init__(self, lm: nn.Module, prompts: list[list[int]], vocab: SIDVocabulary,
                 pad_id: int, device: str, special: tuple[int, int, int] | None = None,
                 chunk: int = 256):
        self.lm, self.prompts, self.vocab = lm, prompts, vocab
        self.pad_id, self.device, self.special, self.chunk = pad_id, device, special, chunk

    # -- the cached path (causal LMs) ------------------------------------------------------
    def prefill(self) -> torch.Tensor:
        # transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` before)
        self.cache_arg = "cache" if _accepts(self.lm, "cache") else "past_key_values"
        ids, mask = pad_right(self.prompts, self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        out, logits = _last_logits(self.lm, ids, mask, use_cache=True)  # (B, |vocab|)
        self.cache, self.mask, self.pos = _cache_of(out), mask, mask.sum(1)
        return _level_logprobs(logits, self.vocab, 0)

    def extend(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        parents = parents.to(self.device)  # (R,)
        self.cache.reorder_cache(parents)
        ones = torch.ones((len(parents), 1), dtype=self.mask.dtype, device=self.device)
        self.mask = torch.cat([self.mask[parents], ones], dim=1)  # (R, P + level)
        pos = self.pos[parents]  # (R,)
        start = self.vocab.first_id + (level - 1) * self.vocab.codebook_size
        ids = tokens.to(self.device)[:, None] + start
        out = self.lm(input_ids=ids, attention_mask=self.mask, position_ids=pos[:, None],
                      use_cache=True, **{self.cache_arg: self.cache})
        self.cache, self.pos = _cache_of(out), pos + 1
        return _level_logprobs(out.logits[:, -1], self.vocab, level)

    # -- the recompute path ----------------------------------------------------------------
    def rescore(self, users: np.ndarray, codes: np.ndarray, level: int) -> torch.Tensor:
        code_ids = self.vocab.code_ids(codes)  # (R, level)
        seqs = [encoder_row(self.prompts[u], list(c), self.special) if self.special
                else self.prompts[u] + list(c) for u, c in zip(users, code_ids.tolist(),
                                                               strict=True)]
        out = [self._forward(seqs[i:i + self.chunk], level)
               for i in range(0, len(seqs), self.chunk)]
        return torch.cat(out)

    def _forward(self, seqs: list[list[int]], level: int) -> torch.Tensor:
        ids, mask = pad_right(seqs, self.pad_id)
        ids, mask = ids.to(self.device), mask.to(self.device)
        if self.special is None:
            return _level_logprobs(_last_logits(self.lm, ids, mask, use_cache=False)[1],
                                   self.vocab, level)
        hidden = self.lm(input_ids=ids, attention_mask=mask).last_hidden_state
        rows = torch.arange(len(seqs), device=ids.device)
        slot = hidden[rows, mask.sum(1) - 2]  # (R, d): the [MASK] before [SEP]
        table = self.lm.get_input_embeddings()(self.vocab.level_ids(level).to(ids.device))
        return torch.log_softmax((slot @ table.T).float(), dim=-1)  # (R, K)


def lm_decoder(lm: nn.Module, prompts: list[list[int]], vocab: SIDVocabulary, pad_id: int,
               device: str, method: str, special: tuple[int, int, int] | None = None
               ) -> Decoder:
    """The `method` decoder ("kv-cache" or "recompute") over `lm`; encoders (`special` given)
    have no causal cache and always recompute."""
    codes = LMCodes(lm, prompts, vocab, pad_id, device, special)
    if method == "kv-cache" and special is None:
        return CachedDecoder(codes)
    return RecomputeDecoder(codes, len(prompts))


def encoder_row(prompt: list[int], code_ids: list[int], special: tuple[int, int, int]
                ) -> list[int]:
    """[CLS] prompt codes [MASK] [SEP]: the encoder predicts the code at the [MASK] slot."""
    cls, mask, sep = special
    return [cls, *prompt, *code_ids, mask, sep]
