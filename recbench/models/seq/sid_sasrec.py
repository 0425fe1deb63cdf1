"""SID-SASRec: SASRec over semantic-ID code tokens, generating the next item level by level.

RecBench group H (paper 001 §3.2, Table 5: SID-SASRec-3L/6L/12L/24L, with and without
conditional beam search). An item is its semantic ID c_1..c_L (`recbench.items.semantic_ids`,
RQ-VAE, L = 4 levels of K = 256 codes); a history of the newest 20 items becomes 20 L code
tokens, token id 1 + l K + c_l (0 = padding), right-aligned so that every item starts at a slot
divisible by L. SASRec's layers (`recbench.models.layers.attention.TransformerBlock`, pre-LN,
causal) run over the tokens:

    E_j  = √d · e_{tok_j} + P_j + Λ_{j mod L}          (token, slot and level embeddings)
    h_j  = LN(F^B_j),  F^b = FFN(SA(F^{b-1}))          (SASRec §III-B/C, causal)
    p_l(c | h_j) = softmax_c(h_j^T e_{1 + l K + c})    (level l's K code rows; tied embeddings)

Training is teacher-forced next-token cross-entropy (RecBench Eq. 7 at token level): on the
history + target sequence every position predicts the next token's code among its level's K
codes; early stopping on valid NDCG@10 of the CBS-decoded beam, lr 1e-3 as group G. Validation
decodes with CBS in both variants, so `SID-SASRec-3L` and `SID-SASRec-3L-CBS` train the same
model (same seed) and differ only in the test decoding, which is what the paired rows of
Table 5 compare; validating the plain variant on its own decodes would stop it in its first
epochs, while nearly every unconstrained code sequence is still invalid and NDCG@10 is 0.

Inference generates the target's L codes by `recbench.models.decoding.beam_search` (width
`beam`, default 20 >= the evaluator's top-k): the history is encoded once and its per-layer keys
and values cached (`CachedDecoder`); each level feeds one code per beam, attending to the
user's cached history (shared by its beams, never copied) and the beam's own earlier codes.
`decoding=recompute` re-runs history + codes so far at every level instead (the reference the
cache is tested and benchmarked against). With `cbs` the beams are restricted to prefixes of
real items (conditional beam search); without it an invalid code sequence is a miss.
`score_items` gives each returned item its joint log-probability and every other item -inf
(`beam_scores`), so the shared full-ranking and sampled100 evaluators rank it; RecBench's code
instead ranks the target by its teacher-forced per-level ranks, which never decodes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import polars as pl
import torch
from pydantic import create_model, model_validator
from torch import nn

from recbench import metrics
from recbench.core.config import Count, Dropout, NonNegativeInt, PositiveFloat
from recbench.core.errors import DataError
from recbench.items.semantic_ids import SemanticIDs, SIDConfig, semantic_ids
from recbench.models.base import Recommender, TaskData
from recbench.models.decoding import BeamResult, PrefixTrie, beam_scores, beam_search
from recbench.models.layers.attention import TransformerBlock, attention_mask
from recbench.models.torch_base import (
    MAX_HISTORY,
    _batches,
    pad_histories,
    seq_batch_note,
    with_seq_batch_size,
)
from recbench.training.loop import TrainConfig, describe, train


class SIDSASRecConfig(TrainConfig, SIDConfig):
    """Group H: SASRec's settings (group G's lr 1e-3, batch 256) + the tokenizer + decoding."""

    epochs: Count = 200
    patience: NonNegativeInt = 10
    batch_size: Count = 256
    lr: PositiveFloat = 1e-3
    dim: Count = 64
    max_len: Count = MAX_HISTORY  # items of history (each L tokens)
    dropout: Dropout = 0.2
    n_layers: Count = 2
    heads: Count = 2
    scale_embeddings: bool = True  # √d · e, as SASRec
    beam: Count = 20  # beams kept per user = items returned (>= the evaluator's top-k)
    cbs: bool = False  # conditional beam search: only prefixes of real items
    decoding: Literal["kv-cache", "recompute"] = "kv-cache"
    infer_batch_size: Count = 256  # users per beam search (each step runs users x beam rows)

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


class SIDSASRecEncoder(nn.Module):
    """Code tokens (N, T), slot 0 first -> states (N, T, d); also the cached decoding path."""

    def __init__(self, n_levels: int, codebook_size: int, n_slots: int, dim: int,
                 n_layers: int, heads: int, dropout: float, scale: bool = True):
        super().__init__()
        self.n_levels, self.codebook_size = n_levels, codebook_size
        self.scale = dim ** 0.5 if scale else 1.0
        self.tokens = nn.Embedding(1 + n_levels * codebook_size, dim, padding_idx=0)
        self.position = nn.Embedding(n_slots, dim)  # P: one per token slot
        self.level = nn.Embedding(n_levels, dim)  # Λ: the code level of the slot
        for table in (self.tokens, self.position, self.level):
            nn.init.normal_(table.weight, std=0.02)
        with torch.no_grad():
            self.tokens.weight[0].zero_()
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, dropout, ffn_dim=dim,
                                                     activation="relu", norm_first=True)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(dim)

    def embed(self, tokens: torch.Tensor, first_slot: int = 0) -> torch.Tensor:
        """(N, T) token ids at slots first_slot.. -> E (N, T, d)."""
        slots = torch.arange(first_slot, first_slot + tokens.shape[1], device=tokens.device)
        return (self.tokens(tokens) * self.scale + self.position(slots)
                + self.level(slots % self.n_levels))

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) tokens from slot 0 -> h (N, T, d), h_j sees tokens 0..j."""
        return self._run(tokens, cache=False)[0]

    def _run(self, tokens: torch.Tensor, cache: bool):
        pad = (tokens == 0).unsqueeze(-1)  # (N, T, 1)
        x = self.dropout(self.embed(tokens)).masked_fill(pad, 0.0)
        mask = attention_mask(tokens, causal=True)  # (N, 1, T, T)
        layers = []
        for block in self.blocks:
            if cache:
                x, k, v = block.prefill(x, mask)
                layers.append((k, v))
            else:
                x = block(x, mask)
            x = x.masked_fill(pad, 0.0)
        return self.norm(x), layers

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
        """History tokens (B, T) -> the last state (B, d) and per layer (k, v, keep)."""
        h, layers = self._run(tokens, cache=True)
        keep = tokens != 0  # (B, T): padding keys stay hidden
        return h[:, -1], [(k, v, keep) for k, v in layers]

    def step(self, tokens: torch.Tensor, slot: int, prefix: list, suffix: list
             ) -> tuple[torch.Tensor, list]:
        """One token per row (R,) at `slot` -> its state (R, d) and the extended suffix cache;
        rows come in B equal groups, one per user (see `TransformerBlock.step`)."""
        x = self.embed(tokens[:, None], slot)  # (R, 1, d)
        out = []
        for block, pre, own in zip(self.blocks, prefix, suffix, strict=True):
            x, kv = block.step(x, pre, own)
            out.append(kv)
        return self.norm(x[:, 0]), out

    def code_logprobs(self, h: torch.Tensor, level: int) -> torch.Tensor:
        """(N, d) states -> (N, K) log p_level(c | h) over level `level`'s code rows."""
        start = 1 + level * self.codebook_size
        rows = self.tokens.weight[start:start + self.codebook_size]  # (K, d)
        return torch.log_softmax(h @ rows.T, dim=-1)

    def all_code_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(N, d) -> (N, L, K) logits of every level's codes."""
        return (h @ self.tokens.weight[1:].T).view(-1, self.n_levels, self.codebook_size)


class CachedDecoder:
    """`decoding.Decoder` over the encoder's KV cache: the history runs once; each level feeds
    one code per beam, reading the user's cached history and the beam's own cached codes."""

    method = "kv-cache"

    def __init__(self, module: SIDSASRecEncoder, history: torch.Tensor):
        self.module, self.history = module, history  # (B, T) tokens

    def first(self) -> torch.Tensor:
        h, self.prefix = self.module.prefill(self.history)
        self.suffix: list = [None] * len(self.prefix)
        return self.module.code_logprobs(h, 0)  # (B, K)

    def next(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        suffix = [None if kv is None else (kv[0][parents], kv[1][parents])
                  for kv in self.suffix]  # the beams' own codes, reordered by their parents
        ids = 1 + (level - 1) * self.module.codebook_size + tokens  # (R,)
        h, self.suffix = self.module.step(ids, self.history.shape[1] + level - 1, self.prefix,
                                          suffix)
        return self.module.code_logprobs(h, level)  # (R, K)


class RecomputeDecoder:
    """`decoding.Decoder` that re-runs history + codes so far, for every beam, at every level."""

    method = "recompute"

    def __init__(self, module: SIDSASRecEncoder, history: torch.Tensor):
        self.module, self.rows = module, history  # (R, T + level) tokens

    def first(self) -> torch.Tensor:
        return self.module.code_logprobs(self.module.sequence(self.rows)[:, -1], 0)

    def next(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        ids = 1 + (level - 1) * self.module.codebook_size + tokens
        self.rows = torch.cat([self.rows[parents], ids[:, None]], dim=1)
        return self.module.code_logprobs(self.module.sequence(self.rows)[:, -1], level)


DECODERS = {"kv-cache": CachedDecoder, "recompute": RecomputeDecoder}


class SIDSASRec(Recommender):
    """SID-SASRec (RecBench group H): causal self-attention over semantic-ID code tokens."""

    Config: ClassVar[type[SIDSASRecConfig]] = SIDSASRecConfig
    tasks = ("seq",)
    mode = "train"
    module: SIDSASRecEncoder
    stats: dict[int, tuple[int, int]] | None = None  # per test row, counted once trained

    @property
    def model_id(self) -> str:
        return f"SID-SASRec-{self.config.n_layers}L{'-CBS' if self.config.cbs else ''}"

    def use_codes(self, sids: SemanticIDs) -> None:
        """Item codes -> the token table (n_items + 1, L) (row 0: padding) and the trie."""
        self.sids = sids
        codes = np.asarray(sids.codes, dtype=np.int64)
        k, n_levels = sids.codebook_size, codes.shape[1]
        table = np.zeros((codes.shape[0] + 1, n_levels), dtype=np.int64)
        table[1:] = 1 + np.arange(n_levels) * k + codes
        self.item_tokens = torch.from_numpy(table)
        self.trie = PrefixTrie(codes, k)

    def build(self) -> SIDSASRecEncoder:
        cfg, sids = self.config, self.sids
        slots = (cfg.max_len + 1) * sids.n_levels - 1  # history + target, less the last token
        return SIDSASRecEncoder(sids.n_levels, sids.codebook_size, slots, cfg.dim, cfg.n_layers,
                                cfg.heads, cfg.dropout, cfg.scale_embeddings)

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        sids = semantic_ids(data, cfg, self.ctx)
        if sids.n_items != data.n_items:
            raise DataError(f"semantic IDs {sids.key!r} cover {sids.n_items} items, dataset "
                            f"{data.dataset} has {data.n_items}")
        self.use_codes(sids)
        self.module = self.build().to(self.ctx.device)
        self.stats = None  # validation decodes are not test statistics
        items = pl.concat_list("history", "target").alias("s")
        seqs = pad_histories(data.train.select(items)["s"], cfg.max_len + 1, align="right")
        tokens = self.item_tokens[torch.from_numpy(seqs)].flatten(1)  # (n, (max_len + 1) L)
        valid, rng, n = data.valid, np.random.default_rng(self.ctx.seed), tokens.shape[0]
        self.config = cfg = with_seq_batch_size(cfg, n)

        def batches(_epoch):
            for idx in _batches(n, cfg.batch_size, rng):
                yield {"tokens": tokens[idx]}

        def validate(_module) -> float:
            scores = self.beam_item_scores(valid, cbs=True)  # model selection: always CBS
            return metrics.valid_ndcg10(scores, valid["target"].to_numpy())

        self.result = train(self.module, batches, self.loss, validate, cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), rng=rng)
        self.module.eval()
        self.stats = {}

    def loss(self, module: SIDSASRecEncoder, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Teacher forcing: every position predicts the next token's code among its level's K."""
        seq = batch["tokens"]  # (B, T + 1)
        inputs, labels = seq[:, :-1], seq[:, 1:]  # (B, T) each
        hidden = module.sequence(inputs)  # (B, T, d)
        keep = (inputs != 0) & (labels != 0)
        target = labels[keep] - 1  # (N,) = level * K + code
        k = module.codebook_size
        logits = module.all_code_logits(hidden[keep])  # (N, L, K)
        level_logits = logits[torch.arange(len(target), device=target.device), target // k]
        return nn.functional.cross_entropy(level_logits, target % k)

    def history_tokens(self, rows: pl.DataFrame) -> torch.Tensor:
        """(n, max_len L) code tokens of each row's newest items, right-aligned."""
        length = self.config.max_len
        if rows.height == 1:  # the latency protocol's path: skip polars' vectorised padding
            history = rows["history"][0]
            ids = (history.to_numpy()[-length:].astype(np.int64) + 1 if history is not None
                   else np.zeros(0, dtype=np.int64))
            shifted = np.zeros((1, length), dtype=np.int64)
            shifted[0, length - len(ids):] = ids
        else:
            shifted = pad_histories(rows["history"], length, align="right")
        return self.item_tokens[torch.from_numpy(shifted)].flatten(1)

    @torch.inference_mode()
    def decode(self, rows: pl.DataFrame, method: str | None = None, cbs: bool | None = None
               ) -> BeamResult:
        """Beam search over the next item's codes for `rows` (users x beams per forward)."""
        cfg = self.config
        cbs = cfg.cbs if cbs is None else cbs
        history = self.history_tokens(rows).to(self.ctx.device)
        decoder = DECODERS[method or cfg.decoding](self.module, history)
        return beam_search(decoder, rows.height, self.sids.n_levels, cfg.beam,
                           trie=self.trie if cbs else None, catalog=self.trie)

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        """(n, n_items): each beam item's joint code log-probability, -inf for the rest."""
        return self.beam_item_scores(rows)

    def beam_item_scores(self, rows: pl.DataFrame, cbs: bool | None = None) -> np.ndarray:
        """`score_items` with the decoding's CBS switch overridable (None: the config's)."""
        out = np.full((rows.height, self.sids.n_items), -np.inf, dtype=np.float32)
        step = self.config.infer_batch_size
        for start in range(0, rows.height, step):
            chunk = rows.slice(start, step)
            result = self.decode(chunk, cbs=cbs)
            out[start:start + chunk.height] = beam_scores(result, self.sids.n_items)
            if self.stats is not None and "target" in chunk.columns:
                self._count(chunk, result.items.numpy())
        return out

    def _count(self, rows: pl.DataFrame, items: np.ndarray) -> None:
        """Invalid beams and target-in-beam per test row, by user (latency repeats of the
        same rows are not counted twice)."""
        for user, target, beam in zip(rows["user_id"].to_list(), rows["target"].to_list(),
                                      items, strict=True):
            self.stats[int(user)] = (int((beam < 0).sum()), int(target in set(beam.tolist())))

    def notes(self) -> list[str]:
        cfg = self.config
        out = [sid_summary(self.sids),
               f"SeqRec: next item's codes by beam search, beam width {cfg.beam}, CBS "
               + ("on (prefix trie: every output a real item)" if cfg.cbs else
                  "off (invalid code sequences count as misses)")
               + f", decoding by {cfg.decoding}; score = joint log-probability of the codes "
               "(level-restricted softmax), items outside the beam -inf",
               f"training: {describe(self.result)}", seq_batch_note(cfg.batch_size)]
        if self.stats:
            invalid = sum(s[0] for s in self.stats.values())
            hit = sum(s[1] for s in self.stats.values())
            n = len(self.stats)
            out.append(f"beam output over {n} test rows: {invalid} invalid code sequences of "
                       f"{n * cfg.beam} returned; target inside the beam for {hit} rows "
                       f"({hit / n:.1%})")
        return out


def sid_summary(sids: SemanticIDs) -> str:
    """The tokenizer in one line: key, shape, collisions, reconstruction, per-level usage."""
    diag = sids.diagnostics or {}

    def fmt(v) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    shown = [f"{k}={fmt(diag[k])}" for k in (
        "collision_rate_before", "collision_rate_after", "strategy_used",
        "reconstruction_mse", "reconstruction_rel") if k in diag]
    shown += [f"{k} per level=[{', '.join(fmt(v) for v in diag[k])}]"
              for k in ("utilisation", "perplexity") if isinstance(diag.get(k), list)]
    return (f"semantic IDs: {sids.n_items} items x {sids.n_levels} levels of K = "
            f"{sids.codebook_size} (cache key {sids.key or 'n/a'})"
            + ("; " + ", ".join(shown) if shown else ""))


def with_layers(n_layers: int, cbs: bool) -> type[SIDSASRec]:
    """RecBench's SID-SASRec-{n}L[-CBS] (Table 5): a subclass whose Config fixes `n_layers`
    and `cbs`."""
    name = f"SIDSASRec{n_layers}L{'CBS' if cbs else ''}"
    config = create_model(f"{name}Config", __base__=SIDSASRecConfig, __module__=__name__,
                          n_layers=(Literal[n_layers], n_layers), cbs=(Literal[cbs], cbs))
    doc = (f"SID-SASRec with {n_layers} blocks, {'conditional' if cbs else 'plain'} beam "
           "search (RecBench Table 5).")
    return type(name, (SIDSASRec,), {"Config": config, "__module__": __name__,
                                     "__qualname__": name, "__doc__": doc})


SIDSASRec3L, SIDSASRec3LCBS = with_layers(3, False), with_layers(3, True)
SIDSASRec6L, SIDSASRec6LCBS = with_layers(6, False), with_layers(6, True)
SIDSASRec12L, SIDSASRec12LCBS = with_layers(12, False), with_layers(12, True)
SIDSASRec24L, SIDSASRec24LCBS = with_layers(24, False), with_layers(24, True)
