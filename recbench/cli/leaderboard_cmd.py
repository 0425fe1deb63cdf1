"""`recbench leaderboard`: rebuild the paper-style tables (and an html page) from result records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, user_errors
from recbench.core.progress import escape_controls, printable

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
        "--protocol", help="SeqRec candidates: full | sampled100 (default: full); or a dataset "
                           "protocol (recbench | loo | temporal) to show only its records.")
    ] = None,
    suite: Annotated[Optional[str], typer.Option(
        "--suite", help="Render this suite's tables (ls suites): its rows, datasets and "
                        "protocol only.")] = None,
    ci: Annotated[bool, typer.Option(
        "--ci", help="md/latex: print each cell's 95% CI (csv, json and html always have it).")
    ] = False,
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

    Rows grouped A-J (or a suite's rows), a column per dataset version, Overall (over the
    datasets every row has) and Latency. Seeds of one config are aggregated (mean ± std, 95%
    CI); * / ↓ mark rows significantly better / worse than the strongest baseline; best and
    second best are bold / underlined, shared by rows not significantly different. Without
    --task both tasks are shown.
    """
    from recbench.core import paths
    from recbench.core.errors import UnknownNameError
    from recbench.results.leaderboard import FORMATS, available_metrics, build_table
    from recbench.results.record import DEFAULT_PROTOCOL, PROTOCOLS
    from recbench.results.store import ResultStore

    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    if task is not None and task not in TASKS:
        raise UnknownNameError("task", task, TASKS)
    names = [d.strip() for d in datasets.split(",") if d.strip()] if datasets else None

    root = paths.home(home)
    store = ResultStore(root)
    records = list(store.records())
    if protocol is not None and protocol not in {p for t in TASKS for p in PROTOCOLS[t]}:
        records = _dataset_protocol_records(records, protocol)
        protocol = None
    if suite is not None:
        _suite_tables(suite, records, store, task, metric, names, include_smoke, fmt, ci,
                      output, root)
        return
    if not records:
        console.print(printable(f"no results yet under {root}: run `recbench run ...` first."),
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
                          include_smoke=include_smoke, store=store) for t in tasks]
    shown = [t for t in tables if t.rows]
    if not shown:
        which = f"{task} " if task else ""
        notes = [note for table in tables for note in table.footnotes]
        if not notes:
            console.print(printable(f"no {which}results yet under {root}: run `recbench run "
                                    "...` first."),
                          highlight=False)
        else:  # records exist but were all left out: say why
            console.print(printable(f"no {which}results to show under {root}:"), highlight=False)
            for note in notes:
                console.print(f"  {printable(note)}", highlight=False)
        return

    _emit(shown, fmt, ci, output)


def _emit(shown, fmt: str, ci: bool, output: Path | None) -> None:
    from recbench.core.atomic import write_text
    from recbench.results.leaderboard import render_many

    text = render_many(shown, fmt, ci=ci)
    if output is None:
        typer.echo(escape_controls(text), nl=False)  # names in records are data
        return
    write_text(output, text)
    summary = ", ".join(f"{t.task} {t.metric}: {len(t.rows)} rows x {len(t.columns)} datasets"
                        for t in shown)
    console.print(printable(f"wrote {output} ({summary})"), highlight=False, soft_wrap=True)


def _dataset_protocol_records(records, protocol: str):
    """Only the records measured under dataset protocol `protocol` (a name or a family)."""
    from recbench.core.errors import UnknownNameError

    found = {r.protocol_version for r in records}
    wanted = [p for p in found if p == protocol or p.startswith(f"{protocol}-")]
    if not wanted:
        raise UnknownNameError("protocol (full | sampled100, or a dataset protocol with "
                               "records)", protocol, found | {"full", "sampled100"})
    return [r for r in records if r.protocol_version in wanted]


def _suite_tables(name, records, store, task, metric, names, include_smoke, fmt, ci, output,
                  root) -> None:
    """The suite's tables: its rows (by their settings), datasets and protocol."""
    from recbench.core.errors import UnknownNameError
    from recbench.results.leaderboard import RowSpec, build_table
    from recbench.suites import assign_rows, load_suite

    spec = load_suite(name)
    datasets = names or spec.datasets
    for dataset in datasets:
        if dataset not in spec.datasets:
            raise UnknownNameError(f"dataset of suite {spec.name}", dataset, spec.datasets)
    pool = [r for r in records if r.protocol_version == spec.protocol and r.dataset in datasets]
    pool = [r for r in pool if r.key in assign_rows(spec, pool)]
    tables_spec = [t for t in spec.tables if task is None or t.task == task]
    if not tables_spec:
        raise UnknownNameError(f"task of suite {spec.name}", task or "",
                               {t.task for t in spec.tables})
    tables = []
    for table in tables_spec:
        rows = {row.name: (i, row) for i, row in enumerate(spec.table_rows(table))}
        # per table: a greedy step's reference is the previous step's winner, one record
        row_names = assign_rows(spec, pool, [row for _, row in rows.values()])

        def row_of(record, rows=rows, row_names=row_names):
            hit = rows.get(row_names.get(record.key, ""))
            if hit is None:
                return None
            i, row = hit
            return RowSpec(row.section, row.name, (i,), baseline=row.is_baseline)

        present = [d for d in datasets if any(r.dataset == d for r in pool)]
        tables.append(build_table(pool, table.task, metric=metric or table.metric,
                                  protocol=table.protocol_key, datasets=present or None,
                                  include_smoke=include_smoke, store=store, row_of=row_of,
                                  title=f"suite {spec.name} v{spec.version}, {table.title}"))
    shown = [t for t in tables if t.rows]
    if not shown:
        console.print(printable(f"no records of suite {spec.name} (protocol {spec.protocol}) "
                                f"under {root}: run `recbench suite run {spec.name} ...` "
                                "first."), highlight=False)
        return
    _emit(shown, fmt, ci, output)
