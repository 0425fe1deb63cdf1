"""The Typer app. Each command module registers itself on `app`; heavy imports stay in bodies."""

from __future__ import annotations

import functools
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from recbench.core.errors import DiskFullError, Interrupted, RecbenchError, is_disk_full
from recbench.core.progress import escape_controls, printable

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


def print_error(message: object, label: str = "error:") -> None:
    """The one place user-facing errors are printed: a red label, then the text literally.

    The message is `printable`: a ``[/]`` in a path or name and control bytes from data are
    shown as they are, never interpreted as Rich markup or sent raw to the terminal.
    """
    err_console.print(f"[bold red]{label}[/] {printable(message)}", highlight=False,
                      soft_wrap=True)


def user_errors(fn: F) -> F:
    """Turn our exceptions (and Ctrl-C / SIGTERM) into one red line and a non-zero exit.

    An interruption says what it left: nothing partial is ever published (datasets and records
    appear whole or not at all), and a training run that saved an epoch checkpoint says so,
    since rerunning the same command resumes from it.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecbenchError as exc:
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            kept = exc.kept if isinstance(exc, Interrupted) else None
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            print_error("no partial dataset or record was written" + (f"; {kept}" if kept else ""),
                        label="terminated:" if signum == signal.SIGTERM else "interrupted:")
            raise typer.Exit(128 + signum) from None
        except Exception as exc:
            # A writer outside the atomic helpers ran out of space: still one line.
            if not is_disk_full(exc):
                raise
            err = DiskFullError.from_os_error(exc, getattr(exc, "filename", None))
            print_error(err)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


def _terminate(signum: int, _frame: object) -> None:
    """SIGTERM (what schedulers and `kill` send) is handled like Ctrl-C: the same cleanup runs."""
    raise Interrupted(signum)


HOME_HELP = "Where datasets, caches and results live (default: $RECBENCH_HOME or ./.recbench)."


class _TerminalFormatter(logging.Formatter):
    """Log lines for a terminal: control bytes from data (an ESC in a raw file) are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class _StderrHandler(logging.StreamHandler):
    """The CLI's log handler: writes to whatever `sys.stderr` is at the time of the record."""

    def emit(self, record: logging.LogRecord) -> None:
        # a handler bound to the stderr of an earlier command (one in-process CLI call after
        # another: tests, notebooks) would write to a closed stream
        self.stream = sys.stderr
        super().emit(record)


def setup_logging(verbose: bool = False) -> None:
    """One stderr handler on the root logger (a second command call replaces the first's)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(_TerminalFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


# Command modules, imported for their side effect of registering on `app`. Add new ones here.
COMMAND_MODULES = ("data_cmds", "run_cmd", "leaderboard_cmd", "compare_cmd", "quickstart_cmd",
                   "store_cmd", "suite_cmd", "sweep_cmd",
                   "tune_cmd", "attributes_cmd")


def _register_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"recbench.cli.{name}")


_register_commands()


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()
