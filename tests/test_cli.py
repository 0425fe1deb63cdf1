"""The command line as a user meets it: fast help, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from recbench.cli.app import app

runner = CliRunner()


def test_help_does_not_import_heavy_modules():
    code = ("import sys; from recbench.cli.app import app; "
            "from typer.testing import CliRunner; r = CliRunner().invoke(app, ['--help']); "
            "assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'polars') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ls_commands():
    for args in (["ls", "datasets"], ["ls", "groups"], ["ls", "models"],
                 ["ls", "models", "--group", "baseline"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    assert "MostPopular" in runner.invoke(app, ["ls", "models"]).output


def test_unknown_dataset_is_one_line_error(tmp_path):
    result = runner.invoke(app, ["prepare", "mindd", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "Did you mean 'mind'" in result.output
    assert "Traceback" not in result.output


def test_prepare_info_run_roundtrip(tmp_path):
    home = str(tmp_path)
    assert runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home", home]
                         ).exit_code == 0
    again = runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home", home])
    assert again.exit_code == 2 and "--force" in again.output
    info = runner.invoke(app, ["info", "synthetic", "--home", home])
    assert info.exit_code == 0 and "interactions.csv" in info.output
    result = runner.invoke(app, ["run", "--group", "baseline", "--model", "Random",
                                 "--dataset", "synthetic", "--size", "tiny", "--home", home,
                                 "--set", "latency_samples=5"])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, ["run", "-g", "baseline", "-m", "Random", "--home", home,
                              "--size", "tiny", "--set", "nonsense"])
    assert bad.exit_code == 2 and "key=value" in bad.output


def test_missing_raw_folder(tmp_path):
    result = runner.invoke(app, ["prepare", "mind", "--raw", str(tmp_path / "nope"),
                                 "--home", str(tmp_path)])
    assert result.exit_code == 2 and "no such folder" in result.output
