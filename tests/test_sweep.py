"""`recbench sweep`: grids, the local executor under a SIGKILL, exactly-once records, status."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from recbench.core.errors import ConfigError
from recbench.distributed.executors import Events, LocalExecutor, make_executor, require
from recbench.distributed.grid import expand, grid_from_dict, resources_for
from recbench.distributed.sweep import (
    SweepEvents,
    plan_sweep,
    read_attempts,
    run_sweep,
    sweep_status,
)
from recbench.distributed.work import pin_threads
from recbench.results.store import ResultStore

# a fast real model that checkpoints every epoch: GRU4Rec on the synthetic tiny set
GRU = {"epochs": 8, "patience": 20, "dim": 16, "latency_samples": 10, "latency_warmup": 2}


def grid(**kw):
    base = {"name": "t", "groups": ["G"], "models": ["GRU4Rec"], "datasets": ["synthetic"],
            "seeds": [0], "size": "tiny", "settings": GRU}
    base.update(kw)
    return grid_from_dict(base)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-home")
    # prepared once by the driver's plan (workers never race to prepare)
    plan_sweep(expand(grid(), home=root), "warm", root, "local")
    return root


# ----------------------------------------------------------------------------- grids

def test_grid_is_the_product_and_pairs_models_with_their_groups(home):
    g = grid(groups=["G", "baseline"], models=["GRU4Rec", "MostPopular", "SKNN"],
             seeds=[0, 1], vary={"latency_samples": [10, 20]}, settings={})
    cells = expand(g, home=home)
    pairs = {(c.request.group, c.request.model) for c in cells}
    assert pairs == {("G", "GRU4Rec"), ("G", "SKNN"), ("baseline", "MostPopular")}
    assert len(cells) == 3 * 2 * 2  # pairs x seeds x vary
    assert {c.request.sets["latency_samples"] for c in cells} == {10, 20}
    # planned into one key per (dataset, task): MostPopular covers ctr and seq on synthetic
    plan = plan_sweep(cells, "t", home, "local")
    assert len(plan.all) == 2 * 2 * 2 + 1 * 2 * 2 * 2
    assert len({s.key for s in plan.all}) == len(plan.all)
    # a grid with `tasks` gives cells that plan only those tasks
    only_seq = plan_sweep(expand(grid(groups=["G", "baseline"],
                                      models=["GRU4Rec", "MostPopular", "SKNN"], seeds=[0, 1],
                                      vary={"latency_samples": [10, 20]}, settings={},
                                      tasks=["seq"]), home=home), "t", home, "local")
    assert {s.request["task"] for s in only_seq.all} == {"seq"} and len(only_seq.all) == 12


def test_resources_first_matching_pattern_then_default():
    g = grid(resources={"default": {"cpus": 2}, "SASRec*": {"gpus": 0.5},
                        "G/GRU*": {"cpus": 3, "gpus": 1}})
    assert resources_for(g.spec, "G", "SASRec-3L").gpus == 0.5
    assert resources_for(g.spec, "G", "GRU4Rec").cpus == 3
    assert resources_for(g.spec, "G", "SKNN").cpus == 2


@pytest.mark.parametrize("bad, where", [
    ({"modles": ["x"]}, "modles"),
    ({"resources": {"default": {"gpus": 1.5}}}, "gpus"),
    ({"seeds": []}, "seeds"),
    ({"datasets": ["../etc"]}, "dataset name"),
])
def test_bad_grids_fail_naming_the_field(bad, where):
    with pytest.raises(ConfigError, match=where):
        grid(**bad)


def test_a_model_in_none_of_the_groups_is_an_error(home):
    with pytest.raises(ConfigError, match="in none of the groups"):
        expand(grid(models=["DCNv2"]), home=home)


def test_missing_optional_engine_gives_the_install_hint():
    from recbench.distributed import executors

    executors.EXTRAS["recbench_no_such_engine"] = "tune"
    try:
        with pytest.raises(ConfigError, match=r"pip install 'recbench\[tune\]'"):
            require("recbench_no_such_engine", "recbench tune")
    finally:
        del executors.EXTRAS["recbench_no_such_engine"]
    with pytest.raises(ConfigError, match="--executor"):
        make_executor("dask")


def test_pin_threads_sets_every_thread_knob(monkeypatch):
    import torch

    before = torch.get_num_threads()
    from recbench.distributed.work import THREAD_VARS

    for var in THREAD_VARS:  # restored after the test
        monkeypatch.delenv(var, raising=False)
    try:
        pin_threads(1)
        assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- local executor

class KillOneMidRun(threading.Thread):
    """SIGKILL the first worker seen with an epoch checkpoint on disk (mid-training)."""

    def __init__(self, root: Path):
        super().__init__(daemon=True)
        self.root, self.killed_key, self.stop = root, None, threading.Event()

    def run(self):
        while not self.stop.is_set() and self.killed_key is None:
            for ckpt in self.root.glob("results/*/*/*/*.work/checkpoint.pt"):
                lease = ckpt.parent.with_suffix(".lease")
                try:
                    pid = json.loads(lease.read_text())["pid"]
                except (OSError, ValueError, KeyError):
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it finished between our look and the kill
                if ckpt.exists():  # else it had just finished: the kill hit nothing; look on
                    self.killed_key = ckpt.parent.name.removesuffix(".work")
                    return
            time.sleep(0.01)


def _leftovers(root: Path) -> list[Path]:
    res = root / "results"
    return [p for pattern in ("**/*.lease", "**/.*.tmp", "**/*.work", "**/*.takeover")
            for p in res.glob(pattern)]


def test_local_two_workers_survive_a_sigkill_exactly_once(home):
    g = grid(seeds=[0, 1, 2, 3, 4, 5])
    plan = plan_sweep(expand(g, home=home), "kill", home, "local")
    assert len(plan.specs) == 6 and not plan.finished
    killer = KillOneMidRun(home)
    killer.start()
    lost = []

    class Watch(SweepEvents):
        def retrying(self, spec, outcome):
            super().retrying(spec, outcome)
            lost.append(outcome)

    result = run_sweep(plan, LocalExecutor(workers=2, max_retries=2), Watch())
    killer.stop.set()
    assert killer.killed_key is not None, "no worker was caught mid-run"
    assert sorted(o.status for o in result.outcomes) == ["done"] * 6
    assert [o.key for o in lost] == [killer.killed_key]
    assert "SIGKILL" in lost[0].error

    store = ResultStore(home)
    records = {r.key: r for r in store.records() if r.key in {s.key for s in plan.specs}}
    assert set(records) == {s.key for s in plan.specs}  # one record per key
    files = [p for s in plan.specs for p in Path(s.record_path).parent.glob(f"{s.key}*.json")]
    assert len(files) == 6
    killed = records[killer.killed_key]
    assert killed.resumed_from_epoch is not None and killed.resumed_from_epoch >= 1
    assert killed.executor == "local"
    starts = [e for e in read_attempts(Path(plan.specs[0].sweep_dir)) if e["event"] == "start"]
    assert len(starts) == 7  # six runs, one retried
    assert not _leftovers(home)

    again = plan_sweep(expand(g, home=home), "kill", home, "local")
    assert again.specs == [] and len(again.finished) == 6  # a rerun dispatches nothing
    assert {s.state for s in sweep_status(again)} == {"done"}


def test_the_same_key_dispatched_twice_at_once_lands_once(home):
    plan = plan_sweep(expand(grid(seeds=[7]), home=home), "twice", home, "local")
    (spec,) = plan.specs
    outcomes = list(LocalExecutor(workers=2).map([spec, spec], Events()))
    statuses = sorted(o.status for o in outcomes)
    assert statuses.count("done") == 1
    assert statuses[1 - statuses.index("done")] in ("busy", "duplicate", "skipped")
    record_dir = Path(spec.record_path).parent
    assert len(list(record_dir.glob(f"{spec.key}.json"))) == 1
    assert len(list(record_dir.glob(f"{spec.key}.*.predictions.parquet"))) == 1
    assert not _leftovers(home)


def test_a_failed_run_never_stops_the_grid_and_status_shows_it(home):
    # SKNN rejects k > sample_size when it fits: a model error, not retried
    bad = grid(models=["SKNN"], tasks=["seq"], settings={"k": 900, "sample_size": 100,
                                                         "latency_samples": 5})
    good = grid(models=["MostPopular"], groups=["baseline"], tasks=["seq"],
                settings={"latency_samples": 5})
    cells = expand(bad, home=home) + expand(good, home=home)
    plan = plan_sweep(cells, "fails", home, "local")
    result = run_sweep(plan, make_executor("local", workers=2, max_retries=2))
    by_status = {o.status: o for o in result.outcomes}
    assert set(by_status) == {"failed", "done"}
    failed = by_status["failed"]
    assert "k <= sample_size" in failed.error
    assert "Traceback" in Path(failed.log_path).read_text()
    starts = [e for e in read_attempts(Path(plan.specs[0].sweep_dir))
              if e["event"] == "start" and e["key"] == failed.key]
    assert len(starts) == 1  # model errors are never retried
    states = {s.spec.key: s for s in sweep_status(plan)}
    assert states[failed.key].state == "failed" and "sample_size" in states[failed.key].detail
    assert states[by_status["done"].key].state == "done"


# ----------------------------------------------------------------------------- CLI

def test_cli_sweep_dry_run_status_and_a_suite_as_a_sweep(tmp_path):
    from typer.testing import CliRunner

    from recbench.cli.app import app

    home = tmp_path / "home"
    grid_file = tmp_path / "g.yaml"
    grid_file.write_text("name: cli\ngroups: [baseline]\nmodels: [MostPopular]\n"
                         "datasets: [synthetic]\nsize: tiny\ntasks: [seq]\nseeds: [0, 1]\n"
                         "settings: {latency_samples: 5}\n")
    runner = CliRunner()
    dry = runner.invoke(app, ["sweep", str(grid_file), "--home", str(home), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "2 keys, 0 finished, 2 to run" in dry.output
    status = runner.invoke(app, ["sweep", "status", str(grid_file), "--home", str(home)])
    assert status.exit_code == 0 and "2 missing" in status.output
    ran = runner.invoke(app, ["sweep", str(grid_file), "--home", str(home), "--workers", "2"])
    assert ran.exit_code == 0, ran.output
    status = runner.invoke(app, ["sweep", "status", str(grid_file), "--home", str(home)])
    assert "2 done" in status.output
    bad = runner.invoke(app, ["sweep", str(grid_file), "--home", str(home),
                              "--executor", "dask"])
    assert bad.exit_code != 0 and "choose local, ray, slurm" in bad.output
    suite = runner.invoke(app, ["suite", "run", "recbench", "--datasets", "synthetic",
                                "--only", "baseline", "--size", "tiny", "--home", str(home),
                                "--executor", "local", "--workers", "2"])
    assert suite.exit_code == 0, suite.output
    records = list((home / "results" / "synthetic" / "baseline").glob("*/*.json"))
    # 2 sweep keys + the suite's MostPopular/Random x ctr/seq (its seq MostPopular key may
    # coincide with the sweep's only if the settings match; they differ: latency_samples)
    assert len(records) == 2 + 4


def test_slurm_executor_through_submitits_local_cluster(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (recbench[slurm])")
    home = tmp_path / "home"
    g = grid(models=["MostPopular"], groups=["baseline"], tasks=["seq"], seeds=[0, 1],
             settings={"latency_samples": 5})
    plan = plan_sweep(expand(g, home=home), "slurm", home, "slurm")
    assert len(plan.specs) == 2
    ex = make_executor("slurm", workers=2, folder=tmp_path / "jobs",
                       slurm={"cluster": "local", "timeout_min": 10})
    result = run_sweep(plan, ex)
    assert sorted(o.status for o in result.outcomes) == ["done", "done"]
    records = list(ResultStore(home).records())
    assert {r.key for r in records} == {s.key for s in plan.specs}
    assert {r.executor for r in records} == {"slurm"}
    with pytest.raises(ConfigError, match="whole"):
        ex._executor(__import__("submitit"), 1, 0.5)


def test_status_tells_running_from_stale_leases(home):
    import socket
    import subprocess

    from recbench.results.lease import acquire

    plan = plan_sweep(expand(grid(seeds=[40, 41, 42]), home=home), "leases", home, "local")
    live, dead, missing = (Path(s.record_path) for s in plan.specs)
    lease = acquire(live.with_suffix(".lease"), attempt="live")
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead.parent.mkdir(parents=True, exist_ok=True)
    dead.with_suffix(".lease").write_text(json.dumps(
        {"attempt": "dead", "pid": gone.pid, "host": socket.gethostname(),
         "started_at": "2026-01-01T00:00:00+00:00"}))
    try:
        states = [s.state for s in sweep_status(plan)]
    finally:
        lease.release()
        dead.with_suffix(".lease").unlink()
    assert states == ["running", "stale", "missing"]
    assert missing.exists() is False
