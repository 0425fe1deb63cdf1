"""`recbench leaderboard`: rebuild the paper-style tables (and an html page) from result records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, user_errors

TASKS = ("ctr", "seq")


@app.command()
@user_errors
def leaderboard(
    task: Annotated[Optional[str], typer.Option(
        "--task", help="ctr | seq (default: both, one after the other).")] = None,
    metric: Annotated[Optional[str], typer.Option(
        "--metric", help="gauc | auc | logloss | ndcg@10 | hr@10 | mrr@10 | ... "
                         "(default: gauc for ctr, ndcg@10 for seq).")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        "--protocol", help="SeqRec protocol: full | sampled100 (default: full).")] = None,
    datasets: Annotated[Optional[str], typer.Option(
        "--datasets", help="Comma-separated dataset names, in column order (default: all).")
    ] = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="md | csv | json | latex | html (html: one self-contained page "
                               "with an accuracy-vs-latency plot).")] = "md",
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write here (replaced if it exists) instead of printing.")] = None,
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    include_smoke: Annotated[bool, typer.Option(
        "--include-smoke", help="Show smoke-test records too (their rows are marked smoke).")
    ] = False,
) -> None:
    """Rebuild the leaderboards (paper Tables 3-5) from the result records.

    Rows grouped A-J, a column per dataset version, Overall and Latency; best per column bold,
    second underlined. Without --task both tasks are shown.
    """
    from recbench.core import paths
    from recbench.core.atomic import write_text
    from recbench.core.errors import UnknownNameError
    from recbench.results.leaderboard import FORMATS, available_metrics, build_table, render_many
    from recbench.results.record import DEFAULT_PROTOCOL, PROTOCOLS
    from recbench.results.store import ResultStore

    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    if task is not None and task not in TASKS:
        raise UnknownNameError("task", task, TASKS)
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None

    root = paths.home(home)
    records = list(ResultStore(root).records())
    if not records:
        console.print(f"no results yet under {root}: run `recbench run ...` first.",
                      highlight=False)
        return

    tasks = [task] if task else list(TASKS)
    if task is None and protocol is not None:
        # Without --task a protocol picks the task(s) it belongs to.
        tasks = [t for t in tasks if protocol in PROTOCOLS[t]]
        if not tasks:
            raise UnknownNameError("protocol", protocol, {p for t in TASKS for p in PROTOCOLS[t]})
    if task is None and metric is not None:
        known = {t: available_metrics(records, t, protocol or DEFAULT_PROTOCOL[t]) for t in tasks}
        tasks = [t for t in tasks if metric in known[t]]
        if not tasks:
            raise UnknownNameError("metric", metric, set().union(*known.values()))

    tables = [build_table(records, t, metric=metric, protocol=protocol, datasets=names,
                          include_smoke=include_smoke) for t in tasks]
    shown = [t for t in tables if t.rows]
    if not shown:
        which = f"{task} " if task else ""
        notes = [note for table in tables for note in table.footnotes]
        if not notes:
            console.print(f"no {which}results yet under {root}: run `recbench run ...` first.",
                          highlight=False)
        else:  # records exist but were all left out: say why
            console.print(f"no {which}results to show under {root}:", highlight=False)
            for note in notes:
                console.print(f"  {note}", highlight=False, markup=False)
        return

    text = render_many(shown, fmt)
    if output is None:
        typer.echo(text, nl=False)
        return
    write_text(output, text)
    summary = ", ".join(f"{t.task} {t.metric}: {len(t.rows)} rows x {len(t.columns)} datasets"
                        for t in shown)
    console.print(f"wrote {output} ({summary})", highlight=False, soft_wrap=True)
