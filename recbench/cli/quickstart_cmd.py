"""`recbench quickstart`: the README's main job, offline, on the embedded synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, setup_logging, user_errors

# What runs offline on a laptop in minutes, in leaderboard order: (group, model, settings).
# One model per representation (ID, text, encoder embedding) and the main sequential models;
# the encoder is the offline `minilm-l6`.
QUICKSTART_RUNS: list[tuple[str, str, dict]] = [
    ("baseline", "MostPopular", {}),
    ("baseline", "Random", {}),
    ("A", "DNN", {}),
    ("A", "DCNv2", {}),
    ("B", "DNN_text", {}),
    ("C", "DNN_emb", {"encoder": "minilm-l6"}),
    ("G", "SASRec-3L", {}),
    ("G", "GRU4Rec", {}),
    ("G", "SKNN", {}),
    ("G", "LLM2SASRec", {"encoder": "minilm-l6"}),
]


@app.command()
@user_errors
def quickstart(
    size: Annotated[str, typer.Option(help="Synthetic dataset size.")] = "small",
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Prepare the synthetic dataset, run every offline model on it, print the leaderboards."""
    setup_logging(verbose)
    from recbench.core import paths
    from recbench.core.progress import RichReporter
    from recbench.data.prepare import prepare, prepared_path
    from recbench.results.leaderboard import build_table, render
    from recbench.results.store import ResultStore
    from recbench.runner import RunRequest, run

    root = paths.home(home)
    reporter = RichReporter(console)
    if not (prepared_path(root, "synthetic", size, "recbench-v1") / "manifest.json").exists():
        console.rule("prepare synthetic")
        prepare("synthetic", size=size, home=root, stage=reporter.stage,
                show_progress=console.is_terminal)
    for group, model, sets in QUICKSTART_RUNS:
        console.rule(f"{group} / {model}")
        run(RunRequest(group=group, model=model, datasets=["synthetic"], size=size, home=root,
                       sets=sets, protocol="recbench-v1"), reporter)
    records = [r for r in ResultStore(root).records()
               if r.dataset == "synthetic" and r.dataset_size == size]
    for task in ("ctr", "seq"):
        console.rule(f"leaderboard: {task}")
        typer.echo(render(build_table(records, task), "md"))
    console.print(f"records in {paths.results_dir(root)}; `recbench leaderboard --format html "
                  "--output leaderboard.html` for the page with plots")
