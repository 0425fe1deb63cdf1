"""The feature-extractor suite: the paper's tables as row sets over valid FE-SASRec settings."""

from __future__ import annotations

from recbench.models.seq.fe_sasrec import FESASRecConfig
from recbench.suites import expand, load_suite


def test_suite_rows_mirror_the_paper_tables():
    suite = load_suite("feature-extractor")
    assert suite.protocol == "loo-v1" and suite.seeds == [42, 43, 44]
    assert suite.metrics["seq"] == ["hr@5", "hr@10", "ndcg@5", "ndcg@10"]
    sections = {}
    for row in suite.rows:
        sections.setdefault(row.section, []).append(row.name)
    assert sections["base"] == ["base"]
    assert sections["RQ1"] == ["keyword", "summary", "expansion"]
    assert sections["RQ2"] == ["pool-max", "pool-last", "pool-eol"]
    assert sections["RQ3"] == ["tune-scft", "tune-cpt", "tune-sft", "tune-cpt-sft"]
    assert len(sections["RQ4"]) == 8 and len(sections["RQ5"]) == 6
    assert {"GRU4Rec", "BERT4Rec", "SASRec", "RecXplore"} <= set(sections["RQ6"])
    # the base configuration is the reference row of every table
    assert all(t.row_groups[0] == "base" for t in suite.tables)
    protocols = {t.protocol_key for t in suite.tables}
    assert protocols == {"sampled100", "full"}
    # the paper's greedy order is the default of `suite run`
    assert suite.greedy.reference == "base"
    assert suite.greedy.steps == ["RQ1", "RQ2", "RQ3", "RQ4", "RQ5", "RQ6"]


def test_every_feature_extractor_row_is_a_valid_config():
    suite = load_suite("feature-extractor")
    for row in suite.rows:
        if row.group == "feature-extractor":
            FESASRecConfig(**row.settings)  # a typo or a bad value raises here
    base = FESASRecConfig(**suite.row("base").settings)
    assert (base.text, base.tuning, base.pooling, base.adapter, base.pca_dim, base.fusion) == \
        ("sac", "frozen", "mean", "linear", None, "replace")
    assert not base.non_causal


def test_expand_gives_one_run_per_row_dataset_seed():
    suite = load_suite("feature-extractor")
    requests = expand(suite, datasets=["amazon-beauty"], seeds=[42, 43], only=["RQ2"],
                      size="tiny", protocol=None)
    assert len(requests) == 6  # 3 rows x 2 seeds; the base row runs with --only base,RQ2
    assert {r.sets["pooling"] for r in requests} == {"max", "last", "eol"}


# ---------------------------------------------------------------------------------------------
# The greedy order (`--grid greedy`, the suite's default) and the full grid

GREEDY = """
name: greedy-mini
version: 1
paper: test
protocol: recbench-v1
size: tiny
datasets: [synthetic]
seeds: [0]
metrics: {seq: [ndcg@10]}
greedy: {reference: base, steps: [S1, S2], metric: ndcg@10, metrics_protocol: full}
tables:
  - {name: s1, task: seq, metric: ndcg@10, metrics_protocol: full, row_groups: [base, S1]}
  - {name: s2, task: seq, metric: ndcg@10, metrics_protocol: full, row_groups: [base, S2]}
rows:
  - {name: base, group: G, model: SASRec, row_group: base, settings: {epochs: 1, dim: 8, heads: 1}}
  - {name: wide, group: G, model: SASRec, row_group: S1, settings: {epochs: 1, dim: 16, heads: 1}}
  - {name: wider, group: G, model: SASRec, row_group: S1, settings: {epochs: 1, dim: 24, heads: 1}}
  - {name: deep1, group: G, model: SASRec, row_group: S2,
     settings: {epochs: 1, dim: 8, heads: 1, n_layers: 1}}
  - {name: deep2, group: G, model: SASRec, row_group: S2,
     settings: {epochs: 1, dim: 8, heads: 1, n_layers: 2}}
  - {name: Pop, group: baseline, model: MostPopular, row_group: S2}
"""


def _fake_runs(scores):
    """A runner that 'trains' nothing: each run's record scores `scores(settings)`."""
    from types import SimpleNamespace

    seen = []

    def run(planned):
        for r in planned:
            value = scores(r.request.sets)
            record = SimpleNamespace(metrics={"full": {"ndcg@10": value}})
            r.outcomes = [SimpleNamespace(dataset=r.dataset, record=record)]
            r.status = "done"
            seen.append((r.row, dict(r.request.sets)))
        return list(planned)

    return run, seen


def _greedy_suite(tmp_path, text=GREEDY):
    path = tmp_path / "greedy-mini.yaml"
    path.write_text(text)
    return load_suite(path)


def test_greedy_carries_each_steps_winner_and_baselines_run_as_written(tmp_path):
    from recbench.suites import expand_rows
    from recbench.suites.execute import run_greedy

    # deep2 with 3 layers: no row of S2 is the configuration carried into it
    suite = _greedy_suite(tmp_path, GREEDY.replace("n_layers: 2", "n_layers: 3"))
    # wider wins S1 (dim 24); in S2, 1 layer beats 2 only on top of dim 24
    run, seen = _fake_runs(lambda s: s.get("dim", 0) / 100 + (0.5 if s.get("n_layers") == 1
                                                              and s.get("dim") == 24 else 0))
    runs, resolved, steps = run_greedy(suite, lambda s: expand_rows(s), run)
    assert [s.winner for s in steps] == ["wider", "deep1"]
    assert steps[0].scores == {"base": 0.08, "wide": 0.16, "wider": 0.24}
    assert steps[1].carried == {"dim": 24, "n_layers": 1}
    by_row = dict(seen)
    assert by_row["deep1"]["dim"] == 24 and by_row["deep2"]["dim"] == 24  # carried on
    assert by_row["Pop"] == {}  # a baseline runs as written
    assert [r.row for r in runs][:1] == ["base"]  # the reference runs first
    rows = {r.name: r for r in resolved.rows}
    # S2's reference (the carried configuration: `wider`) is a row of its table
    assert rows["S2-ref"].section == "S2" and rows["S2-ref"].settings["dim"] == 24
    assert rows["deep1"].settings == {"epochs": 1, "dim": 24, "heads": 1, "n_layers": 1}


def test_greedy_ties_keep_the_carried_configuration_and_no_duplicate_reference(tmp_path):
    from recbench.suites import expand_rows
    from recbench.suites.execute import run_greedy

    suite = _greedy_suite(tmp_path)
    run, _ = _fake_runs(lambda s: 0.1)  # every candidate equal
    _, resolved, steps = run_greedy(suite, lambda s: expand_rows(s), run)
    assert [s.winner for s in steps] == ["base", "base"] and steps[1].carried == {}
    # deep2 (n_layers 2 = SASRec's default) is the same run as base: no S2-ref row added
    assert "S2-ref" not in {r.name for r in resolved.rows}


def test_full_grid_is_the_product_less_repeats(tmp_path):
    from recbench.suites.execute import full_grid

    grid = full_grid(_greedy_suite(tmp_path))
    names = [r.name for r in grid.rows]
    # S1: base dim | wide | wider (3) x S2: default | deep1 (deep2 = default layers): 6 + Pop
    assert len(names) == 7 and "Pop" in names and "base" in names
    assert "wider+deep1" in names and "deep2" not in names
    assert grid.row("wider+deep1").settings == {"epochs": 1, "dim": 24, "heads": 1,
                                                "n_layers": 1}


def test_suite_run_greedy_end_to_end_and_its_leaderboard(tmp_path):
    from typer.testing import CliRunner

    from recbench.cli.app import app
    from recbench.suites import load_suite as load

    home = tmp_path / "home"
    path = tmp_path / "greedy-mini.yaml"
    path.write_text(GREEDY)
    result = CliRunner().invoke(app, ["suite", "run", str(path), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "greedy order" in result.output
    ran = load(home / "suites" / "greedy-mini-greedy.yaml")
    s1 = {r.name: r for r in ran.rows if r.section == "S1"}
    # the S2 rows carry the S1 winner's width: the resolved suite says which one won
    header = (home / "suites" / "greedy-mini-greedy.yaml").read_text().splitlines()
    winner = next(line for line in header if line.startswith("# S1: winner")).split()[3]
    width = s1[winner].settings["dim"] if winner in s1 else 8
    assert all(r.settings["dim"] == width for r in ran.rows if r.name.startswith("deep"))
    board = CliRunner().invoke(app, ["leaderboard", "--suite", str(home / "suites" /
                                     "greedy-mini-greedy.yaml"), "--home", str(home)])
    assert board.exit_code == 0, board.output
    assert "deep1" in board.output and "wider" in board.output
    dry = CliRunner().invoke(app, ["suite", "run", str(path), "--grid", "full", "--dry-run",
                                   "--home", str(home)])
    assert dry.exit_code == 0 and "7 runs" in dry.output, dry.output
    bad = CliRunner().invoke(app, ["suite", "run", "recbench", "--grid", "greedy"])
    assert bad.exit_code != 0 and "no greedy order" in bad.output
