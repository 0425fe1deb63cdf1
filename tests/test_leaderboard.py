"""Leaderboards rebuilt from synthetic records: layout rules, marks, every format, and the CLI."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.core.errors import UnknownNameError
from recbench.results.leaderboard import (
    LeaderboardTable,
    build_table,
    render,
    render_many,
    scatter_svg,
)
from recbench.results.record import Hardware, LatencyStats, Record
from recbench.results.store import ResultStore

HARDWARE = Hardware(cpu="test-cpu", cores=4, threads_used=1, memory_gb=8.0,
                    platform="linux", python="3.11")


def make_record(group: str, model: str, dataset: str, value: float | None, *,
                task: str = "ctr", metric: str | None = None, protocol: str | None = None,
                size: str = "small", version: str = "v1aaaaaaaaaaaaaa",
                protocol_version: str = "p1", latency_ms: float | None = 1.0, seed: int = 0,
                finished_at: str = "2025-01-01T00:00:00+00:00", smoke: bool = False,
                mode: str = "train", extra: dict[str, float] | None = None) -> Record:
    """A plausible finished-run record; `value` goes under the task's default metric/protocol."""
    metric = metric or ("gauc" if task == "ctr" else "ndcg@10")
    protocol = protocol or ("ctr" if task == "ctr" else "full")
    values = dict(extra or {})
    if value is not None:
        values[metric] = value
    latency = None if latency_ms is None else LatencyStats(
        mean_ms=latency_ms, p50_ms=latency_ms, p95_ms=latency_ms * 1.5, n=100, warmup=10,
        threads=1)
    key = f"{group}-{model}-{dataset}-{version[:4]}-{seed}-{finished_at[:19]}-{int(smoke)}"
    key = re.sub(r"[^A-Za-z0-9]", "", key)
    return Record(
        key=key, group=group, model=model, model_id=model, dataset=dataset,
        dataset_size=size, dataset_version=version, protocol_version=protocol_version,
        task=task, mode=mode, metrics={protocol: values}, latency=latency, seed=seed,
        config={"seed": seed}, config_hash="c0ffee", hardware=HARDWARE,
        recbench_version="0.1.0", started_at=finished_at, finished_at=finished_at, smoke=smoke)


def ctr_records() -> list[Record]:
    """Three models on two datasets; DNN is best on mind, GDCN on goodreads."""
    return [
        make_record("A", "DNN", "mind", 0.70, latency_ms=0.4),
        make_record("A", "DNN", "goodreads", 0.58, latency_ms=0.6),
        make_record("A", "GDCN", "mind", 0.66, latency_ms=0.7),
        make_record("A", "GDCN", "goodreads", 0.60, latency_ms=0.9),
        make_record("B", "DNN_text", "mind", 0.68, latency_ms=1.0),
        make_record("B", "DNN_text", "goodreads", 0.55, latency_ms=1.2),
    ]


def md_row(text: str, model: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if re.match(rf"\| [^|]+ \| {re.escape(model)} \|",
                                                              ln))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_rows_in_group_order_and_columns_by_name():
    records = [make_record("C", "DNN_emb", "mind", 0.71), make_record("baseline", "MostPop",
                                                                       "mind", 0.5),
               *ctr_records()]
    table = build_table(records, "ctr")
    assert [c.label for c in table.columns] == ["goodreads", "mind"]
    assert [(r.group, r.model_id) for r in table.rows] == [
        ("baseline", "MostPop"), ("A", "DNN"), ("A", "GDCN"), ("B", "DNN_text"), ("C", "DNN_emb")]
    assert (table.metric, table.protocol) == ("gauc", "ctr")


def test_best_bold_second_underlined_in_md():
    text = render(build_table(ctr_records(), "ctr"), "md")
    header = md_row(text, "Model")
    assert header == ["Group", "Model", "goodreads", "mind", "Overall", "Latency (ms)"]
    dnn, gdcn, text_row = md_row(text, "DNN"), md_row(text, "GDCN"), md_row(text, "DNN_text")
    assert dnn[3] == "**0.7000**" and text_row[3] == "<u>0.6800</u>" and gdcn[3] == "0.6600"
    assert gdcn[2] == "**0.6000**" and dnn[2] == "<u>0.5800</u>" and text_row[2] == "0.5500"
    # Overall: DNN 0.64, GDCN 0.63, DNN_text 0.615.
    assert dnn[4] == "**0.6400**" and gdcn[4] == "<u>0.6300</u>" and text_row[4] == "0.6150"
    # Latency: lower is better (DNN 0.5 ms, GDCN 0.8 ms, DNN_text 1.1 ms).
    assert dnn[5] == "**0.50**" and gdcn[5] == "<u>0.80</u>" and text_row[5] == "1.10"
    assert "gauc" in text.splitlines()[0] and "6 records" in text.splitlines()[0]
    assert dnn[0] == "A" and text_row[0] == "B"


def test_lower_is_better_metric_flips_marks():
    records = [make_record("A", m, "mind", None, extra={"logloss": v, "gauc": 0.6})
               for m, v in (("X", 0.40), ("Y", 0.50), ("Z", 0.45))]
    table = build_table(records, "ctr", metric="logloss")
    assert not table.higher_is_better
    marks = {r.model_id: m[0] for r, m in zip(table.rows, table.marks(), strict=True)}
    assert marks == {"X": "best", "Z": "second", "Y": None}


def test_two_versions_of_one_dataset_never_share_a_column():
    records = [
        make_record("A", "DNN", "mind", 0.70, version="3f2a" + "0" * 12),
        make_record("A", "DNN", "mind", 0.60, version="9b1c" + "0" * 12),
        make_record("A", "GDCN", "mind", 0.65, version="9b1c" + "0" * 12),
        make_record("A", "DNN", "goodreads", 0.55),
    ]
    table = build_table(records, "ctr")
    labels = [c.label for c in table.columns]
    assert labels == ["goodreads", "mind (small, 3f2a…)", "mind (small, 9b1c…)"]
    dnn = next(r for r in table.rows if r.model_id == "DNN")
    assert dnn.cells == (0.55, 0.70, 0.60)
    assert next(r for r in table.rows if r.model_id == "GDCN").cells == (None, None, 0.65)


def test_sizes_label_columns_when_not_uniform():
    records = [make_record("A", "DNN", "mind", 0.7, size="tiny"),
               make_record("A", "DNN", "goodreads", 0.6, size="small")]
    assert [c.label for c in build_table(records, "ctr").columns] == [
        "goodreads (small)", "mind (tiny)"]


def test_overall_is_over_the_datasets_every_row_has():
    records = [*ctr_records(), make_record("A", "DCNv2", "mind", 0.99, latency_ms=4.0)]
    table = build_table(records, "ctr")
    dcn = next(r for r in table.rows if r.model_id == "DCNv2")
    assert dcn.partial and "partial" in dcn.flags
    # goodreads lacks DCNv2, so Overall is mind alone for every row: no row is crowned for
    # being the only complete one, and the note says which datasets Overall covers.
    assert table.overall_columns == (1,)
    assert any("Overall = mean over mind" in n and "goodreads left out" in n
               for n in table.footnotes)
    by_model = {r.model_id: r.overall for r in table.rows}
    assert by_model == pytest.approx({"DCNv2": 0.99, "DNN": 0.70, "GDCN": 0.66,
                                      "DNN_text": 0.68})
    text = render(table, "md")
    assert md_row(text, "DCNv2")[2] == "–" and md_row(text, "DCNv2")[4] == "**0.9900**"
    assert md_row(text, "DNN")[4] == "<u>0.7000</u>"


def test_no_shared_dataset_means_no_overall():
    records = [make_record("A", "DNN", "mind", 0.7), make_record("A", "GDCN", "goodreads", 0.6)]
    table = build_table(records, "ctr")
    assert all(r.overall is None for r in table.rows) and table.overall_columns == ()
    assert any("no dataset is shared by every row" in n for n in table.footnotes)


def test_latency_column_is_mean_over_the_row_records():
    records = [*ctr_records(), make_record("A", "NoLat", "mind", 0.5, latency_ms=None),
               make_record("A", "NoLat", "goodreads", 0.5, latency_ms=None)]
    table = build_table(records, "ctr")
    by_model = {r.model_id: r.latency_ms for r in table.rows}
    assert by_model["DNN"] == pytest.approx(0.5) and by_model["DNN_text"] == pytest.approx(1.1)
    assert by_model["NoLat"] is None
    assert md_row(render(table, "md"), "NoLat")[5] == "–"


def test_seeds_are_aggregated_and_an_older_config_is_superseded():
    records = [
        make_record("A", "DNN", "mind", 0.60, seed=0, finished_at="2025-01-01T00:00:00+00:00"),
        make_record("A", "DNN", "mind", 0.65, seed=1, finished_at="2025-03-01T00:00:00+00:00"),
        make_record("A", "DNN", "mind", 0.62, seed=2, finished_at="2025-02-01T00:00:00+00:00"),
    ]
    old = make_record("A", "DNN", "mind", 0.10, seed=0, finished_at="2024-01-01T00:00:00+00:00")
    records.append(old.model_copy(update={"config_hash": "older", "key": "olderconfig"}))
    table = build_table(records, "ctr")
    (row,) = table.rows
    values = np.array([0.60, 0.65, 0.62])
    assert row.cells == pytest.approx((values.mean(),)) and row.n_seeds == (3,)
    assert row.stds == pytest.approx((values.std(ddof=1),))
    assert "superseded:1" in row.flags and table.n_records == 3
    assert any("1 older record(s) superseded" in n for n in table.footnotes)
    text = render(table, "md")
    assert f"{values.mean():.4f} ± {values.std(ddof=1):.4f}" in text
    assert md_row(text, "Model")[-1] == "Seeds" and md_row(text, "DNN")[-1] == "3"


def test_smoke_records_are_excluded_unless_asked():
    records = [*ctr_records(), make_record("A", "Tiny", "mind", 0.9, smoke=True)]
    table = build_table(records, "ctr")
    assert "Tiny" not in {r.model_id for r in table.rows}
    assert any("1 smoke record" in n for n in table.footnotes)
    with_smoke = build_table(records, "ctr", include_smoke=True)
    tiny = next(r for r in with_smoke.rows if r.model_id == "Tiny")
    assert "smoke" in tiny.flags and tiny.label.endswith("[smoke]")


def test_records_without_the_metric_or_protocol_are_left_out():
    records = [
        make_record("G", "SASRec", "mind", 0.05, task="seq"),
        make_record("G", "GRU4Rec", "mind", None, task="seq", extra={"hr@10": 0.1}),
        make_record("G", "BERT4Rec", "mind", 0.2, task="seq", protocol="sampled100"),
        *ctr_records(),
    ]
    table = build_table(records, "seq")
    assert [r.model_id for r in table.rows] == ["SASRec"]
    sampled = build_table(records, "seq", protocol="sampled100")
    assert [r.model_id for r in sampled.rows] == ["BERT4Rec"]


def test_unknown_names_get_close_matches():
    with pytest.raises(UnknownNameError, match="Did you mean 'gauc'"):
        build_table(ctr_records(), "ctr", metric="gaucc")
    with pytest.raises(UnknownNameError, match="protocol"):
        build_table(ctr_records(), "seq", protocol="sampled")
    with pytest.raises(UnknownNameError, match="'mind'"):
        build_table(ctr_records(), "ctr", datasets=["minds"])


def test_datasets_option_filters_and_orders_columns():
    table = build_table(ctr_records(), "ctr", datasets=["mind", "goodreads"])
    assert [c.label for c in table.columns] == ["mind", "goodreads"]
    only = build_table(ctr_records(), "ctr", datasets=["mind"])
    assert [c.label for c in only.columns] == ["mind"]
    assert not any(r.partial for r in only.rows)


def test_zero_shot_and_finetuned_runs_are_separate_rows():
    records = [make_record("E", "Qwen2-0.5B", "mind", 0.55, mode="zero-shot"),
               make_record("E", "Qwen2-0.5B", "mind", 0.72, mode="finetune")]
    labels = [r.label for r in build_table(records, "ctr").rows]
    assert labels == ["Qwen2-0.5B (finetune)", "Qwen2-0.5B (zero-shot)"]


def test_csv_parses_back_with_the_numbers():
    records = [*ctr_records(), make_record("A", "DCNv2", "mind", 0.123456789, latency_ms=4.25)]
    table = build_table(records, "ctr")
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [r["model"] for r in rows] == ["DCNv2", "DNN", "GDCN", "DNN_text"]
    dnn = rows[1]
    assert float(dnn["mind"]) == 0.70 and float(dnn["goodreads"]) == 0.58
    # DCNv2 has no goodreads run, so Overall is over mind alone
    assert float(dnn["overall"]) == pytest.approx(0.70) and float(dnn["latency_ms"]) == 0.5
    dcn = rows[0]
    assert float(dcn["mind"]) == 0.123456789 and dcn["goodreads"] == ""
    assert dcn["overall_partial"] == "true" and float(dcn["latency_ms"]) == 4.25


def test_json_round_trip():
    table = build_table([*ctr_records(), make_record("A", "DCNv2", "mind", 0.61)], "ctr")
    data = json.loads(render(table, "json"))
    assert data["metric"] == "gauc" and data["n_records"] == 7
    assert LeaderboardTable.from_dict(data) == table
    both = json.loads(render_many([table, table], "json"))
    assert isinstance(both, list) and len(both) == 2


def test_latex_marks_and_escapes():
    text = render(build_table(ctr_records(), "ctr"), "latex")
    assert r"\textbf{0.7000}" in text and r"\underline{0.6800}" in text
    assert r"DNN\_text" in text and r"\begin{tabular}" in text and r"\bottomrule" in text
    assert text.count(r"\midrule") == 2  # after the header and between groups A and B


def seq_and_ctr_records() -> list[Record]:
    return [*ctr_records(),
            make_record("baseline", "MostPopular", "mind", 0.01, task="seq", latency_ms=0.01),
            make_record("G", "SASRec", "mind", 0.05, task="seq", latency_ms=20.0),
            make_record("J", "SID-Llama <3>", "mind", 0.07, task="seq", latency_ms=9000.0)]


def test_html_is_one_self_contained_page():
    tables = [build_table(seq_and_ctr_records(), t) for t in ("ctr", "seq")]
    page = render(tables[0], "html")
    assert page.count("<html") == 1 and "<svg" in page and "<table>" in page
    both = render_many(tables, "html")
    assert both.count("<svg") == 2 and both.count("<section") == 2
    assert "SID-Llama &lt;3&gt;" in both and "<3>" not in both
    for attr in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", both, flags=re.I):
        assert attr.startswith("#"), f"external reference {attr!r}"
    assert "<script" not in both and "@import" not in both and "url(" not in both
    assert "<b>0.7000</b>" in both and "<u>0.6800</u>" in both


def test_scatter_plots_every_row_with_latency():
    page = render(build_table(seq_and_ctr_records(), "seq"), "html")
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert svg.count("<circle") == 3
    assert "1 ms" in svg and "1 s" in svg  # log axis ticks span ms to seconds


# ---------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def cli_home(home: Path) -> Path:
    store = ResultStore(home)
    for record in seq_and_ctr_records():
        store.write(record, predictions=None)
    return home


def invoke(*args: str):
    from recbench.cli.app import app

    return CliRunner().invoke(app, ["leaderboard", *args])


def test_cli_prints_both_tasks(cli_home: Path):
    result = invoke("--home", str(cli_home))
    assert result.exit_code == 0, result.output
    assert "CTR (pair-wise) leaderboard" in result.output
    assert "SeqRec (list-wise) leaderboard" in result.output
    assert "**0.7000**" in result.output


def test_cli_one_task_csv(cli_home: Path):
    result = invoke("--home", str(cli_home), "--task", "seq", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [r["model"] for r in rows] == ["MostPopular", "SASRec", "SID-Llama <3>"]
    assert float(rows[1]["mind"]) == 0.05


def test_cli_writes_html_file(cli_home: Path, tmp_path: Path):
    out = tmp_path / "board" / "index.html"
    out.parent.mkdir()
    out.write_text("old")
    result = invoke("--home", str(cli_home), "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    page = out.read_text()
    assert page.count("<svg") == 2 and page.startswith("<!doctype html>")


def test_cli_unknown_metric_is_one_line_with_choices(cli_home: Path):
    result = invoke("--home", str(cli_home), "--task", "ctr", "--metric", "gaucc")
    assert result.exit_code != 0
    assert "Did you mean 'gauc'" in result.output and "Traceback" not in result.output


def test_cli_metric_without_task_picks_the_task(cli_home: Path):
    result = invoke("--home", str(cli_home), "--metric", "ndcg@10", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["task"] == "seq"


def test_cli_no_records(home: Path):
    result = invoke("--home", str(home))
    assert result.exit_code == 0
    assert "no results yet" in result.output and "recbench run" in result.output


def test_cli_explains_when_every_record_was_left_out(home: Path):
    ResultStore(home).write(make_record("A", "DNN", "mind", 0.7, smoke=True), predictions=None)
    result = invoke("--home", str(home), "--task", "ctr")
    assert result.exit_code == 0
    assert "no ctr results to show" in result.output and "--include-smoke" in result.output
    shown = invoke("--home", str(home), "--task", "ctr", "--include-smoke")
    assert "DNN [smoke]" in shown.output


# ---------------------------------------------------------------------------------------------
# Seeds, confidence intervals and significance, against scipy on hand-made records written
# through the real store (records + predictions).


def ndcg10(ranks: np.ndarray) -> np.ndarray:
    """Independent reference: per-row NDCG@10 of a single relevant item at 1-based `rank`."""
    return np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)


def seq_record(store: ResultStore, group: str, model: str, ranks: np.ndarray, seed: int = 0,
               dataset: str = "mind") -> Record:
    n = ranks.shape[0]
    record = make_record(group, model, dataset, float(ndcg10(ranks).mean()), task="seq",
                         seed=seed, mode="none" if group == "baseline" else "train")
    preds = pl.DataFrame({
        "row": np.arange(n, dtype=np.int32), "user_id": np.arange(n) + 1000,
        "target": np.zeros(n, dtype=np.int64), "rank_full": ranks.astype(np.int64),
        "rank_sampled100": ranks.astype(np.int64),
        "topk": pl.Series([[0]] * n).cast(pl.List(pl.Int32))})
    published = store.write(record, preds)
    # the store returns a Published (record, path, ...); older versions a (record, path) tuple
    return published.record if hasattr(published, "record") else published[0]


@pytest.fixture
def seeded(home: Path):
    """A baseline, a strong model with three seeds, a model the baseline's equal, a weak one."""
    rng = np.random.default_rng(7)
    n = 60
    store = ResultStore(home)
    base = rng.integers(2, 14, n)
    strong = [np.maximum(1, base - rng.integers(1, 6, n)) for _ in range(3)]
    same = base.copy()
    same[:4] = base[:4] + np.array([1, -1, 1, -1])  # a nearly identical ranking
    weak = base + rng.integers(3, 12, n)
    seq_record(store, "baseline", "MostPopular", base)
    for seed, ranks in enumerate(strong):
        seq_record(store, "G", "Strong", ranks, seed=seed)
    seq_record(store, "G", "Same", same)
    seq_record(store, "G", "Weak", weak)
    table = build_table(store.records(), "seq", store=store)
    return table, {"base": base, "strong": strong, "same": same, "weak": weak}


def test_seed_interval_is_scipy_t_interval(seeded):
    from scipy import stats

    table, ranks = seeded
    row = next(r for r in table.rows if r.model_id == "Strong")
    values = np.array([ndcg10(r).mean() for r in ranks["strong"]])
    low, high = stats.t.interval(0.95, df=2, loc=values.mean(), scale=stats.sem(values))
    assert row.n_seeds == (3,) and row.ci_methods == ("t",)
    assert row.cells[0] == pytest.approx(values.mean())
    assert row.stds[0] == pytest.approx(values.std(ddof=1))
    assert row.cis[0] == pytest.approx((low, high))
    # one dataset, so Overall's interval is the cell's
    assert row.overall_ci == pytest.approx((low, high)) and row.overall_ci_method == "t"


def test_markers_follow_scipy_paired_t_test_against_the_strongest_baseline(seeded):
    from scipy import stats

    table, ranks = seeded
    base = ndcg10(ranks["base"])
    per_user_strong = np.mean([ndcg10(r) for r in ranks["strong"]], axis=0)  # seeds averaged
    expected = {}
    for name, values in (("Strong", per_user_strong), ("Same", ndcg10(ranks["same"])),
                         ("Weak", ndcg10(ranks["weak"]))):
        t = stats.ttest_rel(values, base)
        expected[name] = ("" if t.pvalue >= 0.05 else "*" if t.statistic > 0 else "↓")
    assert expected == {"Strong": "*", "Same": "", "Weak": "↓"}  # the fixture's design
    got = {r.model_id: r.markers[0] for r in table.rows if not r.baseline}
    assert got == expected
    assert next(r for r in table.rows if r.model_id == "MostPopular").markers == ("",)
    text = render(table, "md")
    assert md_row(text, "Strong")[2].endswith("\\*") and "↓" in md_row(text, "Weak")[2]


def test_single_seed_interval_is_a_paired_bootstrap(seeded):
    from recbench.metrics.intervals import bootstrap_means

    table, ranks = seeded
    same = next(r for r in table.rows if r.model_id == "Same")
    base = next(r for r in table.rows if r.model_id == "MostPopular")
    assert same.ci_methods == ("bootstrap",) and base.ci_methods == ("bootstrap",)
    # an independent percentile bootstrap with the same resampling of the 60 users
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 60, size=(1000, 60))
    reference = np.percentile(ndcg10(ranks["same"])[idx].mean(axis=1), [2.5, 97.5])
    assert same.cis[0] == pytest.approx(tuple(reference))
    # paired: both rows resample the same users, so their replicate differences are exact
    diff = bootstrap_means(ndcg10(ranks["same"])) - bootstrap_means(ndcg10(ranks["base"]))
    assert np.allclose(diff, (ndcg10(ranks["same"]) - ndcg10(ranks["base"]))[idx].mean(axis=1))
    assert any("paired bootstrap over test users" in n for n in table.footnotes)


def test_bold_is_shared_by_rows_not_significantly_different(home: Path):
    store = ResultStore(home)
    rng = np.random.default_rng(3)
    a = rng.integers(1, 30, 80)
    a[0] = 1
    b = a.copy()
    b[0] = 3  # worse on one user only: visibly lower, not significantly different
    c = a + 15  # clearly worse than both
    for model, ranks in (("A1", a), ("B1", b), ("C1", c)):
        seq_record(store, "G", model, ranks)
    table = build_table(store.records(), "seq", store=store)
    marks = {r.model_id: r.marks[0] for r in table.rows}
    assert marks == {"A1": "best", "B1": "best", "C1": "second"}
    # without predictions the same values are compared at display precision
    plain = build_table(store.records(), "seq")
    assert {r.model_id: r.marks[0] for r in plain.rows} == {"A1": "best", "B1": "second",
                                                             "C1": None}
    assert any("could not be tested" in n for n in plain.footnotes)


def test_ci_in_every_format(seeded):
    table, _ = seeded
    strong = next(r for r in table.rows if r.model_id == "Strong")
    low, high = strong.cis[0]
    assert f"[{low:.4f}, {high:.4f}]" not in render(table, "md")
    assert f"[{low:.4f}, {high:.4f}]" in render(table, "md", ci=True)
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    row = next(r for r in rows if r["model"] == "Strong")
    assert float(row["mind_ci_low"]) == low and row["mind_ci_method"] == "t"
    assert row["mind_n_seeds"] == "3" and row["mind_vs_baseline"] == "better"
    data = json.loads(render(table, "json"))
    assert LeaderboardTable.from_dict(data) == table
    page = render(table, "html")
    assert page.count('class="errorbar"') == len(table.rows)  # Overall CIs as error bars
    assert "95% CI" in page


def test_cli_suite_leaderboard_with_ci(home: Path, seeded, tmp_path: Path):
    suite_file = tmp_path / "mini.yaml"
    suite_file.write_text("""
name: mini
version: 1
paper: test
protocol: p1
datasets: [mind]
tables: [{name: seq, title: Mini table, task: seq, metric: ndcg@10}]
rows:
  - {name: MostPopular, group: baseline, model: MostPopular}
  - {name: strong-row, group: G, model: Strong}
""")
    result = invoke("--home", str(home), "--suite", str(suite_file), "--ci")
    assert result.exit_code == 0, result.output
    assert "suite mini v1, Mini table" in result.output
    assert "strong-row" in result.output and "Same" not in result.output  # only the suite's rows
    assert "±" in result.output and "95% CI: 1 cell(s): t-interval over seeds" in result.output


def test_error_bars_stay_inside_the_plot(seeded):
    table, _ = seeded
    svg, _ = scatter_svg(table)
    bars = re.findall(r'class="errorbar" d="M([\d.]+) ([\d.-]+)V([\d.-]+)', svg)
    assert len(bars) == len(table.rows)
    top, bottom = 20, 520 - 56  # the plot area of scatter_svg's default size
    for _, y0, y1 in bars:
        assert top <= float(y1) <= float(y0) <= bottom


def test_cli_protocol_filters_records_by_dataset_protocol(home: Path):
    store = ResultStore(home)
    store.write(make_record("A", "DNN", "mind", 0.7, protocol_version="recbench-v1"), None)
    store.write(make_record("G", "SASRec", "mind", 0.2, task="seq",
                            protocol_version="loo-v1"), None)
    result = invoke("--home", str(home), "--protocol", "loo", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "SASRec" in result.output and "DNN" not in result.output
    unknown = invoke("--home", str(home), "--protocol", "temporal")
    assert unknown.exit_code != 0 and "loo-v1" in unknown.output
