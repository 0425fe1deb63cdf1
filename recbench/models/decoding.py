"""Generating an item's semantic ID level by level: beam search, with or without the prefix trie.

RecBench §3.2 (groups H and J) generates the next item as its semantic ID c_1..c_L (RQ-VAE
codes, `recbench.items.semantic_ids`), one level at a time. A beam of width W keeps, per user,
the W code prefixes of highest joint log-probability

    log p(c_1..c_l | history) = Σ_{i<=l} log p_i(c_i | history, c_<i),

where each p_i is a softmax over that level's K codes. Plain beam search may end on a code
sequence no item has (an *invalid* output: it counts as a miss, the paper's rows without
"-CBS"). Conditional beam search (CBS, the "-CBS" rows) masks at every level the codes that do
not extend the prefix to a prefix of a real item (a `PrefixTrie` over the catalogue's codes), so
every finished beam is exactly one item. Items are ranked by their joint log-probability;
`beam_scores` turns a beam into the (B, n_items) score matrix of the shared evaluator (items
outside the beam score -inf and so rank last, ties against the target).

The model side is a `Decoder`: one batch of B users whose history has been encoded once
(`first`), then fed one code per beam per level (`next`), its state reordered by the beams'
parents. Groups H (`recbench.models.seq.sid_sasrec`, SASRec over code tokens) and J
(`recbench.models.llm.sid`, a language model over code tokens) share both decoders here:
`CachedDecoder` over a `CachedCodeModel` (the histories run once, each level appends one
token per beam to a KV cache) and `RecomputeDecoder` over a `CodeModel` (history + codes so
far re-run at every level: the reference the cache is tested against, and the only path for
encoders); a model supplies the forward passes, the decoders keep the beams' bookkeeping.

The beam statistics have one definition, `BeamResult.statistics`, which the shared evaluator
(`recbench.evaluation.evaluate_seq`) keeps per test row of any `BeamGenerator` (predictions
columns) and reports as the record's `beam` metrics: `invalid_rate` = returned sequences
(finite score) that are no item / returned sequences (0 under CBS; an empty -inf slot is no
returned sequence), and `target_in_beam` / `miss_rate` = test rows whose target is / is not
among the returned items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

# Dense per-level child tables up to this many entries (int32: 128 MiB); larger catalogues
# look children up in the sorted prefix keys instead (same answers, a few more ops per level).
DENSE_LIMIT = 1 << 25


class PrefixTrie:
    """The catalogue's code prefixes, for masking beams (CBS) and mapping codes to items.

    Nodes are numbered per depth from 1 (0 = "no such prefix"): the root is node 1 of depth 0;
    node n of depth l with child code c is the prefix extended by c. At each level l the
    children are stored either as a dense table T_l (n_nodes_l + 1, K), T_l[n, c] = child id
    (at the last level: item id + 1) or 0, or, past `dense_limit` entries, as the sorted keys
    n * K + c with the child id beside each key. Lookups are vectorised over rows (a Python
    loop runs over levels only).

    Args:
        codes: (n_items, L) int codes in [0, codebook_size); rows must be unique.
        codebook_size: K; default codes.max() + 1.
        dense_limit: the most entries a dense level table may hold.

    Raises:
        ValueError: if codes are not a 2-d table of unique rows in range.
    """

    def __init__(self, codes: np.ndarray, codebook_size: int | None = None,
                 dense_limit: int = DENSE_LIMIT):
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
            raise ValueError(f"PrefixTrie: codes must be (n_items, n_levels), got {codes.shape}")
        codes = codes.astype(np.int64)
        k = int(codes.max()) + 1 if codebook_size is None else int(codebook_size)
        if codes.min() < 0 or codes.max() >= k:
            raise ValueError(f"PrefixTrie: codes must lie in [0, {k}), got "
                             f"[{codes.min()}, {codes.max()}]")
        self.n_items, self.n_levels = codes.shape
        self.codebook_size = k
        node = np.ones(self.n_items, dtype=np.int64)  # every item starts at the root (id 1)
        n_nodes = 1
        self._keys: list[np.ndarray] = []  # per level: sorted n * K + c
        self._child: list[np.ndarray] = []  # per level: the child id of each key
        self._n_nodes: list[int] = []  # per level: nodes of the parent depth
        for level in range(self.n_levels):
            key = node * k + codes[:, level]  # (n_items,)
            uniq, inverse = np.unique(key, return_inverse=True)
            if level + 1 < self.n_levels:
                child = np.arange(1, len(uniq) + 1, dtype=np.int64)
            else:
                if len(uniq) != self.n_items:
                    raise ValueError(f"PrefixTrie: {self.n_items - len(uniq)} items share "
                                     "their full code with another item; codes must be unique")
                child = np.empty(len(uniq), dtype=np.int64)
                child[inverse] = np.arange(self.n_items) + 1  # leaf -> item id + 1
            self._keys.append(uniq)
            self._child.append(child)
            self._n_nodes.append(n_nodes)
            node, n_nodes = inverse.astype(np.int64) + 1, len(uniq)
        self.dense_limit = dense_limit
        self._device_tables: dict[str, list[tuple[torch.Tensor, ...]]] = {}

    def _tables(self, device: torch.device | str) -> list[tuple[torch.Tensor, ...]]:
        """Per level, on `device`: ("dense", T_l) or ("sorted", keys, child), built once."""
        name = str(device)
        if name not in self._device_tables:
            out = []
            k = self.codebook_size
            for keys, child, n_nodes in zip(self._keys, self._child, self._n_nodes, strict=True):
                if (n_nodes + 1) * k <= self.dense_limit:
                    table = np.zeros((n_nodes + 1) * k, dtype=np.int32)
                    table[keys] = child  # key n * K + c is the flat index of T_l[n, c]
                    out.append((torch.from_numpy(table.reshape(n_nodes + 1, k)).to(device),))
                else:
                    out.append((torch.from_numpy(keys).to(device),
                                torch.from_numpy(child).to(device)))
            self._device_tables[name] = out
        return self._device_tables[name]

    def root(self, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(n,) node ids of the empty prefix."""
        return torch.ones(n, dtype=torch.long, device=device)

    def children(self, nodes: torch.Tensor, level: int) -> torch.Tensor:
        """(N,) node ids of depth `level` -> (N, K) child ids (0 = no such prefix); at the last
        level the child id is item id + 1."""
        tables = self._tables(nodes.device)[level]
        if len(tables) == 1:
            return tables[0][nodes].long()  # (N, K)
        keys, child = tables
        query = nodes[:, None] * self.codebook_size + torch.arange(
            self.codebook_size, device=nodes.device)  # (N, K)
        return _sorted_lookup(keys, child, query) * (nodes[:, None] > 0)

    def child(self, nodes: torch.Tensor, codes: torch.Tensor, level: int) -> torch.Tensor:
        """(N,) nodes of depth `level` and (N,) codes -> (N,) child ids (0 = not a prefix)."""
        inside = (codes >= 0) & (codes < self.codebook_size)
        codes = codes.clamp(0, self.codebook_size - 1)
        tables = self._tables(nodes.device)[level]
        if len(tables) == 1:
            found = tables[0][nodes, codes].long()
        else:
            found = _sorted_lookup(tables[0], tables[1], nodes * self.codebook_size + codes)
            found = found * (nodes > 0)
        return found * inside

    def node_of(self, prefixes: torch.Tensor) -> torch.Tensor:
        """(N, l) code prefixes -> (N,) node ids of depth l (0 where no item has the prefix)."""
        nodes = self.root(prefixes.shape[0], prefixes.device)
        for level in range(prefixes.shape[1]):
            nodes = self.child(nodes, prefixes[:, level].long(), level)
        return nodes

    def allowed(self, prefixes: torch.Tensor) -> torch.Tensor:
        """(N, l) code prefixes, l < n_levels -> (N, K) bool: which level-l codes extend each
        prefix to the prefix of a real item (all False for a prefix no item has)."""
        level = prefixes.shape[1]
        if level >= self.n_levels:
            raise ValueError(f"PrefixTrie.allowed: prefixes of length {level}; the trie has "
                             f"{self.n_levels} levels")
        return self.children(self.node_of(prefixes), level) > 0

    def item_of(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, L) full codes -> (N,) item ids, -1 where no item has the code."""
        if codes.shape[1] != self.n_levels:
            raise ValueError(f"PrefixTrie.item_of: codes of {codes.shape[1]} levels; the trie "
                             f"has {self.n_levels}")
        return self.node_of(codes) - 1


def _sorted_lookup(keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor
                   ) -> torch.Tensor:
    """values[i] where keys[i] == query (keys sorted), else 0; any shape of query."""
    pos = torch.searchsorted(keys, query.reshape(-1)).clamp(max=keys.numel() - 1)
    hit = keys[pos] == query.reshape(-1)
    return torch.where(hit, values[pos], 0).reshape(query.shape)


class Decoder(Protocol):
    """One batch of B users being decoded, level by level (see `beam_search`)."""

    def first(self) -> torch.Tensor:
        """(B, K) level-0 log-probs given each user's history; encodes and caches it."""

    def next(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """(R, K) level-`level` log-probs of R new rows.

        Args:
            parents: (R,) rows of the previous call's output each new row continues; rows are
                grouped by user, row b * W + j being beam j of user b (W = R / B, the same for
                every user), so row r belongs to user r // W.
            tokens: (R,) the code each new row appends at level `level - 1`.
            level: the level whose log-probs are returned (1..L-1).
        """


class CodeModel(Protocol):
    """The forward pass of a model over code tokens, for `RecomputeDecoder`."""

    def rescore(self, users: np.ndarray, codes: np.ndarray, level: int) -> torch.Tensor:
        """(R, K) level-`level` log-probs after user `users[r]`'s history + codes[r].

        Args:
            users: (R,) which of the batch's B histories each row continues.
            codes: (R, level) int64 codes generated so far, level 0 first.
            level: the level whose K codes are scored.
        """


class CachedCodeModel(Protocol):
    """The incremental forward pass of a model over code tokens, for `CachedDecoder`."""

    def prefill(self) -> torch.Tensor:
        """(B, K) level-0 log-probs; runs the B histories once and keeps their KV cache."""

    def extend(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        """(R, K) level-`level` log-probs after reordering the cache rows by `parents` (as
        `Decoder.next`) and appending code `tokens` (R,) of level `level - 1`."""


class CachedDecoder:
    """`Decoder` over a KV cache: the histories run once, every level appends one code per beam.

    The model keeps its own cache (its layout differs: SASRec's shared prefix, a transformers
    `Cache`); this class is the `Decoder` face both groups present to `beam_search`.
    """

    method = "kv-cache"

    def __init__(self, model: CachedCodeModel):
        self.model = model

    def first(self) -> torch.Tensor:
        return self.model.prefill()

    def next(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        return self.model.extend(torch.as_tensor(parents, dtype=torch.long),
                                 torch.as_tensor(tokens, dtype=torch.long), level)


class RecomputeDecoder:
    """`Decoder` that re-runs history + codes so far for every beam at every level (no cache).

    Keeps, per row, the user it descends from and its code prefix, reordered by the beams'
    parents at every level; the model scores (user, prefix) rows from scratch.
    """

    method = "recompute"

    def __init__(self, model: CodeModel, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def first(self) -> torch.Tensor:
        self.users = np.arange(self.batch_size)
        self.codes = np.zeros((self.batch_size, 0), dtype=np.int64)
        return self.model.rescore(self.users, self.codes, 0)

    def next(self, parents: torch.Tensor, tokens: torch.Tensor, level: int) -> torch.Tensor:
        parents = np.asarray(torch.as_tensor(parents).cpu(), dtype=np.int64)
        tokens = np.asarray(torch.as_tensor(tokens).cpu(), dtype=np.int64)
        self.users = self.users[parents]
        self.codes = np.concatenate([self.codes[parents], tokens[:, None]], axis=1)
        return self.model.rescore(self.users, self.codes, level)


Decoding = Literal["kv-cache", "recompute"]  # a config's `decoding`: which decoder


@dataclass(frozen=True)
class BeamResult:
    """The finished beams of B users, best first (CPU tensors).

    Attributes:
        items: (B, W) long item ids; -1 = the code sequence is no item (only without CBS) or
            the slot is empty (score -inf: fewer valid sequences than W, e.g. a catalogue
            smaller than the beam).
        scores: (B, W) float joint log-probabilities of the codes.
        codes: (B, W, L) long codes.
        n_invalid: returned sequences (finite score) that are no item; 0 under CBS.
    """

    items: torch.Tensor
    scores: torch.Tensor
    codes: torch.Tensor
    n_invalid: int

    def item_scores(self, n_items: int) -> np.ndarray:
        """(B, n_items) scores for the shared evaluator (`beam_scores`)."""
        return beam_scores(self, n_items)

    def statistics(self, targets: np.ndarray) -> dict[str, np.ndarray]:
        """Per row, the beam counts the shared evaluator keeps: the one definition for H and J.

        Args:
            targets: (B,) each row's true next item.

        Returns:
            (B,) arrays: beam_returned, the code sequences returned (finite score; an empty
            -inf slot is none); beam_invalid, the returned sequences that are no item (they
            sum to `n_invalid`); beam_hit, whether the target is one of the returned items.
        """
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        items = self.items.numpy()
        if items.shape[0] != targets.shape[0]:
            raise ValueError(f"BeamResult.statistics: {targets.shape[0]} targets for "
                             f"{items.shape[0]} rows")
        returned = np.isfinite(self.scores.float().numpy())
        return {"beam_returned": returned.sum(axis=1).astype(np.int32),
                "beam_invalid": ((items < 0) & returned).sum(axis=1).astype(np.int32),
                "beam_hit": ((items == targets[:, None]) & returned).any(axis=1)}


def concat_beams(results: list[BeamResult]) -> BeamResult:
    """The beams of consecutive row chunks as one `BeamResult` (the width W is the same in
    every chunk: it depends only on the beam, K and L)."""
    if not results:
        raise ValueError("concat_beams: no results")
    return BeamResult(torch.cat([r.items for r in results]),
                      torch.cat([r.scores for r in results]),
                      torch.cat([r.codes for r in results]),
                      sum(r.n_invalid for r in results))



def beam_search(decoder: Decoder, batch_size: int, n_levels: int, beam: int,
                trie: PrefixTrie | None = None, *, catalog: PrefixTrie | None = None
                ) -> BeamResult:
    """Beam search over the L code levels for B users at once (users x beams in every call).

    At level l every beam's K continuations are scored by joint log-probability and each user
    keeps the best min(beam, W_{l-1} K); with `trie` (CBS) continuations that are no prefix of
    a real item are masked to -inf first, so every finished beam is an item.

    Args:
        decoder: the model, see `Decoder`.
        batch_size: B, the rows of `decoder.first()`.
        n_levels: L.
        beam: W, the beams kept per user (and the items returned).
        trie: the catalogue's codes: constrain to them (conditional beam search).
        catalog: maps finished codes to items when `trie` is None (plain beam search);
            default: `trie`.

    Returns:
        `BeamResult`, rows sorted by score.

    Raises:
        ValueError: if neither `trie` nor `catalog` is given, or the decoder's K is smaller
            than the trie's.
    """
    catalog = catalog if catalog is not None else trie
    if catalog is None:
        raise ValueError("beam_search: pass trie= (CBS) or catalog= (plain beam search): the "
                         "codes need the PrefixTrie to map to items")
    if beam < 1 or n_levels != catalog.n_levels:
        raise ValueError(f"beam_search: beam {beam} and n_levels {n_levels} (the trie has "
                         f"{catalog.n_levels} levels)")
    logp = decoder.first().float()  # (B, K)
    device, k = logp.device, logp.shape[1]
    if k < catalog.codebook_size:
        raise ValueError(f"beam_search: the decoder scores {k} codes per level, the trie has "
                         f"{catalog.codebook_size}")
    nodes = catalog.root(batch_size, device)  # (R,) trie node of every row's prefix
    scores = torch.zeros(batch_size, 1, device=device)  # (B, W_prev) joint log-prob so far
    codes = torch.zeros(batch_size, 1, 0, dtype=torch.long, device=device)  # (B, W_prev, l)
    parents = tokens = torch.zeros(0, dtype=torch.long, device=device)  # set at every level
    for level in range(n_levels):
        if level > 0:
            logp = decoder.next(parents, tokens, level).float()  # (B * W_prev, K)
        children = None
        if trie is not None:
            children = _pad_codes(catalog.children(nodes, level), k)  # (B * W_prev, K)
            logp = logp.masked_fill(children == 0, float("-inf"))
        width = scores.shape[1]
        joint = (scores.unsqueeze(-1) + logp.view(batch_size, width, k)).view(batch_size, -1)
        scores, index = joint.topk(min(beam, width * k), dim=1)  # (B, W), best first
        beam_of, tokens = index // k, index % k  # (B, W) parent beam, code appended
        parents = (beam_of + torch.arange(batch_size, device=device)[:, None] * width).view(-1)
        tokens = tokens.view(-1)  # (B * W,)
        codes = torch.cat([codes.gather(1, beam_of[..., None].expand(-1, -1, level)),
                           tokens.view(batch_size, -1, 1)], dim=2)  # (B, W, l + 1)
        if children is not None:  # follow the trie: one lookup in the rows already gathered
            nodes = children[parents, tokens]
        else:
            nodes = catalog.child(nodes[parents], tokens, level)
    items = (nodes - 1).view(batch_size, -1)  # at the last level a child id is item id + 1
    finite = torch.isfinite(scores)
    items = torch.where(finite, items, -1)
    n_invalid = int(((items < 0) & finite).sum())
    return BeamResult(items.cpu(), scores.cpu(), codes.cpu(), n_invalid)


def _pad_codes(children: torch.Tensor, k: int) -> torch.Tensor:
    """(N, K_trie) -> (N, k): codes the trie never uses (K_trie < k) have no children."""
    if children.shape[1] == k:
        return children
    return torch.nn.functional.pad(children, (0, k - children.shape[1]))


def beam_scores(result: BeamResult, n_items: int) -> np.ndarray:
    """(B, n_items) float32 scores for the shared evaluator: each returned item's joint
    log-probability, -inf for every other item (and invalid sequences, which are misses)."""
    items = result.items.numpy()
    scores = result.scores.float().numpy()
    out = np.full((items.shape[0], n_items), -np.inf, dtype=np.float32)
    rows, cols = np.nonzero(items >= 0)
    out[rows, items[rows, cols]] = scores[rows, cols]
    return out
