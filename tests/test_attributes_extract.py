"""Aspect score extraction: the rule-based parser and the expected extractor (paper 003)."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.items.attributes.extract import (
    FALLBACK,
    RatingTokens,
    expected_from_ids,
    parse_replies,
    parse_reply,
    rating_distribution,
)

NAMES = ["story complexity", "pace", "movie length (duration)"]


def test_parser_well_formed_reply():
    reply = "story complexity: 7\npace: 3\nmovie length (duration): 10"
    assert parse_reply(reply, NAMES).tolist() == [7.0, 3.0, 10.0]


def test_parser_missing_aspect_is_nan_and_filled_by_the_aspect_mean():
    replies = ["story complexity: 7\npace: 3\nmovie length (duration): 4",
               "story complexity: 5\nmovie length (duration): 8",  # pace missing
               "pace: 9\nmovie length (duration): 6"]  # story complexity missing
    one = parse_reply(replies[1], NAMES)
    assert one[0] == 5 and np.isnan(one[1]) and one[2] == 8
    scores, stats = parse_replies(replies, NAMES)
    assert scores[1, 1] == pytest.approx((3 + 9) / 2)  # mean where it parsed
    assert scores[2, 0] == pytest.approx((7 + 5) / 2)
    assert stats.missing == 2 and stats.replies == 3
    assert stats.failure_rate == pytest.approx(2 / 9)


def test_parser_clamps_out_of_range_values():
    scores, stats = parse_replies(["story complexity: 0\npace: 15\nmovie length (duration): 10"],
                                  NAMES)
    assert scores[0].tolist() == [1.0, 10.0, 10.0]
    assert stats.clamped == 2 and stats.missing == 0


def test_parser_extra_text_and_malformed_lines():
    reply = ("Sure! Here is my review.\n  story complexity: 6  \npace: about 4\n"
             "Story complexity: 2\nmovie length (duration): 7 (long)\npace: 5\n")
    out = parse_reply(reply, NAMES)
    # surrounding whitespace is stripped; "about 4" and "7 (long)" do not match the rule; the
    # first matching line wins; the aspect name is case-sensitive
    assert out[0] == 6 and out[1] == 5 and np.isnan(out[2])


def test_parser_nothing_parses_uses_the_scale_middle():
    scores, stats = parse_replies(["I cannot rate this.", "no"], NAMES)
    assert np.all(scores == FALLBACK) and stats.unparsed_replies == 2
    assert stats.failure_rate == 1.0


def test_rating_distribution_splits_one_into_one_and_ten():
    q = np.array([0.2, 0.1, 0, 0, 0, 0, 0, 0, 0.1])  # digits 1..9; Z = 0.4
    p, z = rating_distribution(q, np.array(0.25))
    assert z == pytest.approx(0.4)
    assert p.sum() == pytest.approx(1.0)
    assert p[0] == pytest.approx(0.2 * 0.75 / 0.4) and p[9] == pytest.approx(0.2 * 0.25 / 0.4)
    assert p[1] == pytest.approx(0.25) and p[8] == pytest.approx(0.25)


def _tiny_llama(vocab: int = 40, seed: int = 0):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, max_position_embeddings=256)
    model = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        # embeddings dominate the residual stream (the layers' weights stay small) and the
        # output layer is the embedding matrix: a position's likeliest next token is close to
        # its input token, so each aspect's last piece token below can point at a rating
        emb = model.model.embed_tokens.weight
        emb.normal_(0, 1.0)
        for piece_end, digit in ((22, 1), (23, 5), (24, 3), (25, 8)):
            emb[piece_end] = 3 * emb[digit]
        model.lm_head.weight.copy_(emb)
    return model


def _manual(model, shared, row, pieces, rating: RatingTokens):
    """Expected scores by full forwards over the explicit sequence (no cache, no batching)."""
    import torch

    seq = list(shared) + list(row)
    out, best = [], []
    for piece in pieces:
        seq = seq + list(piece)
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([seq])).logits[0, -1].double(), -1)
            probe = torch.softmax(model(torch.tensor([seq + [rating.digits[0]]])).logits[0, -1]
                                  .double(), -1)
        q = probs[list(rating.digits)].numpy()
        r = float(probe[rating.zero])
        p = np.array([q[0] * (1 - r), *q[1:], q[0] * r]) / q.sum()
        out.append(float(p @ np.arange(1, 11)))
        k = int(p.argmax()) + 1
        best.append(k)
        seq = seq + rating.rating_ids(k)
    return out, best


def test_expected_extractor_equals_a_manual_softmax_expectation():
    model = _tiny_llama()
    rating = RatingTokens(digits=tuple(range(1, 10)), zero=10)
    rng = np.random.default_rng(3)
    shared = [11, 12, 13, 14, 15]
    rows = [rng.integers(16, 40, size=n).tolist() for n in (3, 7, 1, 5, 4)]  # ragged
    pieces = [[20, 21, 22], [30, 21, 23], [31, 32, 21, 24], [33, 25]]
    got = expected_from_ids(model, shared, rows, pieces, rating, batch_size=3)
    argmaxes = set()
    for i, row in enumerate(rows):
        want, best = _manual(model, shared, row, pieces, rating)
        np.testing.assert_allclose(got.expected[i], want, rtol=0, atol=1e-4)
        assert got.argmax[i].tolist() == best
        argmaxes.update(best)
    assert np.all((got.expected >= 1) & (got.expected <= 10))
    # the masked-probe path (ratings 2-9) and a kept probe (1 or 10) are both exercised
    assert argmaxes - {1, 10} and argmaxes & {1, 10}, argmaxes
