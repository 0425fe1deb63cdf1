"""Issue 13, security and messages: names as paths, redirects, file modes, markup, full disk."""

from __future__ import annotations

import errno
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


# --- class 4: files and folders get ordinary modes ------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_outputs_get_the_modes_ordinary_files_get(tmp_path, umask):
    from recbench.core.atomic import atomic_dir, atomic_file, publish_bytes, write_bytes

    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives under this umask: the reference
        plain_dir = tmp_path / "plain_dir"
        plain_dir.mkdir()
        write_bytes(tmp_path / "a.json", b"{}")
        assert publish_bytes(tmp_path / "b.json", b"{}")
        with atomic_file(tmp_path / "c.parquet") as tmp:
            tmp.write_bytes(b"PAR1")
        with atomic_dir(tmp_path / "ds") as tmp:
            (tmp / "manifest.json").write_text("{}")
    finally:
        os.umask(old)
    file_mode = plain.stat().st_mode & 0o777
    assert file_mode == 0o666 & ~umask
    for name in ("a.json", "b.json", "c.parquet"):
        assert (tmp_path / name).stat().st_mode & 0o777 == file_mode, name
    assert (tmp_path / "ds").stat().st_mode & 0o777 == plain_dir.stat().st_mode & 0o777


# --- class 17: a full disk is one line and leaves nothing behind -----------------------------

def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _partial_parquet_then_enospc(_frame, path, *_args, **_kwargs):
    Path(path).write_bytes(b"PAR1 cut short")
    _enospc()


def test_a_full_disk_in_the_atomic_writers_is_one_error_and_no_temp_file(tmp_path, monkeypatch):
    from recbench.core import atomic
    from recbench.core.errors import DiskFullError

    def half_then_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        _enospc()

    monkeypatch.setattr(atomic, "_write_fd", half_then_full)
    for write in (atomic.write_bytes, atomic.publish_bytes):
        with pytest.raises(DiskFullError, match="no space left on the device writing"):
            write(tmp_path / "out.json", b"x" * 1000)
    with pytest.raises(DiskFullError), atomic.atomic_file(tmp_path / "p.parquet") as tmp:
        tmp.write_bytes(b"partial")
        _enospc()
    with pytest.raises(DiskFullError), atomic.atomic_dir(tmp_path / "ds") as tmp:
        (tmp / "items.parquet").write_bytes(b"partial")
        _enospc()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_during_prepare_is_one_line_and_leaves_no_temp_dir(tmp_path, monkeypatch):
    import polars as pl

    home = tmp_path / "home"
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _partial_parquet_then_enospc)
    result = CliRunner().invoke(app, ["prepare", "synthetic", "--size", "tiny",
                                      "--home", str(home)])
    line = _one_line_error(result)
    assert "no space left on the device" in line
    datasets = home / "datasets"
    leftovers = [p for p in datasets.rglob("*") if ".tmp" in p.name] if datasets.exists() else []
    assert leftovers == []
    assert not datasets.exists() or not list(datasets.rglob("manifest.json"))


def test_a_full_disk_anywhere_under_the_cli_is_one_line():
    import typer

    from recbench.cli.app import user_errors

    probe = typer.Typer()

    @probe.command()
    @user_errors
    def write() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/home/x/results/k.json")

    line = _one_line_error(CliRunner().invoke(probe, []))
    assert line.startswith("error: no space left on the device writing /home/x/results/k.json")


_SLOW_PREPARE = """
import sys, time
import polars as pl
write = pl.DataFrame.write_parquet
def slow(self, path, *args, **kwargs):
    write(self, path, *args, **kwargs)
    print("WRITING", path, flush=True)
    time.sleep(120)
pl.DataFrame.write_parquet = slow
sys.argv = ["recbench", "prepare", "synthetic", "--size", "tiny", "--home", sys.argv[1]]
from recbench.cli.app import main
main()
"""


def test_sigterm_during_prepare_is_handled_like_ctrl_c(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PREPARE, str(home)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "WRITING" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "WRITING" in line, proc.stderr.read()
        assert ".tmp-" in line  # the write goes to the temporary folder
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert "terminated: no partial dataset or record was written" in err
    assert [p for p in home.rglob("*") if ".tmp" in p.name] == []
    assert not list((home / "datasets").rglob("manifest.json"))


def test_an_interrupted_run_says_it_kept_its_checkpoint(tmp_path):
    import typer

    from recbench.cli.app import user_errors
    from recbench.core.errors import Interrupted
    from recbench.runner import _interrupted

    work = tmp_path / "KEY.work"
    assert _interrupted(KeyboardInterrupt(), work).__class__ is KeyboardInterrupt  # nothing kept
    work.mkdir()
    (work / "checkpoint.pt").write_bytes(b"x")
    kept = _interrupted(KeyboardInterrupt(), work)
    assert isinstance(kept, Interrupted) and str(work) in kept.kept

    probe = typer.Typer()

    @probe.command()
    @user_errors
    def train() -> None:
        raise kept

    result = CliRunner().invoke(probe, [])
    line = _one_line_error(result, code=130)
    assert line == (f"interrupted: no partial dataset or record was written; the checkpoint in "
                    f"{work} was kept: rerun the same command to resume from it")


# --- class 19: help that points at what was meant ----------------------------------------------

def test_run_with_a_typo_suggests_the_prepared_dataset_not_a_prepare_command(tmp_path):
    home = tmp_path / "home"
    for name in ("mind", "my-shop"):  # a catalog name and a custom `--as` name, both prepared
        folder = home / "datasets" / name / "recbench-v1" / "tiny"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
    result = CliRunner().invoke(app, ["run", "-g", "baseline", "-m", "Random", "-d", "mnd",
                                      "--size", "tiny", "--home", str(home)])
    line = _one_line_error(result)
    assert "Did you mean 'mind'" in line and "recbench prepare mnd" not in line
    assert "Prepared: mind, my-shop" in line
    shop = CliRunner().invoke(app, ["run", "-g", "baseline", "-m", "Random", "-d", "my-shp",
                                    "--size", "tiny", "--home", str(home)])
    assert "Did you mean 'my-shop'" in _one_line_error(shop)
    info = CliRunner().invoke(app, ["info", "my-shp", "--home", str(home)])
    assert "Did you mean 'my-shop'" in _one_line_error(info)


def test_an_amazon_typo_is_not_a_new_dataset(tmp_path):
    from recbench.core.errors import UnknownNameError
    from recbench.data.catalog import get_spec

    p5 = tmp_path / "p5"
    p5.mkdir()
    (p5 / "sequential_data.txt").write_text("1 1 2 3 4 5\n2 2 3 4 5 6\n")
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["prepare", "amazon-beuty", "--raw", str(p5),
                                      "--home", str(home)])
    line = _one_line_error(result)
    assert "unknown dataset 'amazon-beuty'" in line and "Did you mean 'amazon-beauty'" in line
    assert "-o category=NAME" in line
    assert not (home / "datasets").exists()
    # every published category still works, and an unlisted one is an explicit choice
    assert get_spec("amazon-video-games").options == {"category": "Video_Games"}
    assert get_spec("amazon-cds-and-vinyl").options == {"category": "CDs_and_Vinyl"}
    assert get_spec("amazon-my-cat", {"category": "My_Cat"}).options == {"category": "My_Cat"}
    with pytest.raises(UnknownNameError):
        get_spec("amazon-my-cat")


def test_a_home_with_markup_in_its_name_prints_literally(tmp_path):
    home = tmp_path / "h[/]o[red]me"
    result = CliRunner().invoke(app, ["leaderboard", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert f"no results yet under {home}" in " ".join(result.output.split())


def test_log_lines_for_the_terminal_escape_control_bytes():
    import logging

    from recbench.cli.app import _TerminalFormatter

    record = logging.LogRecord("recbench.data", logging.WARNING, __file__, 1,
                               "dropped header %s", ("\x1b]0;pwned\x07",), None)
    line = _TerminalFormatter("%(levelname)s %(message)s").format(record)
    assert "\x1b" not in line and "\x07" not in line
    assert line == "WARNING dropped header \\x1b]0;pwned\\x07"


def test_force_never_deletes_the_folder_a_symlinked_dataset_points_to(tmp_path):
    from recbench.core.atomic import atomic_dir

    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    target = tmp_path / "home" / "datasets" / "mind" / "small"
    target.parent.mkdir(parents=True)
    os.symlink(victim, target)
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert (victim / "keep.txt").read_text() == "precious"
    assert not target.is_symlink() and (target / "manifest.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["small"]


def test_a_full_disk_while_writing_predictions_is_one_line_and_leaves_no_temp(tmp_path,
                                                                              monkeypatch):
    import polars as pl

    home = str(tmp_path / "home")
    runner = CliRunner()
    assert runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home", home]
                         ).exit_code == 0
    monkeypatch.setattr(pl.DataFrame, "write_parquet", _partial_parquet_then_enospc)
    result = runner.invoke(app, ["run", "-g", "baseline", "-m", "Random", "-d", "synthetic",
                                 "--size", "tiny", "--home", home, "--set", "latency_samples=5"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0], result.output
    results = tmp_path / "home" / "results"
    assert [p for p in results.rglob("*") if ".tmp" in p.name] == []
    assert not list(results.rglob("*.json"))  # no record without its predictions
    assert not list(results.rglob("*.parquet"))


def _record(attempt: str, model: str = "hf:ORG/NAME"):
    from recbench.results.record import Record

    return Record(key="k1", group="A", model=model, model_id=model, dataset="synthetic",
                  dataset_size="tiny", dataset_version="v", protocol_version="recbench-v1",
                  task="ctr", mode="train", metrics={"ctr": {"gauc": 0.5, "auc": 0.5}}, seed=0,
                  config={}, config_hash="h",
                  hardware={"cpu": "x", "cores": 1, "threads_used": 1, "memory_gb": 1.0,
                            "platform": "p", "python": "3"},
                  recbench_version="0", started_at="t0", finished_at="t1", attempt=attempt)


@pytest.mark.parametrize("planted", ["other.json", "../../../victim.txt", ".."])
def test_replacing_a_record_never_deletes_what_its_file_names(tmp_path, planted):
    import json

    import polars as pl

    from recbench.results.store import ResultStore

    record = _record
    store = ResultStore(tmp_path / "home")
    first = store.write(record("a1"), pl.DataFrame({"score": [0.1]}))
    folder = first.path.parent
    assert folder == store.root / "synthetic" / "A" / "hf_ORG_NAME"
    (folder / "other.json").write_text("{}")
    (tmp_path / "victim.txt").write_text("precious")
    # a hostile or damaged record names a file that is not its predictions
    planted_record = json.loads(first.path.read_text()) | {"predictions": planted}
    first.path.write_text(json.dumps(planted_record))
    store.write(record("a2"), pl.DataFrame({"score": [0.2]}),
                supersedes=store.find("synthetic", "A", "hf:ORG/NAME", "k1"))
    assert (folder / "other.json").read_text() == "{}"
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert store.find("synthetic", "A", "hf:ORG/NAME", "k1").attempt == "a2"


@pytest.mark.slow
def test_sigterm_during_a_run_keeps_its_checkpoint_and_says_so(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    base = [sys.executable, "-m", "recbench"]
    subprocess.run([*base, "prepare", "synthetic", "--size", "tiny", "--home", str(home)],
                   check=True, capture_output=True)
    proc = subprocess.Popen([*base, "run", "-g", "A", "-m", "DNN", "-d", "synthetic", "--size",
                             "tiny", "--home", str(home), "--set", "epochs=500",
                             "--set", "patience=500"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(home.rglob("checkpoint.pt")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        (checkpoint,) = home.rglob("checkpoint.pt")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert f"the checkpoint in {checkpoint.parent} was kept" in " ".join(err.split())
    assert checkpoint.is_file()
    results = home / "results"
    assert not [p for p in results.rglob("*.json")]  # no record: the run did not finish
    assert not [p for p in results.rglob("*") if p.name.endswith(".tmp")]


def test_a_leaderboard_never_sends_control_bytes_from_records_to_the_terminal(tmp_path):
    from recbench.results.store import ResultStore

    home = tmp_path / "home"
    ResultStore(home).write(_record("a1", model="x\x1b]0;pwned\x07[red]y"), None)
    result = CliRunner().invoke(app, ["leaderboard", "--task", "ctr", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "x\\x1b]0;pwned\\x07[red]y" in result.output
