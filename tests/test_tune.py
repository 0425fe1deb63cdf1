"""`recbench tune`: two workers on one SQLite study with a cheap real objective: SKNN on the
synthetic tiny set, prepared with temporal-v1 (its three chained validation folds) for the
protocol test, and under recbench-v1 (no folds: the documented stand-in) elsewhere."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="optuna is not installed (recbench[tune])")

from recbench.core.errors import ConfigError  # noqa: E402
from recbench.distributed.tune import (  # noqa: E402
    StopWithoutImprovement,
    run_tune,
    study_from_dict,
    summary,
    tune_worker,
    write_best,
)

STATE = optuna.trial.TrialState


def study(**kw):
    base = {"name": "sknn", "group": "G", "model": "SKNN", "dataset": "synthetic", "size": "tiny",
            "space": "sknn", "startup_trials": 5, "prune_after": 10, "patience": 12,
            "heartbeat_s": 1, "grace_s": 2, "timeout_s": 900}
    base.update(kw)
    return study_from_dict(base)


def trials_of(name, storage):
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_two_workers_prune_late_stop_on_no_improvement_and_number_uniquely(tmp_path):
    home = tmp_path / "home"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    t0 = time.perf_counter()
    # the paper's 40 random start-up trials: pruning then has random (often poor) trials to cut
    out = run_tune(study(startup_trials=40, patience=16, protocol="temporal-v1"), storage,
                   workers=2, home=home)
    elapsed = time.perf_counter() - t0
    trials = trials_of("sknn", storage)
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) == out["trials"]
    done = [t for t in trials if t.state in (STATE.COMPLETE, STATE.PRUNED)]
    complete = [t for t in done if t.state == STATE.COMPLETE]
    # the stop rule, not the timeout, ended both workers
    assert elapsed < 900
    best = max(complete, key=lambda t: t.value)
    assert sum(t.number > best.number for t in done) >= 16
    assert out["best_value"] == pytest.approx(best.value)
    # pruning acts, and no trial was pruned before 10 trials had completed
    assert any(t.state == STATE.PRUNED for t in done)
    for t in (t for t in done if t.state == STATE.PRUNED):
        before = sum(c.datetime_complete < t.datetime_complete for c in complete)
        assert before >= 10, f"trial {t.number} pruned after only {before} completes"
    # fold metrics live in the study, with the objective stated
    assert len(complete[0].user_attrs["fold_ndcg@20"]) == 3
    assert "3 temporal validation folds" in complete[0].user_attrs["objective"]
    assert sum(complete[0].user_attrs["fold_ndcg@20"]) == pytest.approx(complete[0].value)
    # a different sampler seed per worker: the random start-up trials are all different
    first = [tuple(sorted(t.params.items())) for t in sorted(trials, key=lambda t: t.number)[:4]]
    assert len(set(first)) == 4
    tuned = tmp_path / "tuned.yaml"
    best_out = write_best("sknn", storage, tuned)
    assert best_out["trial"] == best.number and "trial" in tuned.read_text()


def _worker(args):
    tune_worker(*args)


def _kill_mid_objective(name, storage, home):
    """Start a worker on study `name`, SIGKILL it while a trial is inside its objective, and
    return that trial as the dead worker left it, or None where the kill came between trials
    (a trial can complete in the moment between seeing it running and the kill)."""
    ctx = multiprocessing.get_context("spawn")
    victim = ctx.Process(target=_worker, args=((study(name=name, n_trials=200), storage, 0,
                                                home),))
    victim.start()
    seen = None
    deadline = time.time() + 180
    while seen is None and time.time() < deadline:
        # KeyError: the study is not created yet
        with contextlib.suppress(KeyError, optuna.exceptions.StorageInternalError, ValueError):
            # a trial mid-objective: its parameters are sampled (a fresh trial has none yet)
            seen = next((t for t in trials_of(name, storage) if t.state == STATE.RUNNING
                         and t.number >= 1 and len(t.params) == 4), None)
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert seen is not None, "the worker never started a trial"
    left = [t for t in trials_of(name, storage) if t.state == STATE.RUNNING]
    return left[0] if len(left) == 1 and len(left[0].params) == 4 else None


def test_a_killed_workers_trial_is_retried_with_the_same_params(tmp_path):
    home = str((tmp_path / "home").resolve())
    storage = f"sqlite:///{tmp_path / 'kill.db'}"
    for attempt in range(5):
        name = f"kill{attempt}"
        running = _kill_mid_objective(name, storage, home)
        if running is not None:
            break
    else:
        pytest.fail("5 kills all landed between trials")
    time.sleep(4)  # past the grace period: the killed trial's heartbeat is stale
    # the rescuer fails the stale trial and runs its retry first (a WAITING trial is taken
    # before a new one is sampled)
    ctx = multiprocessing.get_context("spawn")
    rescuer = ctx.Process(target=_worker, args=((study(name=name, n_trials=2), storage, 1,
                                                 home),))
    rescuer.start()
    rescuer.join(timeout=180)
    assert rescuer.exitcode == 0
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trials = {t.number: t for t in trials_of(name, storage)}
    assert trials[running.number].state == STATE.FAIL
    retries = [t for t in trials.values()
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == running.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.params == running.params == trials[running.number].params
    assert retry.state in (STATE.COMPLETE, STATE.PRUNED)


def test_stop_rule_counts_trials_since_the_best():
    values = iter([1.0, 5.0, 2.0, 2.0, 0.5, 9.0, 9.0, 9.0])
    st = optuna.create_study(direction="maximize")
    st.optimize(lambda trial: next(values), n_trials=8, callbacks=[StopWithoutImprovement(3)])
    # best is trial 1; trials 2, 3, 4 do not improve on it: the third of them stops the loop
    assert len(st.trials) == 5


@pytest.mark.parametrize("bad, match", [
    ({"space": "no-such-space"}, "unknown search space"),
    ({"space": {"k": {"type": "int", "low": 5, "high": 1}}}, "low <= high"),
    ({"prune_bottom_percent": 120}, "prune_bottom_percent"),
    ({"modle": "x"}, "modle"),
])
def test_bad_studies_fail_naming_the_field(bad, match):
    with pytest.raises(ConfigError, match=match):
        study(**bad)


def test_summary_of_an_empty_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'e.db'}"
    s = study(name="empty")
    from recbench.distributed.tune import create_study

    create_study(s, storage)
    out = summary(s, storage)
    assert out["trials"] == 0 and out["best_trial"] is None
    assert Path(tmp_path / "e.db").exists()


def test_without_folds_the_stand_in_objective_is_stated(tmp_path):
    home = tmp_path / "home"
    storage = f"sqlite:///{tmp_path / 's.db'}"
    out = run_tune(study(name="standin", n_trials=2), storage, workers=1, home=home)
    (trial,) = [t for t in trials_of("standin", storage) if t.number == out["best_trial"]]
    assert "stand-in" in trial.user_attrs["objective"]
    assert len(trial.user_attrs["fold_ndcg@20"]) == 3


def test_a_run_from_the_tuned_config_names_its_study_and_trial(tmp_path):
    import yaml

    from recbench.distributed.tune import masked_url
    from recbench.runner import RunRequest, run

    storage = f"sqlite:///{tmp_path / 'best.db'}"
    s = optuna.create_study(study_name="picked", storage=storage, direction="maximize")
    for k, value in ((17, 0.2), (40, 0.5), (90, 0.3)):  # trial 1 is the best
        s.add_trial(optuna.trial.create_trial(
            params={"k": k, "sample_size": 300, "similarity": "cosine", "decay": "none"},
            distributions={"k": optuna.distributions.IntDistribution(10, 200, log=True),
                           "sample_size": optuna.distributions.IntDistribution(200, 2000,
                                                                               log=True),
                           "similarity": optuna.distributions.CategoricalDistribution(
                               ["cosine", "dot"]),
                           "decay": optuna.distributions.CategoricalDistribution(
                               ["none", "linear"])},
            value=value))
    tuned = tmp_path / "tuned.yaml"
    assert write_best("picked", storage, tuned)["trial"] == 1
    written = yaml.safe_load(tuned.read_text())
    assert written["tuned_from"] == {"study": "picked", "trial": 1, "value": 0.5,
                                     "storage": storage}
    home = tmp_path / "home"
    req = RunRequest(group="G", model="SKNN", datasets=["synthetic"], size="tiny", task="seq",
                     config_file=tuned, sets={"latency_samples": 5, "latency_warmup": 1},
                     home=home)
    (out,) = run(req)
    assert out.record.tuned_from.study == "picked" and out.record.tuned_from.trial == 1
    assert out.record.config["model"]["k"] == 40  # the trial's parameters were used
    assert "tuned_from" not in out.record.config["model"]
    # provenance is not part of the key: the same parameters without it are the same run
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({k: v for k, v in written.items() if k != "tuned_from"}))
    assert run(RunRequest(**{**req.__dict__, "config_file": plain}))[0].status == "skipped"
    # a damaged block fails in one line, naming the field
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**written, "tuned_from": {"study": "picked"}}))
    with pytest.raises(ConfigError, match="tuned_from.trial"):
        run(RunRequest(**{**req.__dict__, "config_file": bad}))
    # a storage password never reaches a config file or a record
    assert masked_url("postgresql://me:secret@db:5432/s") == "postgresql://me:***@db:5432/s"
    assert masked_url(storage) == storage
