"""`recbench quickstart`: the README's main job runs offline and ends with leaderboards."""

from __future__ import annotations

from typer.testing import CliRunner

from recbench.cli import quickstart_cmd
from recbench.cli.app import app


def test_quickstart_tiny(tmp_path, monkeypatch):
    # Only the baselines here: the learned models have their own smoke tests.
    monkeypatch.setattr(quickstart_cmd, "QUICKSTART_RUNS",
                        [r for r in quickstart_cmd.QUICKSTART_RUNS if r[0] == "baseline"])
    result = CliRunner().invoke(app, ["quickstart", "--size", "tiny", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| – | MostPopular |" in result.output
    assert "SeqRec (list-wise) leaderboard" in result.output
    again = CliRunner().invoke(app, ["quickstart", "--size", "tiny", "--home", str(tmp_path)])
    assert again.exit_code == 0 and "skipped" in again.output  # results are the cache


def test_quickstart_has_an_llm_row_and_its_settings_resolve():
    from recbench.core.config import EvalConfig, resolve
    from recbench.models.registry import MODELS, resolve_model

    runs = {(g, m): sets for g, m, sets in quickstart_cmd.QUICKSTART_RUNS}
    assert runs[("E", "smollm2-135m")]["mode"] == "zero-shot"
    assert ("C", "DNN_emb") in runs and ("G", "SASRec-3L") in runs
    for group, model, sets in quickstart_cmd.QUICKSTART_RUNS:  # a typo fails here, not later
        resolved = resolve_model(group, model)
        resolve({"model": MODELS.load(resolved.name).Config, "eval": EvalConfig}, sets,
                resolved.implied)


def test_headline_puts_the_llm_beside_dnn_emb_and_sasrec():
    from test_leaderboard import make_record

    from recbench.results.leaderboard import build_table

    records = [make_record("E", "SmolLM2-135M-Instruct", "synthetic", 0.55, mode="zero-shot",
                           latency_ms=40.0),
               make_record("C", "DNN_emb", "synthetic", 0.70, latency_ms=0.5),
               make_record("A", "DNN", "synthetic", 0.66, latency_ms=0.4),
               make_record("G", "SASRec-3L", "synthetic", 0.08, task="seq", latency_ms=2.0)]
    tables = {t: build_table(records, t) for t in ("ctr", "seq")}
    lines = quickstart_cmd.headline(tables).splitlines()
    assert lines[0].endswith("| × DNN_emb |")
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [(r[0], r[2], r[3], r[4], r[5], r[6]) for r in body] == [
        ("E", "ctr", "gauc", "0.5500", "40.00", "80"),
        ("C", "ctr", "gauc", "0.7000", "0.50", "1"),
        ("G", "seq", "ndcg@10", "0.0800", "2.00", "4")]
