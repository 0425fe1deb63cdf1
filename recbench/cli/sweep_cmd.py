"""`recbench sweep GRID.yaml` and `recbench sweep status GRID.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, setup_logging, user_errors
from recbench.core.errors import ConfigError

EXECUTOR_HELP = "Where runs execute: local (process pool, default) | ray | slurm."


@app.command()
@user_errors
def sweep(
    target: Annotated[str, typer.Argument(
        help="GRID.yaml to run, or `status` followed by GRID.yaml.", metavar="[status] GRID")],
    grid_file: Annotated[Optional[Path], typer.Argument(
        help="With `status`: the grid file.", show_default=False, metavar="[GRID]")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    workers: Annotated[Optional[int], typer.Option(
        help="Runs at a time (local: processes, default 1; ray: tasks in flight, default "
             "all; slurm: array parallelism).")] = None,
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster: auto | HOST:PORT | ray://HOST:10001 (default: a private local "
             "Ray).")] = None,
    max_retries: Annotated[int, typer.Option(
        help="Retries of a run whose worker or node died (model errors are never "
             "retried).")] = 2,
    overwrite: Annotated[str, typer.Option(
        help="never: skip finished keys; only-missing: also redo keys whose predictions are "
             "gone; always: redo every key.")] = "never",
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Plan and list the keys; run nothing.")] = False,
    slurm_partition: Annotated[Optional[str], typer.Option(
        help="slurm: the partition to submit to.")] = None,
    timeout_min: Annotated[int, typer.Option(help="slurm: time limit per run, minutes.")] = 1440,
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run every cell of a grid (groups x models x datasets x seeds x settings) exactly once.

    Finished keys are skipped before dispatch and again on the worker; a failed run never
    stops the grid. `recbench sweep status GRID.yaml` shows done / running / stale / failed /
    missing per key.
    """
    setup_logging(verbose)
    from recbench.distributed.grid import expand, load_grid
    from recbench.distributed.sweep import plan_sweep

    status = target == "status"
    path = grid_file if status else Path(target)
    if path is None:
        raise ConfigError("sweep status: give the grid file, e.g. recbench sweep status "
                          "grid.yaml")
    if not status and grid_file is not None:
        raise ConfigError(f"sweep {target} {grid_file}: one grid file at a time (or `status "
                          "GRID`)")
    grid = load_grid(path)
    cells = expand(grid, home=home, overwrite="never" if status else overwrite)
    from recbench.core import paths

    plan = plan_sweep(cells, grid.name, paths.home(home), executor)
    if status:
        print_status(plan)
        return
    console.print(f"sweep {grid.name}: {len(plan.all)} keys, {len(plan.finished)} finished, "
                  f"{len(plan.specs)} to run on {executor}"
                  + (f" ({plan.duplicates} duplicate cells merged)" if plan.duplicates else ""),
                  highlight=False)
    if dry_run:
        print_plan(plan)
        return
    from recbench.distributed.executors import make_executor
    from recbench.distributed.sweep import sweep_dir

    slurm = {"timeout_min": timeout_min}
    if slurm_partition:
        slurm["slurm_partition"] = slurm_partition
    runner = make_executor(executor, workers=workers, max_retries=max_retries,
                           address=address, folder=sweep_dir(plan.home, plan.name) / "slurm",
                           slurm=slurm)
    result = run_with_progress(plan, runner)
    if result.failures:
        raise typer.Exit(1)


def print_plan(plan) -> None:
    from rich.table import Table

    from recbench.core.progress import printable

    table = Table(title=f"sweep {printable(plan.name)}")
    for col in ("key", "run", "cpus", "gpus", "state"):
        table.add_column(col)
    for spec in plan.all:
        state = "finished" if spec in plan.finished else "to run"
        table.add_row(spec.key, printable(spec.label), str(spec.cpus), f"{spec.gpus:g}", state)
    console.print(table)


def print_status(plan) -> None:
    from collections import Counter

    from rich.table import Table

    from recbench.core.progress import printable
    from recbench.distributed.sweep import sweep_status

    rows = sweep_status(plan)
    colour = {"done": "green", "running": "cyan", "stale": "yellow", "failed": "red",
              "missing": "dim"}
    table = Table(title=f"sweep {printable(plan.name)}")
    for col in ("key", "run", "state", "attempts", "detail"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row.spec.key, printable(row.spec.label),
                      f"[{colour[row.state]}]{row.state}[/]", str(row.attempts),
                      printable(row.detail))
    console.print(table)
    counts = Counter(r.state for r in rows)
    console.print(", ".join(f"{counts.get(s, 0)} {s}" for s in colour), highlight=False)


def run_with_progress(plan, executor):
    """Run a plan with one Rich progress bar (done/running/failed/skipped) and a final table of
    failures (key, log, last error line). Returns the `SweepResult`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from recbench.core.progress import printable
    from recbench.distributed.sweep import SweepEvents, run_sweep

    class RichEvents(SweepEvents):
        def __init__(self, progress, task):
            super().__init__()
            self.progress, self.task = progress, task

        def _show(self):
            c = self.counts
            self.progress.update(
                self.task, completed=sum(c[s] for s in c if s != "retried"),
                description=f"{c['done']} done, {max(self.running, 0)} running, "
                            f"{c['failed'] + c['lost']} failed, "
                            f"{c['skipped'] + c['busy'] + c['duplicate']} skipped")

        def started(self, spec, where):
            super().started(spec, where)
            self._show()

        def retrying(self, spec, lost):
            super().retrying(spec, lost)
            self.progress.console.print(f"[yellow]retrying[/] {printable(spec.label)}: "
                                        f"{printable(lost.error)}", highlight=False)
            self._show()

        def finished(self, outcome):
            super().finished(outcome)
            style = {"done": "green", "failed": "red", "lost": "red"}.get(outcome.status,
                                                                           "yellow")
            what = {"busy": "running elsewhere", "duplicate": "duplicate discarded"}.get(
                outcome.status, outcome.status)
            self.progress.console.print(
                f"[{style}]{what}[/] {printable(outcome.label)} [dim]({outcome.key}, "
                f"{outcome.seconds:.1f} s on {printable(outcome.node)})[/]", highlight=False)
            self._show()

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("starting", total=len(plan.specs))
        result = run_sweep(plan, executor, RichEvents(progress, task))
    done = result.count("done")
    console.print(f"sweep {printable(plan.name)}: {done} done, {len(plan.finished)} finished "
                  f"before, {result.count('skipped') + result.count('busy')} skipped on the "
                  f"worker, {result.count('duplicate')} duplicates discarded, "
                  f"{len(result.failures)} failed", highlight=False)
    if result.failures:
        table = Table(title="failed runs")
        for col in ("key", "run", "log", "last error"):
            table.add_column(col, overflow="fold")
        for o in result.failures:
            table.add_row(o.key, printable(o.label), printable(o.log_path or ""),
                          f"[red]{printable(o.error or '')}[/]")
        console.print(table)
    return result
