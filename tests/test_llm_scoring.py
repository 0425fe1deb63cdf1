"""YES/NO scoring with the real SmolLM2-135M-Instruct weights: the answer tokens, Eq. 6, batching
and prefix sharing (shared == unshared), plus the encoder [CLS] head on MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbench.core.errors import RecbenchError
from recbench.models.llm.catalog import resolve
from recbench.models.llm.prompts import PromptBuilder, make_style
from recbench.models.llm.scoring import (
    BatchScorer,
    ClsHead,
    YesNoHead,
    choose_answer_tokens,
    pad_right,
    token_batches,
)
from recbench.models.llm.text_ctr import cached_backbone

HISTORIES = [["Pride and Prejudice", "The Hobbit", "Dune", "Emma"], ["The Road"],
             ["Harry Potter and the Philosopher's Stone", "Matilda"]]
CANDIDATES = ["Persuasion", "The Lord of the Rings: The Return of the King", "Neuromancer"]


def _load(alias: str, kind: str):
    try:
        return cached_backbone(resolve(alias), kind, "cpu", None)
    except RecbenchError as err:  # the offline weights package is not installed
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def smol():
    return _load("smollm2-135m", "causal")


@pytest.fixture(scope="module")
def chat(smol):
    model, tok = smol
    answer, style = choose_answer_tokens(tok, make_style(resolve("smollm2-135m"), tok))
    return model, tok, answer, PromptBuilder(tok, style, max_len=1024)


def test_answer_tokens_follow_the_prompt(smol):
    _, tok = smol
    entry = resolve("smollm2-135m")
    # chat template: the answer opens the assistant turn, no leading space
    answer, style = choose_answer_tokens(tok, make_style(entry, tok, "auto"))
    assert (answer.yes_id, answer.no_id) == (10539, 5230)
    assert tok.decode([answer.yes_id]) == "Yes" and tok.decode([answer.no_id]) == "No"
    assert not style.strip_trailing_space
    # plain text: ": " + "Yes" tokenises as ":" " Yes", so the space moves into the answer
    answer, style = choose_answer_tokens(tok, make_style(entry, tok, "off"))
    assert tok.decode([answer.yes_id]) == " Yes" and tok.decode([answer.no_id]) == " No"
    assert style.strip_trailing_space and "whitespace" in answer.how
    suffix = PromptBuilder(tok, style).build(["a"], "b").suffix
    assert suffix.endswith("Answer (Yes/No):")
    assert "token 9230" in answer.describe() and "Eq. 6" in answer.describe()


def _prompts(builder):
    return builder.build_many([h for h in HISTORIES for _ in CANDIDATES],
                              [c for _ in HISTORIES for c in CANDIDATES])


def test_p_yes_is_the_softmax_of_the_two_logits(chat):
    model, tok, answer, builder = chat
    prompts = _prompts(builder)[::3]  # one per user
    scorer = BatchScorer(YesNoHead(model, answer), tok.pad_token_id, batch_tokens=4096)
    got = scorer.probabilities(prompts, share_prefix=False)
    with torch.inference_mode():
        for p, g in zip(prompts, got, strict=True):
            logits = model(torch.tensor([p.prefix_ids + p.suffix_ids])).logits[0, -1]
            want = torch.softmax(logits[[answer.yes_id, answer.no_id]], dim=0)[0].item()
            assert abs(g - want) < 1e-5
    assert scorer.stats.model_calls == 1  # one padded batch, no per-sample loop


def test_prefix_sharing_equals_unshared(chat):
    model, tok, answer, builder = chat
    prompts = _prompts(builder)
    assert len({p.prefix_ids for p in prompts}) == len(HISTORIES)
    # a small budget forces several prefix chunks and candidate sub-batches
    scorer = BatchScorer(YesNoHead(model, answer), tok.pad_token_id, batch_tokens=400)
    unshared = scorer.logits(prompts, share_prefix=False)
    calls, run = scorer.stats.model_calls, scorer.stats.tokens_run
    shared = scorer.logits(prompts, share_prefix=True)
    np.testing.assert_allclose(shared, unshared, atol=1e-4)
    assert scorer.stats.tokens_run - run < 0.6 * run  # each prefix ran once, not 3 times
    assert scorer.stats.model_calls - calls > 2 and scorer.stats.tokens_saved > 0
    # a single row (the latency protocol) takes the one-pass path
    np.testing.assert_allclose(scorer.logits(prompts[:1]), unshared[:1], atol=1e-4)


def test_token_batches_respect_the_budget():
    lengths = [5, 50, 7, 30, 30, 8, 100]
    batches = token_batches(lengths, budget=64)
    seen = np.sort(np.concatenate(batches))
    assert seen.tolist() == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width <= 64
    assert [len(b) for b in token_batches([3, 3, 3], budget=6, extra=[0, 0, 0])] == [2, 1]


def test_pad_right():
    ids, mask = pad_right([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_encoder_cls_head_is_batch_invariant():
    model, tok = _load("minilm-l6", "encoder")
    entry = resolve("minilm-l6")
    style = make_style(entry, tok, encoder=True)
    builder = PromptBuilder(tok, style, max_len=256)
    prompts = _prompts(builder)
    assert prompts[0].prefix_ids[0] == tok.cls_token_id
    assert prompts[0].suffix_ids[-1] == tok.sep_token_id
    torch.manual_seed(0)
    net = ClsHead(model, model.config.hidden_size).eval()
    scorer = BatchScorer(net, tok.pad_token_id, batch_tokens=512, share_prefix=True)
    assert not scorer.share_prefix  # bidirectional attention: no prefix cache
    batched = scorer.probabilities(prompts)
    single = np.concatenate([scorer.probabilities([p]) for p in prompts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert batched.shape == (len(prompts),) and ((batched > 0) & (batched < 1)).all()
