"""`recbench store check [--fix]`: orphans of the results store (and their removal)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, user_errors

store_app = typer.Typer(help="Inspect and tidy the results store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("check")
@user_errors
def check(
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    fix: Annotated[bool, typer.Option(
        "--fix", help="Remove the orphans found (each re-checked first).")] = False,
    stale_after: Annotated[float, typer.Option(
        "--stale-after", min=0.001,
        help="Seconds without a heartbeat after which a lease counts as stale.")] = 60.0,
) -> None:
    """List orphans: predictions without a record, stale leases, leftover temp files and the
    work dirs of finished keys; with --fix remove them. Ends with a one-line summary."""
    from rich.markup import escape

    from recbench.core import paths
    from recbench.results.orphans import KIND_NAMES, check_store, fix_store
    from recbench.results.store import ResultStore

    store = ResultStore(paths.home(home))
    found = check_store(store, stale_after_s=stale_after)
    for orphan in found.orphans:
        console.print(f"{KIND_NAMES[orphan.kind][0]}: {escape(str(orphan.path))} "
                      f"({escape(orphan.why)})", highlight=False, soft_wrap=True)
    for path, why in found.damaged:
        console.print(f"[yellow]damaged record[/]: {escape(str(path))} ({escape(why)})",
                      highlight=False, soft_wrap=True)
    if fix:
        fix_store(found, stale_after_s=stale_after)
    console.print(escape(found.summary(fixed=fix)), highlight=False, soft_wrap=True)
