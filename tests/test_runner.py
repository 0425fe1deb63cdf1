"""`recbench run` end to end with the baselines: records, predictions, skipping, configs."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from recbench.core.errors import ConfigError, DataError, UnknownNameError
from recbench.results.store import ResultStore
from recbench.runner import RunRequest, run


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


def req(home, **kw):
    base = dict(group="baseline", model="MostPopular", datasets=["synthetic"], size="tiny",
                home=home, sets={"latency_samples": 50})
    base.update(kw)
    return RunRequest(**base)


def test_run_writes_records_for_both_tasks(home):
    outcomes = run(req(home))
    assert [(o.task, o.status) for o in outcomes] == [("ctr", "done"), ("seq", "done")]
    ctr = outcomes[0].record
    assert ctr.latency.n == 50 and ctr.latency.threads == 1
    assert ctr.hardware.cores >= 1 and ctr.config["eval"]["latency_samples"] == 50
    # metrics recomputed from the saved predictions with an independent reference
    preds = ResultStore(home).predictions(ctr)
    assert abs(roc_auc_score(preds["label"], preds["score"]) - ctr.metrics["ctr"]["auc"]) < 1e-9
    seq = outcomes[1].record
    sp = ResultStore(home).predictions(seq)
    ranks = sp["rank_full"].to_numpy()
    ndcg = np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0).mean()
    assert abs(ndcg - seq.metrics["full"]["ndcg@10"]) < 1e-9
    assert set(seq.metrics) == {"full", "sampled100"}
    assert seq.metrics["sampled100"]["hr@10"] >= seq.metrics["full"]["hr@10"]


def test_finished_runs_are_skipped_and_always_reruns(home):
    run(req(home))
    again = run(req(home))
    assert {o.status for o in again} == {"skipped"}
    redo = run(req(home, overwrite="always"))
    assert {o.status for o in redo} == {"done"}


def test_a_name_in_another_case_is_stored_and_skipped_under_the_registered_one(tmp_path):
    first = run(req(tmp_path, model="mostpopular"))
    folder = tmp_path / "results" / "synthetic" / "baseline" / "MostPopular"
    assert all(o.path.parent == folder for o in first)
    assert {o.record.model for o in first} == {"MostPopular"}
    assert len(list(folder.glob("*.log"))) == 2  # the logs beside their records
    again = run(req(tmp_path, model="MOSTPOPULAR"))
    assert {o.status for o in again} == {"skipped"}


def test_only_missing_repairs_lost_predictions(home):
    first = run(req(home, model="Random"))
    store = ResultStore(home)
    pred_path = first[0].path.with_name(first[0].record.predictions)
    pred_path.unlink()
    repaired = run(req(home, model="Random", overwrite="only-missing"))
    assert [o.status for o in repaired] == ["done", "skipped"]
    # the repair is a new attempt: its own predictions file, named by the replacing record
    new_path = repaired[0].path.with_name(repaired[0].record.predictions)
    assert new_path != pred_path and new_path.exists()
    assert store.predictions(repaired[0].record).height > 0
    assert store.find("synthetic", "baseline", "Random", first[0].record.key) == repaired[0].record


def test_mostpopular_beats_random_on_seq(home):
    pop = run(req(home, task="seq"))[0].record.metrics["full"]["ndcg@10"]
    rnd = run(req(home, model="Random", task="seq"))[0].record.metrics["full"]["ndcg@10"]
    assert pop > rnd


def test_random_is_seeded(tmp_path):
    a = run(req(tmp_path / "a", model="Random", task="ctr"))[0].record.metrics
    b = run(req(tmp_path / "b", model="Random", task="ctr"))[0].record.metrics
    assert a == b


def test_smoke_is_marked_and_keyed_apart(home):
    out = run(req(home, smoke=True, task="ctr"))
    assert out[0].status == "done" and out[0].record.smoke
    assert out[0].record.latency.n <= 20


def test_config_errors_before_data(tmp_path):
    with pytest.raises(ConfigError, match="latency_samples"):
        run(req(tmp_path, sets={"latency_sample": 3}))
    with pytest.raises(ConfigError, match="eval_batch_size"):
        run(req(tmp_path, sets={"eval_batch_size": "many"}))
    assert not (tmp_path / "datasets").exists()  # nothing was prepared or loaded


def test_yaml_then_set_precedence(tmp_path, home):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("latency_samples: 7\neval_batch_size: 64\n")
    out = run(req(home, config_file=cfg, sets={"latency_samples": 9}, task="ctr"))
    assert out[0].record.config["eval"]["latency_samples"] == 9
    assert out[0].record.config["eval"]["eval_batch_size"] == 64


def test_unknown_names_and_unprepared(tmp_path):
    with pytest.raises(UnknownNameError, match="MostPopular"):
        run(req(tmp_path, model="MostPopula"))
    with pytest.raises(UnknownNameError):
        run(req(tmp_path, group="Z"))
    with pytest.raises(DataError, match="recbench prepare mind"):
        run(req(tmp_path, datasets=["mind"]))


def test_record_file_is_valid_json_with_schema_version(home):
    out = run(req(home, task="ctr"))
    data = json.loads(out[0].path.read_text())
    assert data["schema_version"] == 1 and data["dataset_version"]
    assert pl.read_parquet(out[0].path.with_name(data["predictions"])).height > 0
