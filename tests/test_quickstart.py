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
