"""The results store under concurrent writers and damaged files: first-writer-wins publishing,
per-attempt predictions, per-key leases (live, stale, killed owners), `recbench store check`,
and records/checkpoints that are not what they claim (issue 13 classes 15-16, issue 17)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import recbench
from recbench.results import lease as lease_mod
from recbench.results.lease import LeaseState, acquire, inspect_lease
from recbench.results.orphans import check_store, fix_store
from recbench.results.record import Record
from recbench.results.store import ResultStore
from recbench.runner import RunRequest, run

REPO = Path(recbench.__file__).resolve().parents[1]
# DNN on synthetic tiny: a real model whose epochs write checkpoints; many short epochs so a
# kill lands mid-training, patience high so early stopping does not end it first
DNN_SETS = {"epochs": 40, "patience": 100, "latency_samples": 5}


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("RECBENCH_HOME", None)
    return env


def cli_run(home: Path, *extra: str, model: str = "DNN", group: str = "A",
            sets: dict | None = None) -> list[str]:
    args = [sys.executable, "-m", "recbench", "run", "-g", group, "-m", model, "-d",
            "synthetic", "--size", "tiny", "--task", "ctr", "--home", str(home)]
    for k, v in (DNN_SETS if sets is None else sets).items():
        args += ["--set", f"{k}={v}"]
    return args + list(extra)


def dnn_request(home: Path, **kw) -> RunRequest:
    base = dict(group="A", model="DNN", datasets=["synthetic"], size="tiny", task="ctr",
                home=home, sets=dict(DNN_SETS))
    base.update(kw)
    return RunRequest(**base)


def baseline_request(home: Path, **kw) -> RunRequest:
    base = dict(group="baseline", model="MostPopular", datasets=["synthetic"], size="tiny",
                task="ctr", home=home, sets={"latency_samples": 5})
    base.update(kw)
    return RunRequest(**base)


def key_dir(home: Path, group: str = "A", model: str = "DNN") -> Path:
    return home / "results" / "synthetic" / group / model


def plant_lease(path: Path, *, host: str, pid: int, age_s: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"attempt": "old-attempt", "pid": pid, "host": host,
                                "started_at": "2026-01-01T00:00:00+00:00"}))
    then = time.time() - age_s
    os.utime(path, (then, then))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# leases


def test_a_live_lease_is_reported_and_released(tmp_path):
    path = tmp_path / "k.lease"
    held = acquire(path, stale_after_s=30)
    assert not isinstance(held, LeaseState)
    owner = json.loads(path.read_text())
    assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert owner["attempt"] == held.attempt
    other = acquire(path, stale_after_s=30)
    assert isinstance(other, LeaseState) and not other.stale
    assert other.owner.attempt == held.attempt
    held.release()
    assert not path.exists()
    again = acquire(path, stale_after_s=30)
    assert not isinstance(again, LeaseState) and again.taken_over is None
    again.release()


def test_the_heartbeat_keeps_a_lease_fresh_and_silence_makes_it_stale(tmp_path):
    path = tmp_path / "k.lease"
    with acquire(path, stale_after_s=1.0) as held:
        time.sleep(2.5)  # 2.5x the stale time: only the heartbeat keeps it live
        state = inspect_lease(path, 1.0)
        assert state is not None and not state.stale and state.age_s < 1.0
        assert not held.lost
    plant_lease(path, host="elsewhere.example", pid=1, age_s=5)
    state = inspect_lease(path, 1.0)
    assert state.stale and "no heartbeat for 5 s" in state.why


def test_a_stale_lease_is_taken_over(tmp_path):
    path = tmp_path / "k.lease"
    plant_lease(path, host="elsewhere.example", pid=4242, age_s=120)
    assert isinstance(acquire(path, stale_after_s=600), LeaseState)  # not stale at 600 s
    held = acquire(path, stale_after_s=60)
    assert not isinstance(held, LeaseState)
    assert held.taken_over.owner.host == "elsewhere.example"
    assert json.loads(path.read_text())["attempt"] == held.attempt
    held.release()


def test_a_lease_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path):
    path = tmp_path / "k.lease"
    plant_lease(path, host=socket.gethostname(), pid=dead_pid(), age_s=0)
    state = inspect_lease(path, 60)
    assert state.stale and "is gone" in state.why
    held = acquire(path, stale_after_s=60)
    assert not isinstance(held, LeaseState) and held.taken_over is not None
    held.release()


def test_a_lost_lease_is_noticed_by_its_heartbeat(tmp_path):
    path = tmp_path / "k.lease"
    held = acquire(path, stale_after_s=0.3)
    path.unlink()  # as a taker does once it judged this lease stale
    plant_lease(path, host="elsewhere.example", pid=1, age_s=0)
    deadline = time.time() + 10
    while not held.lost and time.time() < deadline:
        time.sleep(0.05)
    assert held.lost
    held.release()
    assert json.loads(path.read_text())["attempt"] == "old-attempt"  # not ours: left alone


RACE = """
import sys, time
from pathlib import Path
from recbench.results.lease import LeaseState, acquire
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
got = acquire(Path(sys.argv[1]), stale_after_s=30)
print("lost" if isinstance(got, LeaseState) else "won", flush=True)
while not Path(sys.argv[3]).exists():  # hold it until every racer has tried
    time.sleep(0.02)
if not isinstance(got, LeaseState):
    got.release()
"""


@pytest.mark.parametrize("planted", ["none", "stale"])
def test_racing_processes_take_one_lease_exactly_once(tmp_path, planted):
    path = tmp_path / "k.lease"
    if planted == "stale":  # all judge it stale at once; the takeover lock lets one through
        plant_lease(path, host="elsewhere.example", pid=1, age_s=300)
    start, done = time.time() + 1.5, tmp_path / "everyone-tried"
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(path), str(start), str(done)],
                              stdout=subprocess.PIPE, text=True, env=child_env())
             for _ in range(4)]
    try:
        outs = [p.stdout.readline().strip() for p in procs]
    finally:
        done.touch()
    for p in procs:
        p.communicate(timeout=60)
    assert sorted(outs) == ["lost", "lost", "lost", "won"], outs
    assert not path.exists()  # the winner released it
    assert not list(tmp_path.glob("*.takeover"))


# ---------------------------------------------------------------------------------------------
# publishing


def make_record(key: str = "k1", attempt: str | None = None, gauc: float = 0.7) -> Record:
    return Record(key=key, group="A", model="DNN", model_id="DNN", dataset="synthetic",
                  dataset_size="tiny", dataset_version="v", protocol_version="recbench-v1",
                  task="ctr", mode="train", metrics={"ctr": {"gauc": gauc}}, seed=0, config={},
                  config_hash="h", hardware={"cpu": "x", "cores": 1, "threads_used": 1,
                                             "memory_gb": 1.0, "platform": "p",
                                             "python": "3"},
                  recbench_version="0", started_at="t0", finished_at="t1", attempt=attempt)


def test_publish_is_first_writer_wins_with_per_attempt_predictions(home):
    store = ResultStore(home)
    first = store.write(make_record(attempt="a1", gauc=0.7), pl.DataFrame({"score": [0.1]}))
    second = store.write(make_record(attempt="a2", gauc=0.9), pl.DataFrame({"score": [0.2]}))
    assert not first.duplicate and second.duplicate
    assert second.record == first.record and second.record.metrics["ctr"]["gauc"] == 0.7
    folder = first.path.parent
    assert sorted(p.name for p in folder.iterdir()) == ["k1.a1.predictions.parquet", "k1.json"]
    assert store.predictions(store.find("synthetic", "A", "DNN", "k1"))["score"].to_list() == [0.1]
    # redoing the record it saw (`--overwrite always`) replaces it and its predictions
    third = store.write(make_record(attempt="a3", gauc=0.8), pl.DataFrame({"score": [0.3]}),
                        supersedes=first.record)
    assert third.replaced and not third.duplicate
    assert sorted(p.name for p in folder.iterdir()) == ["k1.a3.predictions.parquet", "k1.json"]
    # superseding a record that is no longer the one there: another attempt won meanwhile
    fourth = store.write(make_record(attempt="a4"), None, supersedes=first.record)
    assert fourth.duplicate and fourth.record.attempt == "a3"


def test_old_records_without_the_new_fields_still_load(home):
    data = make_record().model_dump(mode="json")
    for name in ("executor", "node", "attempt", "resumed_from_epoch"):
        data.pop(name)
    path = ResultStore(home).record_path("synthetic", "A", "DNN", "k1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    (record,) = ResultStore(home).records()
    assert record.attempt is None and record.resumed_from_epoch is None


# ---------------------------------------------------------------------------------------------
# class 15: damaged files


def test_bad_json_files_do_not_break_the_leaderboard(home, caplog):
    store = ResultStore(home)
    store.write(make_record("good"), None)
    folder = store.record_path("synthetic", "A", "DNN", "good").parent
    (folder / "latin1.json").write_bytes(b'{"key": "caf\xe9"}')
    (folder / "folder.json").mkdir()
    (folder / "dangling.json").symlink_to(folder / "nowhere.json")
    (folder / "cut.json").write_text(json.dumps(make_record("cut").model_dump(mode="json"))[:50])
    with caplog.at_level("WARNING"):
        keys = [r.key for r in store.records()]
    assert keys == ["good"]
    for name in ("latin1.json", "folder.json", "dangling.json", "cut.json"):
        assert any(name in r.getMessage() for r in caplog.records), name
    from recbench.cli.app import app

    result = CliRunner().invoke(app, ["leaderboard", "--task", "ctr", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "DNN" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("overwrite", ["never", "always"])
def test_a_corrupt_record_is_redone(home, overwrite, caplog):
    (first,) = run(baseline_request(home))
    first.path.write_bytes(first.path.read_bytes()[:40])  # cut mid-write by a crash
    with caplog.at_level("WARNING"):
        (again,) = run(baseline_request(home, overwrite=overwrite))
    assert again.status == "done" and again.path == first.path
    assert any("not valid JSON" in r.getMessage() and first.path.name in r.getMessage()
               for r in caplog.records)
    assert ResultStore(home).find("synthetic", "baseline", "MostPopular",
                                  first.record.key) == again.record


@pytest.mark.usefixtures("one_thread")
def test_a_truncated_checkpoint_is_discarded_and_training_starts_fresh(home, caplog):
    (first,) = run(dnn_request(home, sets={**DNN_SETS, "epochs": 2}))
    key = first.record.key
    first.path.unlink()
    ckpt = first.path.with_name(f"{key}.work") / "checkpoint.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"PK\x03\x04 cut short")
    with caplog.at_level("WARNING"):
        (again,) = run(dnn_request(home, sets={**DNN_SETS, "epochs": 2}))
    assert again.status == "done" and again.record.resumed_from_epoch is None
    assert any(str(ckpt) in r.getMessage() and "first epoch" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    assert again.record.metrics == first.record.metrics  # a fresh run: the same numbers
    assert not ckpt.parent.exists()


# ---------------------------------------------------------------------------------------------
# class 16: the same key at once, auto-prepare races, killed runs


def test_a_live_lease_elsewhere_skips_the_key(home):
    (planned,) = run(baseline_request(home))  # learn the key, then redo it under a lease
    planned.path.unlink()
    lease = ResultStore(home).lease("synthetic", "baseline", "MostPopular", planned.record.key)
    try:
        (out,) = run(baseline_request(home))
        assert out.status == "running-elsewhere" and out.record is None
        assert not planned.path.exists()
    finally:
        lease.release()
    (out,) = run(baseline_request(home))
    assert out.status == "done" and out.record.node == socket.gethostname()
    assert out.record.attempt and out.record.predictions.startswith(
        f"{out.record.key}.{out.record.attempt}.")


def test_a_stale_lease_is_taken_over_by_a_run(home):
    (first,) = run(baseline_request(home))
    first.path.unlink()
    lease_path = first.path.with_suffix(".lease")
    plant_lease(lease_path, host="elsewhere.example", pid=4242, age_s=30)
    (skipped,) = run(baseline_request(home, lease_stale_s=600))
    assert skipped.status == "running-elsewhere"
    (out,) = run(baseline_request(home, lease_stale_s=10, attempt="retry-2",
                                  executor="local"))
    assert out.status == "done" and not lease_path.exists()
    assert out.record.attempt == "retry-2" and out.record.executor == "local"


def test_auto_prepare_by_another_process_meanwhile_is_success(home, monkeypatch):
    import recbench.runner as runner

    real = runner.prepare

    def prepared_meanwhile(*args, **kwargs):
        real(*args, **kwargs)  # the other process wins the race ...
        return real(*args, **kwargs)  # ... and ours then finds the dataset there

    monkeypatch.setattr(runner, "prepare", prepared_meanwhile)
    (out,) = run(baseline_request(home))
    assert out.status == "done"


def test_two_processes_start_the_same_key_at_once(home):
    procs = [subprocess.Popen(cli_run(home, sets={**DNN_SETS, "epochs": 8}),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=child_env()) for _ in range(2)]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    trained = [o for o in outs if "(ctr): training" in o]
    assert len(trained) == 1, outs  # exactly one trained
    other = next(o for o in outs if o is not trained[0])
    assert "running elsewhere" in other or "finished run exists" in other, other
    folder = key_dir(home)
    assert len(list(folder.glob("*.json"))) == 1
    assert len(list(folder.glob("*.predictions.parquet"))) == 1
    assert not list(folder.glob("*.lease")) and not list(folder.glob("*.work"))
    assert not list(folder.glob(".*"))  # no temp files


@pytest.mark.usefixtures("one_thread")
def test_a_killed_run_resumes_from_its_checkpoint_and_writes_one_record(home):
    proc = subprocess.Popen(cli_run(home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=child_env())
    folder = key_dir(home)
    deadline = time.time() + 180
    try:
        while not list(folder.glob("*.work/checkpoint.pt")):
            assert proc.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 180 s"
            time.sleep(0.02)
        time.sleep(0.2)  # a few more epochs
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not list(folder.glob("*.json")), "the run finished before it was killed"
    assert len(list(folder.glob("*.lease"))) == 1  # the dead run's lease is left behind
    (out,) = run(dnn_request(home))
    assert out.status == "done"
    assert out.record.resumed_from_epoch is not None and out.record.resumed_from_epoch >= 1
    assert len(list(folder.glob("*.json"))) == 1
    assert len(list(folder.glob("*.predictions.parquet"))) == 1
    assert not list(folder.glob("*.lease")) and not list(folder.glob("*.work"))
    assert check_store(ResultStore(home)).orphans == []


# ---------------------------------------------------------------------------------------------
# recbench store check


def test_store_check_finds_and_fixes_planted_orphans(home):
    (done,) = run(baseline_request(home))
    folder = done.path.parent
    key = done.record.key
    planted = {
        "predictions": folder / "feed.a1.predictions.parquet",  # no record for key "feed"
        "lease": folder / "dead.lease",
        "temp": folder / f".{key}.json.x1.tmp",
        "work": folder / f"{key}.work",
    }
    pl.DataFrame({"score": [1.0]}).write_parquet(planted["predictions"])
    plant_lease(planted["lease"], host="elsewhere.example", pid=1, age_s=600)
    planted["temp"].write_text("{")
    planted["work"].mkdir()
    (planted["work"] / "checkpoint.pt").write_bytes(b"x")
    stale_copy = folder / f"{key}.old1.predictions.parquet"  # a replaced attempt's leftovers
    pl.DataFrame({"score": [1.0]}).write_parquet(stale_copy)
    # not orphans: a live run's lease and temp file, an unfinished key's checkpoint
    live = acquire(folder / "busy.lease", stale_after_s=60)
    (folder / ".busy.a2.predictions.parquet.tmp").write_text("writing")
    (folder / "todo.work").mkdir()
    (folder / "todo.work" / "checkpoint.pt").write_bytes(b"x")
    try:
        found = check_store(ResultStore(home))
        assert sorted((o.kind, o.path.name) for o in found.orphans) == sorted(
            [(k, p.name) for k, p in planted.items()] + [("predictions", stale_copy.name)])
        assert "5 orphans" in found.summary(fixed=False)
        fixed = fix_store(found)
        assert len(fixed.removed) == 5
        assert not any(p.exists() for p in [*planted.values(), stale_copy])
        assert (folder / "busy.lease").exists() and (folder / "todo.work").exists()
        assert (folder / ".busy.a2.predictions.parquet.tmp").exists()
        assert ResultStore(home).predictions(done.record).height > 0  # the real one stays
        assert check_store(ResultStore(home)).orphans == []
    finally:
        live.release()


def test_store_check_cli_prints_a_summary_and_fixes(home):
    from recbench.cli.app import app

    folder = ResultStore(home).key_dir("synthetic", "A", "DNN")
    folder.mkdir(parents=True)
    pl.DataFrame({"score": [1.0]}).write_parquet(folder / "k.a.predictions.parquet")
    (folder / "[red]x.json").write_bytes(b"\xff")  # damaged, and markup in its name
    cli = CliRunner()
    result = cli.invoke(app, ["store", "check", "--home", str(home)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "k.a.predictions.parquet" in lines[0]
    assert "damaged record" in lines[1] and "[red]x.json" in lines[1]
    assert lines[-1].startswith("1 orphan (1 predictions file without a record)")
    assert lines[-1].endswith("--fix removes them; 1 damaged *.json file kept (a damaged record "
                              "is redone by the next run of its key)")
    assert (folder / "k.a.predictions.parquet").exists()
    result = cli.invoke(app, ["store", "check", "--home", str(home), "--fix"])
    assert result.exit_code == 0 and "removed 1 orphan" in result.output
    assert not (folder / "k.a.predictions.parquet").exists()
    assert (folder / "[red]x.json").exists()
    result = cli.invoke(app, ["store", "check", "--home", str(home)])
    assert result.output.strip().splitlines()[-1].startswith("0 orphans")


def test_lease_constants_are_consistent():
    assert lease_mod.DEFAULT_STALE_S / lease_mod.MISSED_BEATS >= 1.0
