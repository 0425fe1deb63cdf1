"""`recbench attributes score|show` on the synthetic dataset, with a stand-in scorer (no LLM)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.items.attributes import scores as attribute_scores
from tests.test_guided import fake_score

runner = CliRunner()


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    calls = []

    def score(self, system, messages, names):
        calls.append(len(messages))
        return fake_score(self, system, messages, names)

    monkeypatch.setattr(attribute_scores.AspectScorer, "score", score)
    monkeypatch.setattr(attribute_scores.AspectScorer, "identity",
                        lambda self: {"backend": "stand-in"})
    result = runner.invoke(app, ["prepare", "synthetic", "--protocol", "loo", "--size", "tiny",
                                 "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    return tmp_path, calls


def test_score_caches_and_prints_profiles(prepared):
    home, calls = prepared
    args = ["attributes", "score", "synthetic", "--size", "tiny", "--aspects", "movies",
            "--home", str(home), "--show", "2"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "computed" in first.output and "story complexity" in first.output
    assert len(calls) == 2  # items, then users
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "cache hit" in again.output
    assert len(calls) == 2  # nothing rescored
    shown = runner.invoke(app, ["attributes", "show", "synthetic", "3", "--size", "tiny",
                                "--aspects", "movies", "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    assert "item 3" in shown.output and "movie length" in shown.output
    user = runner.invoke(app, ["attributes", "show", "synthetic", "--user", "0", "--size",
                               "tiny", "--aspects", "movies", "--home", str(home)])
    assert user.exit_code == 0, user.output
    assert "user 0" in user.output
    assert len(calls) == 2


def test_errors_are_one_line(prepared):
    home, _ = prepared
    no_table = runner.invoke(app, ["attributes", "score", "synthetic", "--size", "tiny",
                                   "--home", str(home)])
    assert no_table.exit_code != 0 and "no built-in aspect table" in no_table.output
    both = runner.invoke(app, ["attributes", "show", "synthetic", "--size", "tiny",
                               "--home", str(home)])
    assert both.exit_code != 0 and "ITEM id or --user" in both.output
    llama = runner.invoke(app, ["attributes", "score", "synthetic", "--size", "tiny",
                                "--aspects", "games", "--backend", "llamacpp",
                                "--home", str(home)])
    assert llama.exit_code != 0 and "does not expose" in llama.output
