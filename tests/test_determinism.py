"""One key, one result (issue 13, classes 7-10): settings out of range fail before any data
loads; training runs at a pinned, recorded thread count with deterministic kernels, so two
runs of one key give identical numbers; and a run interrupted after epoch k and resumed ends
with the metrics and predictions of the run that was never interrupted."""

from __future__ import annotations

import types
import typing

import pytest
from annotated_types import Ge, Gt

torch = pytest.importorskip("torch")

from recbench.core.config import EvalConfig  # noqa: E402
from recbench.core.errors import ConfigError  # noqa: E402
from recbench.core.hardware import pin_threads  # noqa: E402
from recbench.models.registry import MODELS  # noqa: E402
from recbench.results.store import ResultStore  # noqa: E402
from recbench.runner import RunRequest, run  # noqa: E402
from recbench.training import loop  # noqa: E402

# few epochs, no early stop, a short latency pass: the runs below take seconds
QUICK = {"epochs": 4, "patience": 10, "latency_samples": 5, "latency_warmup": 1}


@pytest.fixture(autouse=True)
def _restore_threads():
    """The runner pins the process's threads (that is the point); put them back after."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    threadpool_limits(limits=None)


def request(home, group="A", model="DNN", **kw) -> RunRequest:
    sets = {**QUICK, **kw.pop("sets", {})}
    return RunRequest(group=group, model=model, datasets=["synthetic"], size="tiny", home=home,
                      sets=sets, **kw)


def outcome(home, **kw):
    (result,) = run(request(home, **kw))
    return result.record, ResultStore(home).predictions(result.record)


# --- class 7: bounds and closed choices on every setting, before data loads -----------------

def _unbounded(tp, meta=()) -> list[str]:
    """The int/float types inside annotation `tp` that carry no lower bound."""
    if typing.get_origin(tp) is typing.Annotated:
        base, *extra = typing.get_args(tp)
        return _unbounded(base, (*meta, *extra))
    if tp in (int, float):
        flat = [x for m in meta for x in (getattr(m, "metadata", None) or [m])]
        return [] if any(isinstance(m, (Ge, Gt)) for m in flat) else [tp.__name__]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [x for a in typing.get_args(tp) for x in _unbounded(a, meta)]
    if typing.get_origin(tp) in (tuple, list):
        return [x for a in typing.get_args(tp) if a is not Ellipsis for x in _unbounded(a)]
    return []


def test_every_numeric_setting_of_every_registered_model_is_bounded():
    configs = {"eval": EvalConfig, **{e.name: MODELS.load(e.name).Config for e in MODELS}}
    missing = []
    for name, cls in configs.items():
        checked = {f for d in cls.__pydantic_decorators__.field_validators.values()
                   for f in d.info.fields}  # a field validator states its own range
        missing += [f"{name}.{field}" for field, info in cls.model_fields.items()
                    if field not in checked and _unbounded(info.annotation, info.metadata)]
    assert not missing, f"numeric settings without a declared range: {missing}"


@pytest.mark.parametrize(("kw", "needle"), [
    ({"sets": {"epochs": -1}}, "'epochs': Input should be greater than or equal to 1 (got -1)"),
    ({"sets": {"latency_samples": 0}}, "'latency_samples'"),
    ({"sets": {"train_threads": -2}}, "'train_threads'"),
    ({"sets": {"latency_threads": 0}}, "'latency_threads'"),
    ({"sets": {"dropout": 1.5}}, "'dropout': Input should be less than 1"),
    ({"sets": {"lr": 0}}, "'lr': Input should be greater than 0"),
    ({"sets": {"hidden": [64, -8]}}, "'hidden.1'"),
    ({"sets": {"activation": "swish"}}, "'activation': Input should be 'relu', 'gelu'"),
    ({"group": "G", "model": "SASRec", "sets": {"heads": 3}},
     "settings of SASRecConfig: dim 64 is not divisible by heads 3"),
    ({"model": "AutoInt", "sets": {"attention_dim": 30, "heads": 4}}, "attention_dim 30"),
    ({"device": "tpu"}, "--device 'tpu': choose cpu or cuda"),
    ({"device": "cuda:1"}, "choose the GPU with CUDA_VISIBLE_DEVICES"),
    ({"seed": -1}, "--seed -1"),
])
def test_an_invalid_setting_fails_in_one_line_before_any_data_loads(tmp_path, kw, needle):
    with pytest.raises(ConfigError) as err:
        run(request(tmp_path, **kw))
    message = str(err.value)
    assert needle in message and "\n" not in message
    # synthetic is prepared on demand by `run`: nothing was, so nothing was loaded or trained
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "results").exists()


# --- classes 9 and 10: a pinned thread count, deterministic kernels, recorded ---------------

def test_two_runs_of_one_key_give_identical_numbers(tmp_path):
    # a machine whose default is several threads: DCNv2's GAUC moved in the third decimal
    # from run to run at torch's default thread count before training was pinned
    torch.set_num_threads(4)
    first, first_pred = outcome(tmp_path, model="DCNv2")
    torch.set_num_threads(4)
    second, second_pred = outcome(tmp_path, model="DCNv2", overwrite="always")
    assert second.key == first.key
    assert second.metrics == first.metrics
    assert second_pred.equals(first_pred)
    assert first.config["eval"]["train_threads"] == 1


def test_training_runs_at_the_pinned_thread_count_and_the_count_is_in_the_key(
        tmp_path, monkeypatch):
    from threadpoolctl import threadpool_info

    seen = []
    inner = loop._train

    def spy(*args, **kwargs):
        seen.append((torch.get_num_threads(), {p["num_threads"] for p in threadpool_info()},
                     torch.are_deterministic_algorithms_enabled()))
        return inner(*args, **kwargs)

    monkeypatch.setattr(loop, "_train", spy)
    one, _ = outcome(tmp_path, sets={"epochs": 1})
    two, _ = outcome(tmp_path, sets={"epochs": 1, "train_threads": 2})
    assert seen == [(1, {1}, True), (2, {2}, True)]
    assert (one.config["eval"]["train_threads"], two.config["eval"]["train_threads"]) == (1, 2)
    assert one.key != two.key and one.config_hash != two.config_hash
    assert not torch.are_deterministic_algorithms_enabled()  # restored after training


def test_pin_threads_refuses_a_count_below_one():
    with pytest.raises(ValueError, match="integer >= 1"):
        pin_threads(0)


# --- class 8: a resumed run is the uninterrupted run ----------------------------------------

@pytest.mark.parametrize(("group", "model"), [("A", "DNN"), ("G", "SASRec")])
def test_a_run_interrupted_after_epoch_k_resumes_to_the_uninterrupted_result(
        tmp_path, monkeypatch, group, model):
    plain, plain_pred = outcome(tmp_path / "plain", group=group, model=model)

    save = loop._save

    def save_then_interrupt(path, state):
        save(path, state)
        if state["epoch"] == 1:  # Ctrl-C right after the second epoch's checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(request(tmp_path / "resumed", group=group, model=model))
    monkeypatch.setattr(loop, "_save", save)
    torch.rand(3)  # the resuming process has drawn other random numbers first
    resumed, resumed_pred = outcome(tmp_path / "resumed", group=group, model=model)

    assert resumed.key == plain.key
    assert resumed.resumed_from_epoch == 2 and plain.resumed_from_epoch is None
    assert resumed.metrics == plain.metrics
    assert resumed_pred.equals(plain_pred)


# --- class 11: benchmarks/external_compare.py compares like with like ------------------------

def _external_compare():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "external_compare.py"
    spec = importlib.util.spec_from_file_location("external_compare", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_external_compare_trains_recbench_here_and_selects_its_record_by_config_hash(tmp_path):
    import argparse

    from recbench.models.ctr.base import auto_batch_size
    from recbench.models.torch_base import seq_batch_size

    ec = _external_compare()
    args = argparse.Namespace(home=tmp_path, dataset="synthetic", size="tiny", threads=1,
                              latency_samples=5, seq_epochs=None, ctr_epochs=1, patience=None)
    run(request(tmp_path, model="DCNv2", sets={"epochs": 1}))  # prepares the split
    split = ec.load_split(tmp_path, "synthetic", "tiny")
    config = ec.train_recbench(args, "A", "DCNv2", "ctr")
    assert config["eval"]["train_threads"] == 1 and config["eval"]["latency_threads"] == 1
    # a newer record of the same model with other settings must not be the one compared
    newer, _ = outcome(tmp_path, model="DCNv2", sets={"epochs": 2})
    assert newer.config_hash != config["config_hash"]
    ours = ec.recbench_result(tmp_path, split, "synthetic", "A", "DCNv2", "ctr", ec.CTR_KEYS,
                              config["config_hash"])
    (chosen,) = [r for r in ResultStore(tmp_path).records()
                 if r.config_hash == config["config_hash"]]
    assert ours.notes[0].startswith(f"record {chosen.key} ")
    assert ours.metrics == {k: chosen.metrics["ctr"][k] for k in ec.CTR_KEYS}
    assert ours.train_seconds == chosen.train_seconds

    # the peers' batch sizes are the ones recbench trained at on this split, not constants
    ctr = ec.ctr_settings(config, split)
    assert ctr["batch_size"] == auto_batch_size(split.ctr["train"].height)
    assert f"batch size {ctr['batch_size']}" in " ".join(chosen.notes)
    seq_config = {"model": {"batch_size": 256, "lr": 1e-3, "dim": 64, "n_layers": 3,
                            "heads": 2, "dropout": 0.2, "epochs": 200, "patience": 10}}
    seq = ec.seq_settings(seq_config, split)
    assert seq["batch_size"] == seq_batch_size(split.seq["train"].height, 256) < 256


def test_latency_refuses_zero_samples_for_any_caller():
    import polars as pl

    from recbench.latency import measure

    with pytest.raises(ValueError, match="n >= 1"):
        measure(lambda row: None, pl.DataFrame({"x": [1, 2]}), n=0)
