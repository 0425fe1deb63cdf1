"""The `llamacpp` backend on the offline SmolLM2-135M GGUF, against the `hf` backend.

The references are independent of llama.cpp: transformers' float32 model dequantised from the
same GGUF (the `hf` path of group E) for YES/NO logits, next-token distributions, greedy first
tokens and hidden states, and scipy for the rank correlation. The GGUF is Q4_1 and llama.cpp
rounds activations to 8 bits in its matmuls, so the bounds are loose ones, chosen from what was
measured (max |dP| 0.056, Spearman 0.93, KL 0.004-0.008 nats on 48 synthetic prompts).

Tests that need llama-cpp-python skip with a reason where it is not installed
(`pip install 'recbench[llamacpp]'` or `make llama-server`); the install-hint and
backend-choice tests run everywhere.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from typer.testing import CliRunner

import recbench.llm.backends as backends
from recbench.cli.app import app
from recbench.core.errors import ConfigError, RecbenchError
from recbench.data.prepare import load_manifest, prepare
from recbench.models.base import RunContext
from recbench.models.llm.prompts import PromptBuilder, make_style, row_texts
from recbench.models.llm.scoring import BatchScorer, YesNoHead, choose_answer_tokens
from recbench.models.llm.text_ctr import LLMText, LLMTextConfig
from recbench.results.store import ResultStore
from recbench.runner import RunRequest, load_task_data, run

pytestmark = pytest.mark.usefixtures("one_thread")
HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(
    not HAVE_LLAMA_CPP, reason="llama-cpp-python is not installed (pip install "
    "'recbench[llamacpp]' or make llama-server)")


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    prepare("synthetic", size="tiny", seed=0, home=root, show_progress=False)
    return root


@pytest.fixture(scope="module")
def data(home):
    return load_task_data(home, "synthetic", "tiny", "ctr",
                          load_manifest(home, "synthetic", "tiny"), smoke=True)


def make(**kw) -> LLMText:
    return LLMText(LLMTextConfig(**{"backbone": "smollm2-135m", **kw}), RunContext(seed=0))


# ---- everywhere: the install hint and which backend runs what ---------------------------------

def _without(monkeypatch, module: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(backends.importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))


def test_missing_llama_cpp_is_one_line_with_the_install_command(home, monkeypatch):
    _without(monkeypatch, "llama_cpp")
    with pytest.raises(backends.BackendMissingError) as err:
        make(backend="llamacpp")
    message = str(err.value)
    assert "\n" not in message and "pip install 'recbench[llamacpp]'" in message
    result = CliRunner().invoke(app, ["run", "-g", "E", "-m", "smollm2-135m", "--mode",
                                      "zero-shot", "-d", "synthetic", "--size", "tiny",
                                      "--smoke", "--home", str(home), "--set",
                                      "backend=llamacpp"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "recbench[llamacpp]" in result.output


def test_missing_vllm_is_the_install_hint(monkeypatch):
    _without(monkeypatch, "vllm")
    with pytest.raises(backends.BackendMissingError, match=r"pip install 'recbench\[vllm\]'"):
        make(backend="vllm")


def test_an_unknown_backend_is_one_line_naming_the_choices(home):
    result = CliRunner().invoke(app, ["run", "-g", "E", "-m", "smollm2-135m", "-d", "synthetic",
                                      "--size", "tiny", "--smoke", "--home", str(home),
                                      "--set", "backend=llama.cpp"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "backend" in result.output and "llamacpp" in result.output


def test_backend_choice_is_checked_before_any_data_loads(monkeypatch):
    with pytest.raises(ConfigError, match="zero-shot only"):
        make(backend="llamacpp", mode="finetune")
    with pytest.raises(ConfigError, match="has none"):  # no GGUF file behind this alias
        make(backbone="opt-350m", backend="llamacpp")
    with pytest.raises(ConfigError, match="no local weights"):
        make(backbone="gpt-3.5", backend="hf")
    # auto = the catalog's backend; openai serves local weights under their hub id
    assert make().backend == "hf"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    assert make(backbone="gpt-3.5").backend == "openai"
    served = make(backend="openai", base_url="http://127.0.0.1:9/v1")
    assert served.backend == "openai"
    assert served.model_id == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_gguf_path_of_the_offline_alias():
    from recbench.models.llm.catalog import resolve

    entry = resolve("smollm2-135m")
    try:
        path = entry.gguf_path()
    except RecbenchError as err:  # the offline weights package is not installed
        pytest.skip(str(err))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert resolve("opt-350m").gguf_path() is None


# ---- llama.cpp against transformers on the same prompts ---------------------------------------

@pytest.fixture(scope="module")
def pair(data):
    """(llamacpp backend, hf YES/NO scorer, causal LM, prompts) over the same token ids."""
    if not HAVE_LLAMA_CPP:
        pytest.skip("llama-cpp-python is not installed (pip install 'recbench[llamacpp]')")
    from recbench.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig, gguf_tokenizer
    from recbench.models.llm.catalog import resolve
    from recbench.models.llm.text_ctr import cached_backbone

    entry = resolve("smollm2-135m")
    try:
        path = str(entry.gguf_path())
    except RecbenchError as err:
        pytest.skip(str(err))
    tokenizer = gguf_tokenizer(path)
    answer, style = choose_answer_tokens(tokenizer, make_style(entry, tokenizer))
    builder = PromptBuilder(tokenizer, style, max_len=512)
    texts = [t or "" for t in data.items.sort("item_id")["text"].to_list()]
    prompts = builder.build_many(*row_texts(data.test.head(24), texts))
    backend = LlamaCppBackend(LlamaCppConfig(model_path=path, n_ctx=1024),
                              yes_no=(answer.yes_id, answer.no_id))
    model, _ = cached_backbone(entry, "causal", "cpu", None)  # the one group E's hf run uses
    hf = BatchScorer(YesNoHead(model, answer), tokenizer.pad_token_id, 4096, True)
    return backend, hf, model, prompts


@needs_llama_cpp
def test_yes_no_scores_are_close_to_the_hf_backend(pair):
    backend, hf, _, prompts = pair
    assert isinstance(backend, backends.Backend) and backend.name in backends.BACKENDS
    assert len({p.prefix_ids for p in prompts}) > 1  # several users: prefix reuse is exercised
    p_cpp, p_hf = backend.score_yes_no(prompts), hf.probabilities(prompts)
    assert p_cpp.shape == (len(prompts),) and np.all((p_cpp > 0) & (p_cpp < 1))
    assert np.abs(p_cpp - p_hf).max() < 0.1
    assert spearmanr(p_cpp, p_hf).statistic > 0.8
    np.testing.assert_allclose(p_cpp, 1 / (1 + np.exp(-backend.click_logits(prompts))))


@needs_llama_cpp
def test_next_token_distribution_is_close_to_the_hf_backend(pair):
    import llama_cpp

    backend, _, model, prompts = pair
    lm = backend.lm
    for p in prompts[:3]:
        seq = [*p.prefix_ids, *p.suffix_ids]
        lm.reset()
        lm.eval(seq)
        ours = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(lm.ctx, -1),
                                     shape=(lm.n_vocab(),)).astype(np.float64)
        with torch.no_grad():
            ref = model(torch.tensor([seq])).logits[0, -1].double().numpy()
        log_p, log_q = ref - np.logaddexp.reduce(ref), ours - np.logaddexp.reduce(ours)
        assert float((np.exp(log_p) * (log_p - log_q)).sum()) < 0.05  # KL(hf || llama.cpp)
        assert ours.argmax() == ref.argmax()


@needs_llama_cpp
def test_llama_cpp_reads_the_prompt_text_as_the_same_token_ids(pair):
    backend, _, _, prompts = pair
    for p in prompts[:4]:
        ids = backend.lm.tokenize(p.text.encode("utf-8"), add_bos=False, special=True)
        assert ids == [*p.prefix_ids, *p.suffix_ids]


@needs_llama_cpp
def test_prefix_reuse_and_order_do_not_change_scores(pair):
    from recbench.llm.backends.llamacpp import LlamaCppBackend

    backend, _, _, prompts = pair
    prompts = prompts[:8]
    before = backend.stats.tokens_reused
    shared = backend.click_logits(prompts)
    assert backend.stats.tokens_reused > before
    plain = LlamaCppBackend(backend.cfg.model_copy(update={"prefix_reuse": False}),
                            backend.yes_no)
    np.testing.assert_allclose(plain.click_logits(prompts), shared, atol=1e-4)
    assert plain.stats.tokens_reused == 0
    np.testing.assert_allclose(backend.click_logits(prompts[::-1])[::-1], shared, atol=1e-4)
    alone = np.array([backend.click_logits([p])[0] for p in prompts[:3]])
    np.testing.assert_allclose(alone, shared[:3], atol=1e-4)


@needs_llama_cpp
def test_generation_is_deterministic_and_greedy_starts_with_the_hf_argmax(pair):
    backend, _, model, prompts = pair
    texts = [p.text for p in prompts[:2]]
    greedy = backend.generate(texts, max_new_tokens=6)
    assert greedy == backend.generate(texts, max_new_tokens=6) and all(greedy)
    story = ("<|im_start|>user\nTell a short story about a library.<|im_end|>\n"
             "<|im_start|>assistant\n")
    sampled = backend.generate([story], max_new_tokens=24, temperature=1.5, seed=7)
    assert sampled == backend.generate([story], max_new_tokens=24, temperature=1.5, seed=7)
    assert sampled != backend.generate([story], max_new_tokens=24, temperature=1.5, seed=8)
    # the first greedy token is transformers' argmax (on the same ids) where that is clear
    questions = [story, "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
                 "<|im_start|>assistant\n"]
    checked = 0
    for text, out in zip(questions, backend.generate(questions, max_new_tokens=1), strict=True):
        ids = backend.lm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0, -1]
        top2 = torch.topk(ref, 2).values
        if float(top2[0] - top2[1]) > 1.0:
            assert backend.lm.tokenize(out.encode("utf-8"), add_bos=False) == [int(ref.argmax())]
            checked += 1
    assert checked
    with pytest.raises(ConfigError, match="temperature"):
        backend.generate(texts, temperature=-1.0)


@needs_llama_cpp
def test_embeddings_pool_the_hf_last_hidden_states(pair):
    backend, _, model, _ = pair
    texts = ["The Hobbit by J.R.R. Tolkien", "A cookbook of Italian pasta", ""]
    mean, last = backend.encode(texts, "mean"), backend.encode(texts, "last")
    assert mean.shape == last.shape == (3, model.config.hidden_size)
    assert mean.dtype == np.float32 and np.isfinite(mean).all()
    np.testing.assert_array_equal(backend.encode(texts, "mean"), mean)
    for i, text in enumerate(texts):  # one decode call for several texts = one call each
        np.testing.assert_allclose(backend.encode([text], "mean")[0], mean[i], atol=1e-4)
        np.testing.assert_allclose(backend.encode([text], "last")[0], last[i], atol=1e-4)
    for i, text in enumerate(texts[:2]):
        ids = backend.embedder("mean").tokenize(text.encode("utf-8"))
        with torch.no_grad():
            hidden = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
        for ours, ref in ((mean[i], hidden.mean(0)), (last[i], hidden[-1])):
            cos = ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref))
            assert cos > 0.98, cos
    with pytest.raises(ConfigError, match="pooling"):
        backend.encode(texts, "max")


# ---- group E end to end -----------------------------------------------------------------------

@needs_llama_cpp
def test_group_e_with_backend_llamacpp_writes_a_record_that_says_so(home, data):
    result = CliRunner().invoke(app, ["run", "-g", "E", "-m", "smollm2-135m", "--mode",
                                      "zero-shot", "-d", "synthetic", "--size", "tiny",
                                      "--smoke", "--home", str(home), "--set",
                                      "backend=llamacpp", "--set", "latency_samples=3",
                                      "--set", "max_history=5"])  # short prompts: a fast test
    assert result.exit_code == 0, result.output
    outcome = run(RunRequest(group="E", model="smollm2-135m", datasets=["synthetic"],
                             size="tiny", smoke=True, home=home, flags={"mode": "zero-shot"},
                             sets={"backend": "llamacpp", "latency_samples": 3,
                                   "max_history": 5}))[0]
    assert outcome.status == "skipped"  # the CLI's run: the same key, already finished
    cpp = outcome.record
    assert cpp.config["model"]["backend"] == "llamacpp"
    assert cpp.config["model"]["llamacpp_threads"] == 1
    notes = "\n".join(cpp.notes)
    assert "backend llamacpp: llama-cpp-python" in notes and "1 thread(s)" in notes
    assert "YES = token 10539 'Yes'" in notes  # the hf path's answer tokens
    assert cpp.latency.n == 3
    # the same rows scored by the hf path of group E (its model, prompts and scorer)
    ref = make(max_history=5)
    ref._setup(data)
    assert "backend hf: transformers" in "\n".join(ref.notes())
    assert (ref.model_id, ref.model_revision) == (cpp.model_id, cpp.model_revision)
    ours = ResultStore(home).predictions(cpp).head(16)
    rows = data.test.head(16)
    assert ours["item_id"].to_list() == rows["item_id"].to_list()
    assert np.abs(ours["score"].to_numpy() - ref.predict_ctr(rows)).max() < 0.1
