"""Beam search over semantic-ID levels (recbench.models.decoding): the prefix trie against set
membership, beam search against brute-force enumeration and a plain-Python reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from recbench.models.decoding import BeamResult, PrefixTrie, beam_scores, beam_search


def _codes(n_items: int, n_levels: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    space = np.array(list(itertools.product(range(k), repeat=n_levels)))
    return space[rng.choice(len(space), n_items, replace=False)]


class TableDecoder:
    """Fixed random log-prob tables: p_l(. | user, c_<l) is a seeded softmax per (user, prefix),
    so the joint log-prob of any code is a sum of table entries (brute force is exact)."""

    def __init__(self, n_users: int, n_levels: int, k: int, seed: int = 0,
                 boost: dict | None = None):
        gen = torch.Generator().manual_seed(seed)
        self.k, self.n_levels = k, n_levels
        self.offsets = np.cumsum([0] + [k ** lv for lv in range(n_levels)])  # prefix index base
        logits = torch.randn(n_users, int(self.offsets[-1]), k, generator=gen) * 2.0
        for (level, code), value in (boost or {}).items():  # make a code likely at a level
            logits[:, self.offsets[level]:self.offsets[level + 1], code] += value
        self.logp = torch.log_softmax(logits, dim=-1)  # (B, n_prefixes, K)
        self.calls: list[tuple[int, int]] = []

    def first(self) -> torch.Tensor:
        self.user = torch.arange(self.logp.shape[0])
        self.local = torch.zeros_like(self.user)  # prefix index within its level
        self.calls.append((0, len(self.user)))
        return self.logp[:, 0]

    def next(self, parents, tokens, level):
        self.user = self.user[parents]
        self.local = self.local[parents] * self.k + tokens
        self.calls.append((level, len(parents)))
        return self.logp[self.user, int(self.offsets[level]) + self.local]

    def joint(self, user: int, code) -> float:
        total, local = 0.0, 0
        for level, c in enumerate(code):
            total += float(self.logp[user, int(self.offsets[level]) + local, c])
            local = local * self.k + int(c)
        return total


def reference_beam(dec: TableDecoder, user: int, beam: int, valid_prefixes: set | None):
    """Plain-Python beam search for one user (the independent reference)."""
    beams = [((), 0.0)]
    for _level in range(dec.n_levels):
        cands = []
        for prefix, score in beams:
            for c in range(dec.k):
                new = (*prefix, c)
                if valid_prefixes is not None and new not in valid_prefixes:
                    continue
                cands.append((new, score + dec.joint(user, new) - dec.joint(user, prefix)))
        cands.sort(key=lambda t: -t[1])
        beams = cands[:beam]
    return beams


# --- trie -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dense_limit", [1 << 25, 0])  # dense tables and sorted keys
def test_trie_allowed_and_item_of_match_set_membership(dense_limit):
    k, n_levels = 4, 3
    codes = _codes(20, n_levels, k, seed=1)
    trie = PrefixTrie(codes, codebook_size=k, dense_limit=dense_limit)
    assert (trie.n_levels, trie.codebook_size) == (3, 4)
    prefixes = {tuple(row[:lv]) for row in codes.tolist() for lv in range(n_levels + 1)}
    for level in range(n_levels):
        queries = np.array(list(itertools.product(range(k), repeat=level)),
                           dtype=np.int64).reshape(k ** level, level)  # level 0: one ()
        got = trie.allowed(torch.as_tensor(queries)).numpy()
        want = np.array([[(*q, c) in prefixes for c in range(k)] for q in queries.tolist()])
        assert got.shape == (len(queries), k) and (got == want).all()
    every = np.array(list(itertools.product(range(k), repeat=n_levels)))
    item = {tuple(row): i for i, row in enumerate(codes.tolist())}
    want = [item.get(tuple(row), -1) for row in every.tolist()]
    assert trie.item_of(torch.as_tensor(every)).tolist() == want
    # codes outside [0, K) are no item (not wrapped into another node's key)
    assert trie.item_of(torch.tensor([[0, 0, k], [-1, 0, 0]])).tolist() == [-1, -1]


def test_trie_rejects_collisions_and_bad_tables():
    with pytest.raises(ValueError, match="share their full code"):
        PrefixTrie(np.array([[0, 1], [0, 1], [1, 0]]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        PrefixTrie(np.array([[0, 2]]), codebook_size=2)
    with pytest.raises(ValueError):
        PrefixTrie(np.zeros(3, dtype=np.int64))


# --- beam search ----------------------------------------------------------------------------

@pytest.mark.parametrize("dense_limit", [1 << 25, 0])
def test_cbs_with_a_wide_beam_is_the_brute_force_ranking(dense_limit):
    k, n_levels, n_items, users = 5, 3, 30, 4
    codes = _codes(n_items, n_levels, k, seed=2)
    dec = TableDecoder(users, n_levels, k, seed=3)
    trie = PrefixTrie(codes, k, dense_limit=dense_limit)
    result = beam_search(dec, users, n_levels, beam=n_items + 5, trie=trie)
    assert result.items.shape == (users, n_items + 5) and result.codes.shape[2] == n_levels
    assert result.n_invalid == 0
    for u in range(users):
        brute = np.array([dec.joint(u, c) for c in codes.tolist()])  # every item's joint
        order = np.argsort(-brute, kind="stable")
        assert result.items[u, :n_items].tolist() == order.tolist()
        assert np.allclose(result.scores[u, :n_items].numpy(), brute[order], atol=1e-5)
        assert (result.items[u, n_items:] == -1).all()  # empty slots: no 31st item
        assert torch.isinf(result.scores[u, n_items:]).all()
        for slot in range(n_items):  # codes are the item's codes
            assert result.codes[u, slot].tolist() == codes[result.items[u, slot]].tolist()
    # users x beams batched: one call per level, rows B then B * W
    assert [lv for lv, _ in dec.calls] == [0, 1, 2] and dec.calls[0][1] == users


@pytest.mark.parametrize("cbs", [True, False])
def test_narrow_beam_matches_a_plain_python_beam_search(cbs):
    k, n_levels, n_items, users, beam = 6, 3, 50, 5, 3
    codes = _codes(n_items, n_levels, k, seed=4)
    dec = TableDecoder(users, n_levels, k, seed=5)
    trie = PrefixTrie(codes, k)
    valid = {tuple(row[:lv]) for row in codes.tolist() for lv in range(1, n_levels + 1)}
    result = beam_search(dec, users, n_levels, beam, trie=trie if cbs else None, catalog=trie)
    item = {tuple(row): i for i, row in enumerate(codes.tolist())}
    for u in range(users):
        ref = reference_beam(dec, u, beam, valid if cbs else None)
        assert [tuple(c) for c in result.codes[u].tolist()] == [c for c, _ in ref]
        assert np.allclose(result.scores[u].numpy(), [s for _, s in ref], atol=1e-5)
        assert result.items[u].tolist() == [item.get(c, -1) for c, _ in ref]
        assert (result.scores[u][:-1] >= result.scores[u][1:]).all()  # sorted by score


def test_unconstrained_search_returns_and_counts_invalid_codes():
    k, n_levels = 4, 3
    codes = np.array([[c0, c1, c2] for c0 in (1, 2, 3) for c1 in range(k) for c2 in range(k)])
    dec = TableDecoder(3, n_levels, k, seed=6, boost={(0, 0): 8.0})  # code 0 first: no item
    trie = PrefixTrie(codes, k)
    plain = beam_search(dec, 3, n_levels, beam=4, catalog=trie)
    assert plain.n_invalid > 0 and plain.n_invalid == int((plain.items < 0).sum())
    assert (plain.codes[plain.items < 0][:, 0] == 0).all()
    scores = beam_scores(plain, len(codes))
    assert np.isfinite(scores).sum() == int((plain.items >= 0).sum())  # invalid: misses
    cbs = beam_search(dec, 3, n_levels, beam=4, trie=trie)
    assert cbs.n_invalid == 0 and (cbs.items >= 0).all()
    assert (cbs.codes[:, :, 0] != 0).all()
    with pytest.raises(ValueError, match="catalog"):
        beam_search(dec, 3, n_levels, beam=4)


def test_decoder_with_more_codes_than_the_trie_uses():
    # the trie infers K = 3 from its codes, the model scores K = 5 per level: codes 3, 4 masked
    codes = np.array([[0, 1], [2, 2], [1, 0]])
    dec = TableDecoder(2, 2, 5, seed=7, boost={(0, 4): 10.0, (1, 3): 10.0})
    result = beam_search(dec, 2, 2, beam=5, trie=PrefixTrie(codes))
    assert result.n_invalid == 0 and (result.items[:, :3] >= 0).all()
    assert (result.items[:, 3:] == -1).all()


def test_beam_scores_puts_joint_log_probs_on_returned_items():
    result = BeamResult(items=torch.tensor([[2, -1, 0], [1, 3, -1]]),
                        scores=torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, float("-inf")]]),
                        codes=torch.zeros(2, 3, 2, dtype=torch.long), n_invalid=1)
    out = beam_scores(result, 5)
    want = np.full((2, 5), -np.inf, dtype=np.float32)
    want[0, 2], want[0, 0], want[1, 1], want[1, 3] = -0.5, -2.0, -0.1, -0.3
    assert out.dtype == np.float32 and np.array_equal(out, want)
