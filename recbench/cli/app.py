"""The Typer app. Each command module registers itself on `app`; heavy imports stay in bodies."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from recbench.core.errors import RecbenchError

app = typer.Typer(
    name="recbench",
    help="Benchmark LLM and conventional recommenders on frozen splits: prepare, run, leaderboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ls_app = typer.Typer(help="List registered datasets, groups and models.", no_args_is_help=True)
app.add_typer(ls_app, name="ls")

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn our exceptions (and Ctrl-C) into one red line and a non-zero exit, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecbenchError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]: nothing partial was written")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


HOME_HELP = "Where datasets, caches and results live (default: $RECBENCH_HOME or ./.recbench)."


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


# Command modules, imported for their side effect of registering on `app`. Add new ones here.
COMMAND_MODULES = ("data_cmds", "run_cmd", "leaderboard_cmd", "compare_cmd", "quickstart_cmd")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"recbench.cli.{name}")


_register_commands()


def main() -> None:
    app()
