"""`recbench ls suites` and `recbench suite run`: a paper's benchmark as ordinary runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, ls_app, setup_logging, user_errors
from recbench.core.progress import Reporter

suite_app = typer.Typer(help="Run a suite (a paper's rows x datasets x seeds) as ordinary runs.",
                        no_args_is_help=True)
app.add_typer(suite_app, name="suite")


def split_list(text: str | None) -> list[str] | None:
    """`a,b , c` -> ['a', 'b', 'c']; None stays None."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


@ls_app.command("suites")
@user_errors
def ls_suites() -> None:
    """The suites (recbench/suites/*.yaml): paper, protocol, rows and datasets."""
    from rich.markup import escape
    from rich.table import Table

    from recbench.suites import load_suite, suite_names

    table = Table(title="suites (recbench suite run NAME; recbench leaderboard --suite NAME)")
    for col in ("suite", "version", "protocol", "rows"):
        table.add_column(col, no_wrap=True)
    for col in ("row groups", "paper", "datasets", "seeds"):
        table.add_column(col, overflow="fold")
    for name in suite_names():
        s = load_suite(name)
        sections = ",".join(dict.fromkeys(r.section for r in s.rows))
        table.add_row(escape(s.name), str(s.version), escape(s.protocol), str(len(s.rows)),
                      escape(sections), escape(s.paper), escape(", ".join(s.datasets)),
                      ",".join(map(str, s.seeds)))
    console.print(table)


@suite_app.command("run")
@user_errors
def suite_run(
    name: Annotated[str, typer.Argument(help="Suite name (ls suites) or a suite YAML file.")],
    datasets: Annotated[Optional[str], typer.Option(
        "--datasets", help="Comma-separated subset of the suite's datasets (default: all).")
    ] = None,
    size: Annotated[Optional[str], typer.Option(
        help="Prepared size: tiny | small | paper (default: the suite's).")] = None,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", help="Comma-separated seeds (default: the suite's), e.g. 42,43,44.")] = None,
    only: Annotated[Optional[str], typer.Option(
        "--only", help="Comma-separated row names or row groups, e.g. G or SASRec-3L,GRU4Rec.")
    ] = None,
    protocol: Annotated[Optional[str], typer.Option(
        "--protocol", help="Dataset protocol (default and only choice: the suite's own).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the runs it would start and exit.")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda.")] = "cpu",
    overwrite: Annotated[str, typer.Option(
        help="never: skip finished runs; only-missing: also redo runs whose predictions are "
             "gone; always: redo.")] = "never",
    executor: Annotated[Optional[str], typer.Option(
        help="Run as a sweep: local (process pool) | ray | slurm (default: one run after "
             "another in this process).")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="With --executor: runs at a time.")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="With --executor ray: the cluster address (auto | HOST:PORT | ray://...).")
    ] = None,
    grid: Annotated[Optional[str], typer.Option(
        "--grid", help="greedy: each row group of the suite's greedy order builds on the best "
                       "of the ones before (the default where the suite has one); full: the "
                       "product of every step's choices; rows: every row as written.")
    ] = None,
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Expand a suite into ordinary runs and run them; finished runs are skipped.

    A failing run is reported and the suite goes on; the exit code is non-zero if any failed.
    Under --grid greedy|full the suite as it ran (each row's real settings) is written to
    HOME/suites/NAME-GRID.yaml: pass that file to `recbench leaderboard --suite`.
    """
    setup_logging(verbose)
    from recbench.cli.run_cmd import parse_seeds
    from recbench.core.errors import ConfigError
    from recbench.suites import expand_rows, load_suite, select_rows

    suite = load_suite(name)
    mode = grid or ("greedy" if suite.greedy is not None else "rows")
    if mode not in ("greedy", "full", "rows"):
        raise ConfigError(f"--grid {mode!r}: expected greedy, full or rows")
    if mode != "rows":
        if suite.greedy is None:
            raise ConfigError(f"--grid {mode}: suite {suite.name} has no greedy order "
                              "(use --grid rows)")
        chosen = select_rows(suite, split_list(only))
        reference = suite.row(suite.greedy.reference)
        suite = suite.model_copy(update={"rows": [r for r in suite.rows
                                                  if r in chosen or r is reference]})
        only = None
    if mode == "full":
        from recbench.suites.execute import full_grid

        suite = full_grid(suite)

    def expander(chosen_suite):
        return expand_rows(chosen_suite, datasets=split_list(datasets),
                           seeds=parse_seeds(seeds, "--seeds") if seeds is not None else None,
                           only=split_list(only), size=size, protocol=protocol, home=home,
                           overwrite=overwrite, device=device)

    from recbench.suites.execute import check_suite_runs, plan_runs, run_suite

    runs = plan_runs(expander(suite))
    if dry_run:
        _print_plan(suite, runs, mode)
        return
    check_suite_runs(suite, runs, home)
    if executor is not None:  # a suite is a grid: `recbench sweep`'s planning and executors
        if mode == "greedy":
            raise ConfigError("--executor runs a fixed set of runs: use --grid full or rows")
        _run_as_sweep(suite, runs, executor, workers, address, home)
        return
    console.rule(f"suite {suite.name} v{suite.version} ({mode}): {len(runs)} runs, protocol "
                 f"{suite.protocol}")
    if mode == "greedy":
        runs = _run_greedy(suite, runs, expander, home)
    else:
        _run_with_progress(runs, run_suite)
        if mode == "full":
            _write_resolved(suite, mode, home, ["--grid full: every combination of the "
                                                "greedy steps' choices"])
    _print_summary(runs)
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(runs)} run(s) failed[/] (details in the "
                      "run logs and with --verbose)", highlight=False)
        raise typer.Exit(1)


def _run_as_sweep(suite, runs, executor, workers, address, home) -> None:
    from recbench.cli.sweep_cmd import run_with_progress
    from recbench.core import paths
    from recbench.distributed.executors import make_executor
    from recbench.distributed.grid import Cell, Resources
    from recbench.distributed.sweep import plan_sweep, sweep_dir

    name = f"suite-{suite.name}"
    plan = plan_sweep([Cell(run.request, Resources()) for run in runs], name, paths.home(home),
                      executor)
    console.rule(f"suite {suite.name} v{suite.version} on {executor}: {len(plan.all)} keys, "
                 f"{len(plan.finished)} finished, {len(plan.specs)} to run")
    pool = make_executor(executor, workers=workers, address=address,
                         folder=sweep_dir(plan.home, name) / "slurm")
    if run_with_progress(plan, pool).failures:
        raise typer.Exit(1)


def _run_greedy(suite, planned, expander, home):
    """The greedy order under the suite progress bar; the steps' winners printed and written."""
    from rich.markup import escape
    from rich.table import Table

    from recbench.suites.execute import run_greedy, run_suite

    out = {}
    order = suite.greedy

    def header(steps):
        lines = [f"--grid greedy: each step builds on the best before it, by {order.metric} "
                 f"({order.metrics_protocol}), mean over seeds and datasets"]
        return lines + [f"{step.step}: winner {step.winner} ("
                        + ", ".join(f"{n} {v:.4f}" for n, v in step.scores.items())
                        + f"); carried {step.carried}" for step in steps]

    def greedy(_runs, reporter, on_start, on_done):
        out["result"] = run_greedy(
            suite, expander, lambda rs: run_suite(rs, reporter, on_start, on_done),
            on_step=lambda ran, steps: _write_resolved(ran, "greedy", home, header(steps),
                                                       quiet=True))

    _run_with_progress(planned, greedy)
    runs, resolved, steps = out["result"]
    table = Table(title=f"greedy order: winners by {order.metric} ({order.metrics_protocol}), "
                        "mean over seeds and datasets")
    for col in ("step", "winner", "score", "candidates"):
        table.add_column(col, overflow="fold")
    for step in steps:
        cands = ", ".join(f"{n} {v:.4f}" for n, v in step.scores.items())
        table.add_row(escape(step.step), escape(step.winner),
                      f"{step.scores.get(step.winner, float('nan')):.4f}", escape(cands))
    console.print(table)
    _write_resolved(resolved, "greedy", home, header(steps))
    return runs


def _write_resolved(suite, mode, home, header, quiet=False) -> None:
    from recbench.core import paths
    from recbench.core.atomic import write_text
    from recbench.suites.execute import resolved_suite_yaml

    path = paths.home(home) / "suites" / f"{suite.name}-{mode}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, resolved_suite_yaml(suite, header))
    if not quiet:
        console.print(f"the suite as it ran: {path} (recbench leaderboard --suite {path})",
                      highlight=False, soft_wrap=True)


def _print_plan(suite, runs, mode="rows") -> None:
    from rich.markup import escape
    from rich.table import Table

    sizes = ", ".join(dict.fromkeys(run.request.size for run in runs))
    later = ("; under --grid greedy each step's rows also get the winners before them"
             if mode == "greedy" else "")
    table = Table(title=f"suite {escape(suite.name)} v{suite.version}: {len(runs)} runs "
                        f"(protocol {escape(suite.protocol)}, size {sizes}, grid {mode})",
                  caption=f"--dry-run: nothing started{later}")
    for col in ("#", "seed", "row", "group", "model", "dataset", "task", "settings"):
        table.add_column(col, overflow="fold")
    for i, run in enumerate(runs, 1):
        req = run.request
        settings = " ".join(f"{k}={v}" for k, v in req.sets.items())
        table.add_row(str(i), str(req.seed), escape(run.row), escape(req.group),
                      escape(req.model), escape(run.dataset), req.task or "all",
                      escape(settings))
    console.print(table)


class _ProgressReporter(Reporter):
    """Stages go to the suite bar's description; inner loops get a transient bar of their own
    in the same live display (Rich allows only one)."""

    def __init__(self, progress, suite_task):
        self.progress, self.suite_task = progress, suite_task

    def stage(self, message: str) -> None:
        from recbench.core.progress import render

        self.progress.update(self.suite_task, status=render(message))

    def track(self, items, total, description):
        task = self.progress.add_task(f"  {description}", total=total, status="")
        try:
            for item in items:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)

    def result(self, message: str) -> None:
        from recbench.core.progress import render

        self.progress.console.print(render(message), highlight=False)  # label kept, rest text


def _run_with_progress(runs, run_suite) -> None:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("[dim]{task.fields[status]}"))
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task("suite", total=len(runs), status="")
        reporter = _ProgressReporter(progress, bar)

        def start(i, run):
            progress.update(bar, description=f"suite: {escape(run.row)} on "
                                             f"{escape(run.dataset)} (seed {run.request.seed})")

        def done(i, run):
            if run.status == "failed":
                progress.console.print(f"[bold red]failed[/] {escape(run.row)} on "
                                       f"{escape(run.dataset)} (seed {run.request.seed}): "
                                       f"{escape(run.error or '')}", highlight=False)
            progress.advance(bar)

        run_suite(runs, reporter, on_start=start, on_done=done)


def _print_summary(runs) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="suite summary")
    for col in ("row", "dataset", "seed", "status", "result", "s"):
        table.add_column(col, overflow="fold")
    style = {"done": "green", "skipped": "yellow", "failed": "bold red"}
    for run in runs:
        result = "; ".join(_headline(o.record) for o in run.outcomes) or (run.error or "")
        table.add_row(escape(run.row), escape(run.dataset), str(run.request.seed),
                      f"[{style[run.status]}]{run.status}[/]", escape(result),
                      f"{run.seconds:.1f}")
    console.print(table)
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "skipped", "failed")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)


def _headline(record) -> str:
    if record.task == "ctr":
        return f"ctr gauc {record.metrics['ctr'].get('gauc', float('nan')):.4f}"
    return f"seq ndcg@10 {record.metrics['full'].get('ndcg@10', float('nan')):.4f}"
