"""`recbench compare`: paired tests on the same rows, from saved predictions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError
from recbench.results.compare import compare, find_run
from recbench.results.store import ResultStore
from recbench.runner import RunRequest, run


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    for model in ("MostPopular", "Random"):
        run(RunRequest(group="baseline", model=model, datasets=["synthetic"], size="tiny",
                       home=home, sets={"latency_samples": 5}))
    return home


def test_seq_comparison_matches_scipy_on_per_row_ndcg(home):
    store = ResultStore(home)
    a = find_run(store, "MostPopular", "synthetic", "seq")
    b = find_run(store, "Random", "synthetic", "seq")
    result = compare(store, a, b)
    ra = store.predictions(a).sort("row")["rank_full"].to_numpy()
    rb = store.predictions(b).sort("row")["rank_full"].to_numpy()
    va = np.where(ra <= 10, 1 / np.log2(ra + 1), 0.0)
    vb = np.where(rb <= 10, 1 / np.log2(rb + 1), 0.0)
    assert result.stats["n"] == len(va)
    assert result.stats["t_pvalue"] == pytest.approx(stats.ttest_rel(va, vb).pvalue)
    assert result.stats["mean_a"] == pytest.approx(a.metrics["full"]["ndcg@10"])


def test_ctr_comparison_is_per_user(home):
    store = ResultStore(home)
    a = find_run(store, "MostPopular", "synthetic", "ctr")
    b = find_run(store, "Random", "synthetic", "ctr")
    result = compare(store, a, b)
    assert result.unit == "user" and result.stats["n"] > 5


def test_unknown_run_is_clear(home):
    with pytest.raises(DataError, match="no finished run"):
        find_run(ResultStore(home), "SASRec", "synthetic", "seq")


def test_cli(home):
    out = CliRunner().invoke(app, ["compare", "MostPopular", "Random", "--dataset", "synthetic",
                                   "--task", "seq", "--home", str(home)])
    assert out.exit_code == 0, out.output
    assert "Wilcoxon" in out.output
