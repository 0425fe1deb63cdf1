"""Issue 13, security and messages: names as paths, redirects, file modes, markup, full disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import ConfigError
from recbench.core.names import check_name, path_component, within

# --- class 1: names are paths -------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "/abs", "-x", ".hidden", "a\x00b",
                                 "a b", "x" * 129, "amazon-x/../../y", "a\\b", "\u00e9t\u00e9"])
def test_check_name_rejects_what_could_be_a_path(bad):
    with pytest.raises(ConfigError, match="dataset name"):
        check_name(bad, "dataset name")


@pytest.mark.parametrize("good", ["mind", "amazon-beauty", "ml-1m", "a.b_c-1", "X" * 128, "0"])
def test_check_name_accepts_safe_names(good):
    assert check_name(good, "dataset name") == good


@pytest.mark.parametrize(("raw", "mapped"), [
    ("SASRec", "SASRec"), ("hf:ORG/NAME", "hf_ORG_NAME"), ("openai:gpt-4o", "openai_gpt-4o"),
    ("..", "_."), (".", "_"), ("", "_"), ("/abs/dir", "_abs_dir"), ("../../x", "_._.._x"),
])
def test_path_component_is_one_safe_component(raw, mapped, tmp_path):
    assert path_component(raw) == mapped
    assert within(tmp_path, path_component(raw)).parent == tmp_path


def test_within_refuses_escapes(tmp_path):
    assert within(tmp_path, "a", "b") == tmp_path / "a" / "b"
    for parts in [("..", "x"), ("/etc",), ("a", "../../x"), ()]:
        with pytest.raises(ConfigError, match="escapes"):
            within(tmp_path, *parts)


def test_within_refuses_a_symlinked_folder_but_allows_a_symlinked_leaf(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "planted")
    with pytest.raises(ConfigError, match="symbolic link"):
        within(root, "planted", "x")
    # A dataset folder the user linked to another disk is the user's choice.
    assert within(root, "planted") == root / "planted"


def test_within_accepts_a_root_behind_a_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    assert within(Path(tmp_path / "link"), "mind") == tmp_path / "link" / "mind"


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("args", [
    ["prepare", "csv", "--as", "../../x"],
    ["prepare", "csv", "--as", "ABS"],
    ["prepare", "amazon-x/../../y"],
    ["prepare", "../../victim"],
    ["run", "-g", "baseline", "-m", "Random", "-d", "../../other/datasets/mind"],
    ["info", "../victim"],
])
def test_names_that_would_escape_the_home_fail_before_anything_is_touched(tmp_path, args):
    home, raw, victim = tmp_path / "home", tmp_path / "raw", tmp_path / "victim"
    raw.mkdir()
    (raw / "interactions.csv").write_text("user,item,timestamp\nu,i,1\n")
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    args = [str(tmp_path / "abs") if a == "ABS" else a for a in args]
    extra = ["--raw", str(raw), "--force"] if args[0] == "prepare" else []
    result = CliRunner().invoke(app, [*args, *extra, "--home", str(home)])
    line = _one_line_error(result)
    assert "invalid" in line and "name" in line
    assert (victim / "keep.txt").read_text() == "precious"
    assert not (tmp_path / "abs").exists() and not (tmp_path / "x").exists()
    assert not home.exists() or not any(home.rglob("*"))  # nothing written, not even a folder


# --- class 12: messages are text, not Rich markup; control bytes never reach the terminal -----

@pytest.mark.parametrize("folder", ["r[/]aw", "r[red]aw", "r[bold red]x[/]aw"])
def test_markup_in_a_path_prints_literally(tmp_path, folder):
    raw = tmp_path / folder
    result = CliRunner().invoke(app, ["prepare", "mind", "--raw", str(raw),
                                      "--home", str(tmp_path / "home")])
    line = _one_line_error(result)
    assert str(raw) in line and "no such folder" in line


def test_control_bytes_in_a_message_are_escaped(tmp_path):
    raw = tmp_path / "x\x1b[2J\x07\u202eevil"
    result = CliRunner().invoke(app, ["prepare", "mind", "--raw", str(raw),
                                      "--home", str(tmp_path / "home")])
    line = _one_line_error(result)
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\u202e" not in result.output
    assert "x\\x1b[2J\\x07\\u202eevil" in line


def test_reporter_keeps_its_label_and_prints_the_rest_literally():
    from rich.console import Console

    from recbench.core.progress import RichReporter, printable, render

    assert render("[green]done[/] a[/]b -> /h[red]/x") == "[green]done[/] a\\[/]b -> /h\\[red]/x"
    assert printable("tab\tok\x1b") == "tab\tok\\x1b"
    console = Console(record=True, width=200, color_system=None)
    reporter = RichReporter(console)
    reporter.result("[yellow]skipped[/] run on d ([/]): exists (/h[red]/k.json)")
    reporter.stage("[yellow]note:[/] only 2 steps [/]")
    text = console.export_text()
    assert "skipped run on d ([/]): exists (/h[red]/k.json)" in text
    assert "note: only 2 steps [/]" in text
