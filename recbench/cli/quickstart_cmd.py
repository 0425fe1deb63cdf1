"""`recbench quickstart`: the README's main job, offline, on the embedded synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, setup_logging, user_errors

# What runs offline on a laptop in minutes, in leaderboard order: (group, model, settings).
# One model per representation (ID, text, encoder embedding), an LLM scoring the item text
# zero-shot (group E, the offline SmolLM2-135M), and the main sequential models; the encoder is
# the offline `minilm-l6`. The LLM reads the 5 latest history items (not 20) and is timed on
# 20 rows (not 1,000): one CPU prompt costs ~2 s, and the quickstart must stay in minutes.
QUICKSTART_RUNS: list[tuple[str, str, dict]] = [
    ("baseline", "MostPopular", {}),
    ("baseline", "Random", {}),
    ("A", "DNN", {}),
    ("A", "DCNv2", {}),
    ("B", "DNN_text", {}),
    ("C", "DNN_emb", {"encoder": "minilm-l6"}),
    ("E", "smollm2-135m", {"mode": "zero-shot", "max_history": 5, "latency_samples": 20}),
    ("G", "SASRec-3L", {}),
    ("G", "GRU4Rec", {}),
    ("G", "SKNN", {}),
    ("G", "LLM2SASRec", {"encoder": "minilm-l6"}),
]
# The first table: the project's question in three rows (an LLM, the best conventional CTR
# representation, the standard sequential model), each with its latency.
HEADLINE = (("ctr", "E"), ("ctr", "C"), ("seq", "G:SASRec-3L"))


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
    store = ResultStore(root)
    records = [r for r in store.records()
               if r.dataset == "synthetic" and r.dataset_size == size]
    tables = {task: build_table(records, task, store=store) for task in ("ctr", "seq")}
    console.rule("an LLM beside conventional models")
    typer.echo(headline(tables))
    for task, table in tables.items():
        console.rule(f"leaderboard: {task}")
        typer.echo(render(table, "md", ci=True))
    console.print(f"records in {paths.results_dir(root)}; `recbench leaderboard --format html "
                  "--output leaderboard.html` for the page with plots")


def headline(tables: dict) -> str:
    """The rows of HEADLINE as one md table: quality with its 95% CI, latency, and latency
    relative to the conventional CTR row."""
    picked = []
    for task, which in HEADLINE:
        group, _, model = which.partition(":")
        picked += [(task, row) for row in tables[task].rows
                   if row.group == group and (not model or row.model_id == model)]
    reference = next(((row.label, row.latency_ms) for task, row in picked
                      if row.group == "C" and row.latency_ms), None)
    lines = [f"| Group | Model | Task | Metric | Value [95% CI] | Latency (ms) | "
             f"× {reference[0] if reference else 'C'} |", "|:--|:--|:--|:--|--:|--:|--:|"]
    for task, row in picked:
        table = tables[task]
        ci = row.cis[0] if row.cis else None
        value = "–" if row.cells[0] is None else f"{row.cells[0]:.4f}" + (
            f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
        latency = "–" if row.latency_ms is None else f"{row.latency_ms:.2f}"
        ratio = (f"{row.latency_ms / reference[1]:.3g}" if reference and row.latency_ms
                 else "–")
        lines.append(f"| {row.group} | {row.label} | {task} | {table.metric} | {value} | "
                     f"{latency} | {ratio} |")
    return "\n".join(lines) + "\n"
