"""SID-SASRec: SASRec over semantic-ID code tokens, generating the next item level by level.

RecBench group H (paper 001 §3.2, Table 5: SID-SASRec-3L/6L/12L/24L, with and without
conditional beam search). An item is its semantic ID c_1..c_L (`recbench.items.semantic_ids`,
RQ-VAE, L = 4 levels of K = 256 codes); a history of the newest 20 items becomes 20 L code
tokens, token id 1 + l K + c_l (0 = padding), right-aligned so that every item starts at a slot
divisible by L. SASRec's encoder (`recbench.models.seq.sasrec.SASRecEncoder`: pre-LN causal
`TransformerBlock`s) runs over the tokens, with the code tokens as its item table and the
level of each slot added to its position:

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
`beam`, default 20 >= the evaluator's top-k) with the decoders group J shares
(`recbench.models.decoding.CachedDecoder` / `RecomputeDecoder` over `SASRecCodes`): the
history is encoded once and its per-layer keys and values cached; each level feeds one code per
beam, attending to the user's cached history (shared by its beams, never copied) and the beam's
own earlier codes. `decoding=recompute` re-runs history + codes so far at every level instead
(the reference the cache is tested and benchmarked against). With `cbs` the beams are
restricted to prefixes of real items (conditional beam search); without it an invalid code
sequence is a miss. `score_items` gives each returned item its joint log-probability and every
other item -inf (`beam_scores`), so the shared full-ranking and sampled100 evaluators rank it,
and the evaluator reports the beam's invalid and miss rates (`generate`); RecBench's code
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
from recbench.items import ItemTable
from recbench.items.semantic_ids import SemanticIDs, SIDConfig, semantic_ids
from recbench.models.base import Recommender, TaskData
from recbench.models.decoding import (
    BeamResult,
    CachedDecoder,
    Decoder,
    Decoding,
    PrefixTrie,
    RecomputeDecoder,
    beam_search,
    concat_beams,
)
from recbench.models.layers.attention import attention_mask
from recbench.models.seq.sasrec import SASRecEncoder
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
    decoding: Decoding = "kv-cache"
    infer_batch_size: Count = 256  # users per beam search (each step runs users x beam rows)

    @model_validator(mode="after")
    def _heads_divide_dim(self):
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


class CodeTokens(ItemTable):
    """Code token ids (..., 0 = padding) -> e_tok (..., d): SASRec's item table for code tokens;
    token 1 + l K + c is code c of level l."""

    def __init__(self, n_levels: int, codebook_size: int, dim: int):
        super().__init__()
        self.dim = dim
        self.embedding = nn.Embedding(1 + n_levels * codebook_size, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embedding(tokens)


class SlotEmbedding(nn.Module):
    """P_j + Λ_{j mod L}: the slot's position and code level, slots counted from the first token.

    SASRec numbers positions back from the newest token; a code sequence is numbered from its
    first slot instead, because every history is padded to max_len L tokens and the generated
    codes continue it at slots T, T + 1, ... So `forward` (what `SASRecEncoder.sequence` calls
    with its right-aligned positions) counts from the first position it is given.
    """

    def __init__(self, weight: nn.Parameter, n_levels: int):
        super().__init__()
        self.weight, self.n_levels = weight, n_levels  # P: (n_slots, d), SASRec's drawn rows
        self.level = nn.Embedding(n_levels, weight.shape[1])  # Λ
        nn.init.normal_(self.level.weight, std=0.02)

    def at(self, slots: torch.Tensor) -> torch.Tensor:
        """(T,) slot numbers -> (T, d)."""
        return nn.functional.embedding(slots, self.weight) + self.level(slots % self.n_levels)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.at(positions - positions[0])


class SIDSASRecEncoder(SASRecEncoder):
    """SASRec's encoder over code tokens (N, T), slot 0 first -> states (N, T, d), plus the
    cached decoding path (`prefill`, `step`) and the level-restricted code softmax."""

    def __init__(self, n_levels: int, codebook_size: int, n_slots: int, dim: int,
                 n_layers: int, heads: int, dropout: float, scale: bool = True):
        super().__init__(CodeTokens(n_levels, codebook_size, dim), n_slots, n_layers, heads,
                         dropout, scale, causal=True)
        self.n_levels, self.codebook_size = n_levels, codebook_size
        self.position = SlotEmbedding(self.position.weight, n_levels)

    @property
    def tokens(self) -> nn.Embedding:
        """The code token table (tied: it also scores the codes)."""
        return self.items.embedding

    def embed(self, tokens: torch.Tensor, first_slot: int = 0) -> torch.Tensor:
        """(N, T) token ids at slots first_slot.. -> E (N, T, d)."""
        slots = torch.arange(first_slot, first_slot + tokens.shape[1], device=tokens.device)
        return self.items(tokens) * self.scale + self.position.at(slots)

    def prefill(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list]:
        """History tokens (B, T) -> the last state (B, d) and per layer (k, v, keep): what
        `sequence(tokens)[:, -1]` computes, keeping each layer's keys and values."""
        pad = (tokens == 0).unsqueeze(-1)  # (B, T, 1)
        x = self.dropout(self.embed(tokens)).masked_fill(pad, 0.0)
        mask = attention_mask(tokens, causal=True)  # (B, 1, T, T)
        keep, layers = tokens != 0, []  # keep (B, T): padding keys stay hidden
        for block in self.blocks:
            x, k, v = block.prefill(x, mask)
            x = x.masked_fill(pad, 0.0)
            layers.append((k, v, keep))
        return self.norm(x)[:, -1], layers

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


def draw_parameters(module: SIDSASRecEncoder) -> SIDSASRecEncoder:
    """Draw `module`'s parameters from the global RNG in group H's order: token, slot and level
    tables (each nn.Embedding's N(0, 1), then N(0, 0.02)), then the blocks' layers.

    The encoder drew them in this order before it reused SASRec's (which draws positions and
    blocks before a subclass can add its level table), so a seeded run trains the same model,
    and a record the same numbers, as before.
    """
    tables = (module.tokens.weight, module.position.weight, module.position.level.weight)
    with torch.no_grad():
        for table in tables:
            table.normal_()  # nn.Embedding's own initialisation, overwritten below
        for table in tables:
            table.normal_(std=0.02)
        module.tokens.weight[0].zero_()  # padding
        for layer in module.blocks.modules():
            if isinstance(layer, nn.Linear | nn.LayerNorm):
                layer.reset_parameters()
    return module


class SASRecCodes:
    """The encoder's forward passes over B users' histories, for the shared decoders
    (`decoding.CachedCodeModel` and `decoding.CodeModel`)."""

    def __init__(self, module: SIDSASRecEncoder, history: torch.Tensor):
        self.module, self.history = module, history  # (B, T) tokens

    def token_ids(self, codes: torch.Tensor, first_level: int) -> torch.Tensor:
        """Codes (..., l) of levels first_level.. -> their token ids."""
        levels = torch.arange(first_level, first_level + codes.shape[-1], device=codes.device)
        return 1 + levels * self.module.codebook_size + codes

    def prefill(self) -> torch.Tensor:
        h, self.prefix = self.module.prefill(self.history)
        self.suffix: list = [None] * len(self.prefix)
        return self.module.code_logprobs(h, 0)  # (B, K)

    def extend(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        suffix = [None if kv is None else (kv[0][parents], kv[1][parents])
                  for kv in self.suffix]  # the beams' own codes, reordered by their parents
        ids = self.token_ids(tokens[:, None], level - 1)[:, 0]  # (R,)
        h, self.suffix = self.module.step(ids, self.history.shape[1] + level - 1, self.prefix,
                                          suffix)
        return self.module.code_logprobs(h, level)  # (R, K)

    def rescore(self, users: np.ndarray, codes: np.ndarray, level: int) -> torch.Tensor:
        device = self.history.device
        codes = torch.from_numpy(codes).to(device)
        rows = torch.cat([self.history[torch.from_numpy(users).to(device)],
                          self.token_ids(codes, 0)], dim=1)  # (R, T + level)
        return self.module.code_logprobs(self.module.sequence(rows)[:, -1], level)


def decoder(module: SIDSASRecEncoder, history: torch.Tensor, method: str) -> Decoder:
    """The `method` decoder ("kv-cache" or "recompute") over `history` (B, T) tokens."""
    codes = SASRecCodes(module, history)
    return CachedDecoder(codes) if method == "kv-cache" else RecomputeDecoder(codes, len(history))


class SIDSASRec(Recommender):
    """SID-SASRec (RecBench group H): causal self-attention over semantic-ID code tokens."""

    Config: ClassVar[type[SIDSASRecConfig]] = SIDSASRecConfig
    tasks = ("seq",)
    mode = "train"
    module: SIDSASRecEncoder

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
        with torch.random.fork_rng(devices=[]):  # its draws are replaced just below
            module = SIDSASRecEncoder(sids.n_levels, sids.codebook_size, slots, cfg.dim,
                                      cfg.n_layers, cfg.heads, cfg.dropout, cfg.scale_embeddings)
        return draw_parameters(module)

    def fit(self, data: TaskData) -> None:
        cfg = self.config
        self.use_codes(semantic_ids(data, cfg, self.ctx).check_covers(data))
        self.module = self.build().to(self.ctx.device)
        items = pl.concat_list("history", "target").alias("s")
        seqs = pad_histories(data.train.select(items)["s"], cfg.max_len + 1, align="right")
        tokens = self.item_tokens[torch.from_numpy(seqs)].flatten(1)  # (n, (max_len + 1) L)
        valid, rng, n = data.valid, np.random.default_rng(self.ctx.seed), tokens.shape[0]
        self.config = cfg = with_seq_batch_size(cfg, n)

        def batches(_epoch):
            for idx in _batches(n, cfg.batch_size, rng):
                yield {"tokens": tokens[idx]}

        def validate(_module) -> float:
            # model selection: always CBS
            scores = self.generate(valid, cbs=True).item_scores(self.sids.n_items)
            return metrics.valid_ndcg10(scores, valid["target"].to_numpy())

        self.result = train(self.module, batches, self.loss, validate, cfg, self.ctx,
                            n_batches=lambda _e: -(-n // cfg.batch_size), rng=rng)
        self.module.eval()

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

    def decoder(self, history: torch.Tensor, method: str | None = None) -> Decoder:
        """A `decoding.Decoder` over `history` (B, T) tokens (`method`: the config's)."""
        return decoder(self.module, history, method or self.config.decoding)

    @torch.inference_mode()
    def decode(self, rows: pl.DataFrame, method: str | None = None, cbs: bool | None = None
               ) -> BeamResult:
        """Beam search over the next item's codes for `rows` (users x beams per forward)."""
        cfg = self.config
        cbs = cfg.cbs if cbs is None else cbs
        history = self.history_tokens(rows).to(self.ctx.device)
        return beam_search(self.decoder(history, method), rows.height, self.sids.n_levels,
                           cfg.beam, trie=self.trie if cbs else None, catalog=self.trie)

    def generate(self, rows: pl.DataFrame, cbs: bool | None = None) -> BeamResult:
        """The beams of `rows`, `infer_batch_size` users per search (None: the config's CBS);
        what the shared evaluator scores and counts (`evaluation.BeamGenerator`)."""
        step = self.config.infer_batch_size
        return concat_beams([self.decode(rows.slice(start, step), cbs=cbs)
                             for start in range(0, rows.height, step)])

    def score_items(self, rows: pl.DataFrame) -> np.ndarray:
        """(n, n_items): each beam item's joint code log-probability, -inf for the rest."""
        return self.generate(rows).item_scores(self.sids.n_items)

    def notes(self) -> list[str]:
        cfg = self.config
        return [self.sids.summary(),
                f"SeqRec: next item's codes by beam search, beam width {cfg.beam}, CBS "
                + ("on (prefix trie: every output a real item)" if cfg.cbs else
                   "off (invalid code sequences count as misses)")
                + f", decoding by {cfg.decoding}; score = joint log-probability of the codes "
                "(level-restricted softmax), items outside the beam -inf; beam invalid and "
                "miss rates in the metrics' beam section",
                f"training: {describe(self.result)}", seq_batch_note(cfg.batch_size)]


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
