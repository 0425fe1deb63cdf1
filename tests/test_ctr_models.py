"""Deep CTR models (groups A, B, C): a smoke run of every registered model through the runner,
the registered variants' fixed representation, the fast scoring path, checkpoint/resume, and
(slow) quality on synthetic data."""

from __future__ import annotations

import math
import subprocess
import sys
import time
import types

import numpy as np
import pytest

pytest.importorskip("torch")

from recbench.core.errors import ConfigError  # noqa: E402
from recbench.models.ctr import REGISTRY  # noqa: E402
from recbench.models.registry import MODELS  # noqa: E402
from recbench.runner import RunRequest, run  # noqa: E402

CTR_MODELS = [(groups[0], name) for name, _target, groups, _tasks, _desc in REGISTRY]
NINE = ["DNN", "PNN", "DeepFM", "DCN", "DCNv2", "MaskNet", "FinalMLP", "AutoInt", "GDCN"]


def _fake_item_vectors(data, **_kwargs) -> np.ndarray:
    """Stands in for recbench.items.embeddings.item_vectors (no encoder download in tests)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((data.n_items, 24)).astype(np.float32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: intra-op threads only add contention (10x slower on a busy 2-core box)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fake_encoder(monkeypatch):
    module = types.ModuleType("recbench.items.embeddings")
    module.item_vectors = _fake_item_vectors
    monkeypatch.setitem(sys.modules, "recbench.items.embeddings", module)


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One home for the module, so synthetic/tiny is prepared once."""
    return tmp_path_factory.mktemp("ctr_home")


def _run(home, group, model, size="tiny", smoke=True, **sets):
    return run(RunRequest(group=group, model=model, datasets=["synthetic"], size=size,
                          smoke=smoke, home=home, sets=sets))


def test_registry_covers_nine_models_in_every_group():
    names = {name for _g, name in CTR_MODELS}
    assert len(CTR_MODELS) == 27
    for base in NINE:
        assert {base, f"{base}_text", f"{base}_emb"} <= names
    group_b = [name for g, name in CTR_MODELS if g == "B"]
    assert group_b[:4] == ["DNN_text", "DCNv2_text", "AutoInt_text", "GDCN_text"]


def test_registry_imports_no_torch():
    code = "import sys, recbench.models.ctr; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("group", "model"), CTR_MODELS, ids=[m for _g, m in CTR_MODELS])
def test_smoke_every_registered_model(shared_home, group, model):
    (outcome,) = _run(shared_home, group, model)
    record = outcome.record
    assert outcome.status == "done" and record.task == "ctr"
    assert record.model_id == model  # the paper's name: DNN, DNN_text, DNN_emb
    assert all(math.isfinite(v) for v in record.metrics["ctr"].values())
    assert 0.0 <= record.metrics["ctr"]["gauc"] <= 1.0
    assert record.latency.mean_ms > 0


def test_variants_fix_their_representation():
    text_cls, emb_cls = MODELS.load("DCNv2_text"), MODELS.load("GDCN_emb")
    assert text_cls.Config().items == "text"
    assert emb_cls.Config().items == "embedding" and emb_cls.Config().encoder == "minilm-l6"
    assert MODELS.load("DNN").Config().items == "id"
    assert issubclass(text_cls, MODELS.load("DCNv2"))


def test_variant_rejects_another_representation(shared_home):
    with pytest.raises(ConfigError, match="items"):
        _run(shared_home, "B", "DNN_text", items="id")


@pytest.mark.parametrize("model_name", [*NINE, "AutoInt_text"])
def test_fast_scoring_path_matches_the_network(shared_home, model_name):
    """predict_ctr (cached item vectors, batch norm folded, one row through the exported
    ONNX Runtime path) scores exactly like the training network."""
    from recbench.data.prepare import load_manifest
    from recbench.models.base import RunContext
    from recbench.runner import load_task_data

    _run(shared_home, "B", "AutoInt_text")  # makes sure synthetic/tiny is prepared
    data = load_task_data(shared_home, "synthetic", "tiny", "ctr",
                          load_manifest(shared_home, "synthetic", "tiny"), smoke=True)
    cls = MODELS.load(model_name)
    model = cls(cls.Config(epochs=1, max_steps_per_epoch=2), RunContext(seed=0))
    model.fit(data)
    rows = data.test.head(16)
    reference = model._predict(model.net, rows)
    assert np.allclose(model.predict_ctr(rows), reference, atol=1e-5)
    one = np.concatenate([model.predict_ctr(rows.slice(i, 1)) for i in range(rows.height)])
    assert np.allclose(one, reference, atol=1e-5)
    assert model.score_one_kind.startswith("ONNX Runtime")  # no silent fallback to PyTorch


def test_batch_one_fallback_and_empty_history(shared_home, monkeypatch):
    """Without onnxruntime the single-row path runs in PyTorch (TorchScript Φ) and says so; both
    paths score an empty history (u = 0, as the batch path's embedding bag) like the network."""
    import polars as pl

    from recbench.data.prepare import load_manifest
    from recbench.models.base import RunContext
    from recbench.models.ctr.batch_one import batch_one_scorer
    from recbench.runner import load_task_data

    _run(shared_home, "B", "AutoInt_text")
    data = load_task_data(shared_home, "synthetic", "tiny", "ctr",
                          load_manifest(shared_home, "synthetic", "tiny"), smoke=True)
    cls = MODELS.load("DCNv2")
    model = cls(cls.Config(epochs=1, max_steps_per_epoch=2), RunContext(seed=0))
    model.fit(data)
    rows = data.test.head(4).with_columns(
        pl.Series("history", [[], None, [3], [1, 2, 2]], dtype=data.test["history"].dtype))
    reference = model._predict(model.net, rows)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails: the fallback
    fallback, kind = batch_one_scorer(model.item_vectors, model.scorer)
    assert kind.startswith("TorchScript trace of Φ (ONNX Runtime unavailable")
    for i in range(rows.height):
        history = rows["history"][i]
        ids = (np.asarray(history.to_list(), dtype=np.int64) + 1 if history is not None
               else np.zeros(0, dtype=np.int64))
        item = int(rows["item_id"][i]) + 1
        assert np.allclose(model.score_one(ids, item), reference[i], atol=1e-5)  # ONNX Runtime
        assert np.allclose(fallback(ids, item), reference[i], atol=1e-5)


def test_checkpoint_resume_after_interruption(shared_home, monkeypatch):
    """Kill the run in epoch 2's validation; the rerun resumes from epoch 1's checkpoint."""
    import recbench.metrics as metrics

    real_gauc, calls = metrics.gauc, {"n": 0}

    def interrupted_gauc(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_gauc(*args, **kwargs)

    sets = {"epochs": 3, "patience": 10, "max_steps_per_epoch": 2}
    monkeypatch.setattr(metrics, "gauc", interrupted_gauc)
    with pytest.raises(KeyboardInterrupt):
        _run(shared_home, "A", "DCNv2", smoke=False, **sets)
    (ckpt,) = shared_home.glob("results/**/*.work/checkpoint.pt")
    import torch

    (before,) = torch.load(ckpt, weights_only=False)["history"]  # epoch 1, timed
    monkeypatch.setattr(metrics, "gauc", real_gauc)

    t0 = time.perf_counter()
    (outcome,) = _run(shared_home, "A", "DCNv2", smoke=False, **sets)
    rerun = time.perf_counter() - t0
    training = next(n for n in outcome.record.notes if n.startswith("training"))
    assert "'resumed_from_epoch': 1" in training and "'epochs_run': 3" in training
    assert f"'seconds_before_resume': {round(before['seconds'], 1)}" in training
    # the record's training time includes the epoch done before the interruption
    assert outcome.record.train_seconds >= before["seconds"] > 0
    assert outcome.record.train_seconds <= rerun + before["seconds"]
    assert not list(shared_home.glob("results/**/*.work"))  # cleaned up after success


@pytest.mark.slow
def test_quality_on_synthetic_small(tmp_path):
    """ID and text DNNs beat MostPopular; text, which reveals the genre, is at least as good."""
    def gauc(group, model):
        (outcome,) = run(RunRequest(group=group, model=model, datasets=["synthetic"],
                                    size="small", home=tmp_path, task="ctr"))
        return outcome.record.metrics["ctr"]["gauc"]

    popular = gauc("baseline", "MostPopular")
    dnn, dnn_text = gauc("A", "DNN"), gauc("B", "DNN_text")
    assert dnn > popular + 0.02
    assert dnn_text >= dnn


def test_ctr_net_gathers_distinct_items_exactly():
    """CTRNet represents each distinct item of a batch once; output and gradients must equal
    the direct per-slot computation of Eq. 2-3 (a text table: mean of word vectors per slot)."""
    import torch

    from recbench.items import TextTable
    from recbench.models.torch_base import CTRNet

    texts = ["red shoe", "blue shoe", "red hat big", "green", "blue hat"]
    table = TextTable(texts, known=np.arange(5), dim=8)
    phi = torch.nn.Bilinear(8, 8, 1)
    net = CTRNet(table, phi)
    history = torch.tensor([[1, 2, 2, 0], [3, 0, 0, 0], [5, 1, 4, 2]])
    item = torch.tensor([2, 3, 1])

    out = net(history, item)
    out.sum().backward()
    grad = table.embedding.weight.grad.clone()
    table.embedding.weight.grad = None

    hist = table(history)  # per slot, no sharing
    mask = (history != 0).unsqueeze(-1).float()
    user = (hist * mask).sum(1) / mask.sum(1)
    expected = phi(user, table(item)).reshape(-1)
    expected.sum().backward()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, table.embedding.weight.grad)
