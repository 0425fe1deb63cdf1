"""Suites as data: the schema is closed, `expand` is pure and exact, rows find their records,
and `recbench suite run` runs, skips, resumes and reports failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recbench.core.errors import ConfigError, UnknownNameError
from recbench.results.store import ResultStore
from recbench.suites import (
    assign_rows,
    expand,
    expand_rows,
    load_suite,
    row_matches,
    select_rows,
    suite_names,
)

MINI = """
name: mini
version: 2
paper: test paper
protocol: recbench-v1
size: tiny
datasets: [synthetic, other]
seeds: [0, 1]
metrics: {ctr: [gauc], seq: [ndcg@10]}
tables:
  - {name: ctr, title: CTR table, task: ctr, metric: gauc}
  - {name: seq, title: Seq table, task: seq, metric: ndcg@10, row_groups: [baseline, G]}
rows:
  - {name: MostPopular, group: baseline, model: MostPopular}
  - {name: Random, group: baseline, model: Random, task: seq}
  - {name: DNN-small, group: A, model: DNN, settings: {epochs: 1}, datasets: [synthetic]}
  - {name: SASRec-3L, group: G, model: SASRec-3L, settings: {epochs: 1}}
"""


def write_suite(tmp_path: Path, text: str = MINI, name: str = "mini") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_recbench_suite_covers_groups_a_to_j_and_every_row_resolves():
    from recbench.core.config import EvalConfig, resolve
    from recbench.models.registry import MODELS, resolve_model

    assert "recbench" in suite_names()
    suite = load_suite("recbench")
    assert suite.protocol == "recbench-v1" and suite.version >= 1
    assert {r.section for r in suite.rows} == {"baseline", *"ABCDEFGHIJ"}
    for row in suite.rows:  # every row is a registered model with settings it accepts
        resolved = resolve_model(row.group, row.model)
        if not resolved.implied:
            assert resolved.name == row.model, row.name
        resolve({"model": MODELS.load(resolved.name).Config, "eval": EvalConfig},
                dict(row.settings), resolved.implied)
    e_rows = {r.name: r.settings.get("mode") for r in suite.rows if r.group == "E"}
    assert e_rows["smollm2-135m-zero-shot"] == "zero-shot"
    assert [t.task for t in suite.tables] == ["ctr", "ctr", "seq", "seq"]


def test_schema_is_closed_and_errors_name_the_field(tmp_path: Path):
    bad = MINI.replace("seeds: [0, 1]", "seeds: [0, 1]\nseedz: [3]")
    with pytest.raises(ConfigError, match="seedz"):
        load_suite(write_suite(tmp_path, bad, "bad1"))
    twice = MINI.replace("name: Random,", "name: MostPopular,")
    with pytest.raises(ConfigError, match="row names repeat: MostPopular"):
        load_suite(write_suite(tmp_path, twice, "bad2"))
    no_group = MINI.replace("row_groups: [baseline, G]", "row_groups: [baseline, Z]")
    with pytest.raises(ConfigError, match="row group 'Z' has no rows"):
        load_suite(write_suite(tmp_path, no_group, "bad3"))
    wrong = MINI.replace("datasets: [synthetic]}", "datasets: [mind]}")
    with pytest.raises(ConfigError, match="dataset 'mind' is not one of"):
        load_suite(write_suite(tmp_path, wrong, "bad4"))
    path_like = MINI.replace("name: SASRec-3L, group: G", "name: ../up, group: G")
    with pytest.raises(ConfigError, match="row name"):
        load_suite(write_suite(tmp_path, path_like, "bad5"))
    with pytest.raises(UnknownNameError, match="Did you mean 'recbench'"):
        load_suite("recbenc")


def test_expand_is_seed_major_and_exact(tmp_path: Path):
    suite = load_suite(write_suite(tmp_path))
    pairs = expand_rows(suite)
    got = [(req.seed, row.name, req.datasets[0]) for row, req in pairs]
    per_seed = [("MostPopular", "synthetic"), ("MostPopular", "other"), ("Random", "synthetic"),
                ("Random", "other"), ("DNN-small", "synthetic"), ("SASRec-3L", "synthetic"),
                ("SASRec-3L", "other")]
    assert got == [(s, row, d) for s in (0, 1) for row, d in per_seed]
    req = next(req for row, req in pairs if row.name == "DNN-small")
    assert (req.group, req.model, req.sets, req.size, req.task) == ("A", "DNN", {"epochs": 1},
                                                                   "tiny", None)
    assert next(req for row, req in pairs if row.name == "Random").task == "seq"
    assert [r.seed for r in expand(suite, seeds=[42])] == [42] * len(per_seed)
    assert expand(suite) == [req for _, req in pairs]


def test_expand_selections_and_their_errors(tmp_path: Path):
    suite = load_suite(write_suite(tmp_path))
    assert [r.name for r in select_rows(suite, ["G", "dnn-small"])] == ["DNN-small",
                                                                      "SASRec-3L"]
    assert [r.name for r in select_rows(suite, ["baseline"])] == ["MostPopular", "Random"]
    only = expand(suite, datasets=["other"], seeds=[5], only=["baseline"], size="small")
    assert [(r.model, r.datasets, r.seed, r.size) for r in only] == [
        ("MostPopular", ["other"], 5, "small"), ("Random", ["other"], 5, "small")]
    with pytest.raises(UnknownNameError, match="Did you mean 'synthetic'"):
        expand(suite, datasets=["synthetik"])
    with pytest.raises(UnknownNameError, match="SASRec-3L"):
        expand(suite, only=["SASRec-4L"])
    with pytest.raises(ConfigError, match="defined under recbench-v1"):
        expand(suite, protocol="loo")
    assert expand(suite, protocol="recbench") == expand(suite)  # the suite's own family
    with pytest.raises(ConfigError, match="leaves no run"):
        expand(suite, datasets=["other"], only=["DNN-small"])


def test_rows_find_their_records_by_settings(tmp_path: Path):
    from test_leaderboard import make_record

    suite = load_suite(write_suite(tmp_path, MINI.replace(
        "  - {name: SASRec-3L, group: G, model: SASRec-3L, settings: {epochs: 1}}",
        "  - {name: SASRec-3L, group: G, model: SASRec-3L}\n"
        "  - {name: SASRec-3L-e1, group: G, model: SASRec-3L, settings: {epochs: 1}}")))
    base = make_record("G", "SASRec-3L", "synthetic", 0.1, task="seq")
    one = base.model_copy(update={"key": "k1", "config": {"model": {"epochs": 1, "lr": 1e-3},
                                                          "eval": {"topk": 20}}})
    many = base.model_copy(update={"key": "k2", "config": {"model": {"epochs": 200}}})
    other = base.model_copy(update={"key": "k3", "group": "H"})
    assert row_matches(suite.row("SASRec-3L-e1"), one)
    assert not row_matches(suite.row("SASRec-3L-e1"), many)
    # both rows match `one`: the row that pins more settings wins
    assert assign_rows(suite, [one, many, other]) == {"k1": "SASRec-3L-e1", "k2": "SASRec-3L"}


def cli(*args: str):
    from recbench.cli.app import app

    return CliRunner().invoke(app, list(args))


def test_ls_suites_lists_the_recbench_suite():
    result = cli("ls", "suites")
    assert result.exit_code == 0, result.output
    assert "recbench" in result.output and "recbench-v1" in result.output
    assert "80" in result.output  # rows


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path: Path):
    home = tmp_path / "home"
    result = cli("suite", "run", "recbench", "--datasets", "synthetic", "--only", "G",
                 "--seeds", "0,1,2", "--size", "tiny", "--dry-run", "--home", str(home))
    assert result.exit_code == 0, result.output
    n_g = sum(r.group == "G" for r in load_suite("recbench").rows)
    assert f"{3 * n_g} runs" in result.output and "nothing started" in result.output
    assert not (home / "results").exists()
    bad = cli("suite", "run", "recbench", "--seeds", "0,x", "--dry-run")
    assert bad.exit_code != 0 and "comma-separated integers" in bad.output


def test_suite_run_runs_skips_and_reports_a_failing_row(tmp_path: Path, monkeypatch):
    from recbench.suites import execute

    home = tmp_path / "home"
    suite_file = write_suite(tmp_path, MINI.replace("datasets: [synthetic, other]",
                                                    "datasets: [synthetic]"))
    args = ("suite", "run", str(suite_file), "--only", "baseline", "--home", str(home))
    first = cli(*args)
    assert first.exit_code == 0, first.output
    records = list(ResultStore(home).records())
    # MostPopular: ctr + seq; Random: seq only; two seeds each
    assert sorted((r.model, r.task, r.seed) for r in records) == sorted(
        [("MostPopular", t, s) for t in ("ctr", "seq") for s in (0, 1)]
        + [("Random", "seq", s) for s in (0, 1)])
    assert "4 done, 0 skipped, 0 failed" in first.output
    again = cli(*args)  # a finished suite is all skipped: results are the cache
    assert again.exit_code == 0 and "0 done, 4 skipped, 0 failed" in again.output

    real = execute.run_one

    def flaky(req, reporter=None):
        if req.model == "Random" and req.seed == 1:
            raise RuntimeError("boom")
        return real(req, reporter)

    monkeypatch.setattr(execute, "run_one", flaky)
    failed = cli(*args, "--overwrite", "always")
    assert failed.exit_code == 1, failed.output
    assert "RuntimeError: boom" in failed.output and "3 done, 0 skipped, 1 failed" in failed.output

    board = cli("leaderboard", "--suite", str(suite_file), "--task", "seq", "--ci", "--home",
                str(home))
    assert board.exit_code == 0, board.output
    assert "Seed" in board.output and "±" in board.output  # two seeds per row


def test_suite_run_names_the_prepare_command_for_a_missing_dataset(tmp_path: Path):
    suite_file = write_suite(tmp_path, MINI.replace("[synthetic, other]", "[amazon-beauty]")
                             .replace("datasets: [synthetic]}", "}"))
    result = cli("suite", "run", str(suite_file), "--only", "MostPopular", "--home",
                 str(tmp_path / "home"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "recbench prepare amazon-beauty --protocol recbench" in result.output
