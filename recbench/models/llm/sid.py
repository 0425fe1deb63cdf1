"""LLMs over semantic-ID tokens: RecBench groups F (CTR) and J (SeqRec), §3.1, §3.2, §4.3.

An item is its semantic ID (`recbench.items.semantic_ids`: RQ-VAE codes c_1..c_L, L = 4
levels of K = 256 in RecBench), written as L new tokens, one alphabet letter per level:
`<a_c1><b_c2><c_c3><d_c4>`. So the vocabulary grows by V = L x K tokens (1,024 in the paper,
"Identifier Vocabulary"), whose rows E_id ∈ R^{V×d} are drawn at random
(`item_tokens.add_tokens`). As in groups D and I (`recbench.models.llm.p5`, whose plumbing is
reused), the backbone is fine-tuned with LoRA plus the V new rows (lr 1e-4, batch 64; r=32
α=128 for CTR, r=α=128 for SeqRec) and merged for inference.

- `SIDCTR` (group F, `SID-<backbone>`): group D's prompt with history and candidate as code
  tokens; P(YES) = softmax(l_yes, l_no) at the last position (Eq. 6) for decoders, a [CLS]
  head for encoders; BCE; early stopping on valid GAUC.
- `SIDSeq` (group J, `SID-<backbone>[-CBS]`): prompt = the history as code tokens +
  "Next item:"; the model generates the next item's L codes. Training is teacher-forced: level
  l's logits, restricted to that level's K tokens, take a cross-entropy with c_l (Eq. 7 over
  code tokens, averaged over levels). Inference is beam search over the levels
  (`recbench.models.decoding.beam_search`, width `beam`), constrained by the prefix trie of
  all items' codes when `cbs` (conditional beam search, §3.2), unconstrained otherwise (an
  invalid code sequence then counts as a miss). An item's score is the joint log-probability
  Σ_l log p_l(c_l | prompt, c_<l) of its codes, each p_l the level-restricted softmax; items not
  in the final beam score -inf (ranked last, ties against the target). RecBench's own code
  (as issue 6 describes it) ranks the target by a teacher-forced product of its codes' per-level
  ranks, which never decodes; ours ranks what beam search returns, over the full catalogue.

Decoders (causal LMs) decode over the prompt's KV cache; encoders (BERT-like, the paper's
SID-BERT) have no causal cache and re-run [CLS] prompt c_<l [MASK] [SEP] at every level, scoring
the level's K token rows against the [MASK] slot's hidden state, the layout they are trained
with (one row per level). The decoders are group H's (`recbench.models.decoding`), over the
language model's forward passes in `recbench.models.llm.sid_decoding`; the shared evaluator
reports the beam's invalid and miss rates (`generate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch
from torch import nn

from recbench import metrics
from recbench.core.config import Count
from recbench.core.errors import DataError
from recbench.items.semantic_ids import SemanticIDs, SIDConfig, semantic_ids
from recbench.models.base import RunContext, TaskData
from recbench.models.decoding import (
    BeamResult,
    Decoder,
    Decoding,
    PrefixTrie,
    beam_search,
    concat_beams,
)
from recbench.models.llm.item_tokens import add_tokens
from recbench.models.llm.p5 import _P5, P5CTR, P5Config, P5SeqConfig
from recbench.models.llm.scoring import pad_right
from recbench.models.llm.sid_decoding import encoder_row, lm_decoder

LEVEL_LETTERS = "abcdefghijklmnopqrstuvwxyz"
SID_TOKEN = "<{}_{}>"


@dataclass(frozen=True)
class SIDVocabulary:
    """The L x K semantic-ID tokens of one tokenizer: code k of level l is the token
    `<{letter_l}_{k}>` with id `first_id + l * K + k`.

    Attributes:
        codes: (n_items, L) every item's codes.
        codebook_size: K.
        first_id: the id of `<a_0>`; the L x K ids are contiguous.
        base_vocab: the tokenizer's size before the tokens were added.
    """

    codes: np.ndarray
    codebook_size: int
    first_id: int
    base_vocab: int

    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    @property
    def n_tokens(self) -> int:
        return self.n_levels * self.codebook_size

    @property
    def token_ids(self) -> list[int]:
        return list(range(self.first_id, self.first_id + self.n_tokens))

    def level_ids(self, level: int) -> torch.Tensor:
        """(K,) token ids of level `level`'s codes."""
        start = self.first_id + level * self.codebook_size
        return torch.arange(start, start + self.codebook_size)

    def code_ids(self, codes: np.ndarray) -> np.ndarray:
        """Token ids of codes (..., l) written from level 0 on."""
        codes = np.asarray(codes, dtype=np.int64)
        return self.first_id + np.arange(codes.shape[-1]) * self.codebook_size + codes

    def token(self, item: int) -> str:
        """Item `item` as its L code tokens (`<a_3><b_17><c_0><d_9>`)."""
        return "".join(SID_TOKEN.format(LEVEL_LETTERS[lv], int(c))
                       for lv, c in enumerate(self.codes[int(item)]))

    def render(self, items) -> str:
        return "".join(self.token(i) for i in items)


def add_sid_tokens(model: nn.Module, tokenizer: Any, sids: SemanticIDs, seed: int
                   ) -> SIDVocabulary:
    """Add the L x K code tokens to `tokenizer` and random rows to `model` (`add_tokens`)."""
    if sids.n_levels > len(LEVEL_LETTERS):
        raise DataError(f"semantic IDs {sids.key!r} have {sids.n_levels} levels; at most "
                        f"{len(LEVEL_LETTERS)} can be written as tokens")
    tokens = [SID_TOKEN.format(LEVEL_LETTERS[lv], k) for lv in range(sids.n_levels)
              for k in range(sids.codebook_size)]
    first_id, base_vocab = add_tokens(model, tokenizer, tokens, seed)
    return SIDVocabulary(np.asarray(sids.codes, dtype=np.int64), sids.codebook_size, first_id,
                         base_vocab)


def load_sids(data: TaskData, cfg: SIDConfig, ctx: RunContext) -> SemanticIDs:
    """The dataset's semantic IDs (cached by `semantic_ids`), checked against the catalogue."""
    return semantic_ids(data, cfg, ctx).check_covers(data)


# --- configs ---------------------------------------------------------------------------------

class SIDCTRConfig(P5Config, SIDConfig):
    """Group F: LoRA r=32 α=128 (P5Config's defaults) + the semantic-ID tokenizer settings."""


class SIDSeqConfig(P5SeqConfig, SIDConfig):
    """Group J: LoRA r=α=128, beam search over code levels, with or without the trie."""

    cbs: bool = True  # conditional beam search: only prefixes of real items (RecBench §3.2)
    beam: Count = 20
    decoding: Decoding = "kv-cache"  # decoders; encoders recompute
    decode_batch_size: Count = 8  # users per beam search: each forward runs users x beam rows


class _SIDTokens:
    """Mixin for `_P5` subclasses: items are their semantic-ID code tokens."""

    construction = "SID"
    sids: SemanticIDs

    def add_tokens(self, lm: nn.Module, n_items: int) -> SIDVocabulary:
        return add_sid_tokens(lm, self.tokenizer, self.sids, seed=self.ctx.seed)

    def tokens_note(self) -> str:
        v = self.vocab
        last = SID_TOKEN.format(LEVEL_LETTERS[v.n_levels - 1], v.codebook_size - 1)
        return (f"semantic-ID tokens: V = {v.n_levels} x {v.codebook_size} = {v.n_tokens} new "
                f"tokens <a_0>..{last} (ids {v.first_id}..{v.first_id + v.n_tokens - 1} after a "
                f"vocabulary of {v.base_vocab}), rows drawn N(0, initializer_range^2); an item "
                f"is its {v.n_levels} code tokens; {self.untrained} of {v.n_items} items never "
                "occur in the training split")


class SIDCTR(_SIDTokens, P5CTR):
    """Group F: SID-<backbone> CTR over semantic-ID tokens, P(YES) at the final position."""

    Config: ClassVar[type[P5Config]] = SIDCTRConfig

    @property
    def model_id(self) -> str:
        return f"SID-{self.entry.name}"

    def fit(self, data: TaskData) -> None:
        self.sids = load_sids(data, self.config, self.ctx)
        super().fit(data)

    def notes(self) -> list[str]:
        return [*super().notes(), self.sids.summary()]


class SIDSeq(_SIDTokens, _P5):
    """Group J: SID-<backbone>[-CBS], generating the next item's codes by beam search."""

    Config: ClassVar[type[P5Config]] = SIDSeqConfig
    tasks = ("seq",)
    task = "seq"

    @property
    def model_id(self) -> str:
        return f"SID-{self.entry.name}{'-CBS' if self.config.cbs else ''}"

    def use_codes(self, sids: SemanticIDs) -> None:
        """Take `sids` as the items' codes (and their trie); `fit` calls it, so do benches."""
        self.sids = sids
        self.trie = PrefixTrie(np.asarray(sids.codes, dtype=np.int64), sids.codebook_size)

    def fit(self, data: TaskData) -> None:
        self.use_codes(load_sids(data, self.config, self.ctx))
        super().fit(data)

    # -- prompts ---------------------------------------------------------------------------
    def prompt_ids(self, rows: pl.DataFrame) -> list[list[int]]:
        """Token ids of each row's prompt (history codes + "Next item:"), before any code.

        Decoders: as the tokenizer writes the text (with its BOS, if any); encoders: without
        [CLS]/[SEP], which `encoder_row` places around prompt, codes and the [MASK] slot."""
        enc = self.tokenizer(self.prompts(rows), add_special_tokens=not self.encoder)
        return [list(ids) for ids in enc["input_ids"]]

    def special_ids(self) -> tuple[int, int, int]:
        tok = self.tokenizer
        ids = (tok.cls_token_id, tok.mask_token_id, tok.sep_token_id)
        if any(i is None for i in ids):
            raise DataError(f"encoder backbone {self.entry.alias!r}: its tokenizer lacks "
                            "[CLS], [MASK] or [SEP], which SID decoding by recompute needs")
        return ids

    def tensors(self, rows: pl.DataFrame) -> dict[str, torch.Tensor]:
        """Teacher-forced batch. Decoders: prompt + c_1..c_{L-1}, `positions` (B, L) = where
        level l is predicted. Encoders: one row per (example, level), `slot` the [MASK]."""
        prompts = self.prompt_ids(rows)
        codes = self.vocab.codes[rows["target"].to_numpy().astype(np.int64)]  # (B, L)
        code_ids = self.vocab.code_ids(codes).tolist()
        L = self.vocab.n_levels
        if not self.encoder:
            ids, mask = pad_right([p + c[:L - 1] for p, c in zip(prompts, code_ids,
                                                                  strict=True)],
                                  self.tokenizer.pad_token_id)
            start = torch.tensor([len(p) - 1 for p in prompts])
            return {"input_ids": ids, "attention_mask": mask,
                    "positions": start[:, None] + torch.arange(L)[None],  # (B, L)
                    "codes": torch.from_numpy(codes)}
        special = self.special_ids()
        seqs = [encoder_row(p, c[:lv], special) for p, c in zip(prompts, code_ids, strict=True)
                for lv in range(L)]  # (B * L) rows, example-major
        ids, mask = pad_right(seqs, self.tokenizer.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask, "slot": mask.sum(1) - 2,
                "level": torch.arange(L).repeat(len(prompts)),
                "codes": torch.from_numpy(codes.reshape(-1))}

    # -- training --------------------------------------------------------------------------
    def code_logits(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Level-restricted logits of the target's codes: (B, L, K) decoders, (B*L, K)
        encoders."""
        lm, v = net.lm, self.vocab
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.encoder:
            hidden = lm(input_ids=ids, attention_mask=mask).last_hidden_state
            slot = hidden[torch.arange(len(ids), device=ids.device), batch["slot"]]  # (N, d)
            table = lm.get_input_embeddings()(self._level_table(ids.device))  # (L, K, d)
            return torch.einsum("nd,nkd->nk", slot, table[batch["level"]])
        if net.keep_logits:
            logits = lm(input_ids=ids, attention_mask=mask,
                        logits_to_keep=batch["positions"]).logits  # (B, L, |vocab|)
        else:
            logits = lm(input_ids=ids, attention_mask=mask).logits
            logits = torch.take_along_dim(logits, batch["positions"][..., None], dim=1)
        level_ids = self._level_table(ids.device)  # (L, K)
        return logits[:, torch.arange(v.n_levels, device=ids.device)[:, None], level_ids]

    def _level_table(self, device) -> torch.Tensor:
        v = self.vocab
        return torch.stack([v.level_ids(lv) for lv in range(v.n_levels)]).to(device)

    def loss(self, net: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.code_logits(net, batch).float()
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                           batch["codes"].reshape(-1))

    def validate(self, valid: pl.DataFrame):
        targets = valid["target"].to_numpy()

        def ndcg10(_net) -> float:
            return metrics.valid_ndcg10(self.score_items(valid), targets)
        return ndcg10

    # -- decoding --------------------------------------------------------------------------
    @property
    def decoding(self) -> str:
        return "recompute" if self.encoder else self.config.decoding

    def decoder(self, rows: pl.DataFrame, method: str | None = None) -> Decoder:
        """A `decoding.Decoder` for `rows`' prompts (`method`: kv-cache or recompute)."""
        return lm_decoder(self.net.lm, self.prompt_ids(rows), self.vocab,
                          self.tokenizer.pad_token_id, self.ctx.device, method or self.decoding,
                          self.special_ids() if self.encoder else None)

    @torch.no_grad()
    def decode(self, rows: pl.DataFrame, method: str | None = None, cbs: bool | None = None
               ) -> BeamResult:
        """`BeamResult` of one beam search over `rows` (users x beams in every forward)."""
        cbs = self.config.cbs if cbs is None else cbs
        return beam_search(self.decoder(rows, method), rows.height, self.vocab.n_levels,
                           self.config.beam, trie=self.trie if cbs else None,
                           catalog=self.trie)

    def generate(self, rows: pl.DataFrame) -> BeamResult:
        """The beams of `rows`, `decode_batch_size` users per search; what the shared
        evaluator scores and counts (`evaluation.BeamGenerator`)."""
        step = self.config.decode_batch_size
        return concat_beams([self.decode(rows.slice(start, step))
                             for start in range(0, rows.height, step)])

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        """(n, n_items) joint code log-probabilities of the beam's items, -inf elsewhere."""
        return self.generate(rows).item_scores(self.vocab.n_items)

    # -- record ----------------------------------------------------------------------------
    def scoring_note(self) -> str:
        cfg = self.config
        how = ("KV cache: prompts run once, one token per beam per level, cache rows reordered "
               "by beam parents" if self.decoding == "kv-cache" else
               "recompute: prompt + codes so far re-run at every level" +
               (", score = [MASK]-slot hidden state · the level's token rows (an encoder has "
                "no causal cache)" if self.encoder else ""))
        cbs = ("on (prefix trie: every output a real item)" if cfg.cbs else
               "off (invalid code sequences count as misses)")
        return (f"SeqRec: the next item's {self.vocab.n_levels} codes generated by beam search, "
                f"beam width {cfg.beam}, users x beams batched; CBS {cbs}; decoding by {how}; "
                "score = joint log-probability of the codes, level-restricted softmax; items "
                "outside the beam score -inf; training: teacher-forced cross-entropy per level "
                "over its K tokens (Eq. 7)")

    def notes(self) -> list[str]:
        return [*super().notes(), self.sids.summary()]
