"""`recbench tune STUDY.yaml` and `recbench tune best STUDY --write tuned.yaml`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, setup_logging, user_errors
from recbench.core.errors import ConfigError


@app.command()
@user_errors
def tune(
    target: Annotated[str, typer.Argument(
        help="STUDY.yaml to tune, or `best` followed by the study name.",
        metavar="STUDY.yaml | best")],
    study_name: Annotated[Optional[str], typer.Argument(
        help="With `best`: the study name.", show_default=False, metavar="[STUDY]")] = None,
    storage: Annotated[Optional[str], typer.Option(
        help="Optuna storage URL: sqlite:///... or postgresql://... (default: "
             "sqlite under $RECBENCH_HOME/tuning/).")] = None,
    workers: Annotated[int, typer.Option(help="Parallel workers on one shared study.")] = 1,
    executor: Annotated[str, typer.Option(
        help="Where workers run: local | ray | slurm.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address.")] = None,
    cpus: Annotated[int, typer.Option(help="Threads per worker.")] = 1,
    timeout: Annotated[Optional[float], typer.Option(
        help="Seconds each worker may tune (over the study's timeout_s).")] = None,
    write: Annotated[Optional[Path], typer.Option(
        help="With `best`: write the best parameters here as a --config file.")] = None,
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Tune a model with Optuna (TPE, pruning after 10 trials, stop after `patience` trials
    without improvement) over N workers sharing one study; then `tune best` writes a config
    for an ordinary `recbench run --config`."""
    setup_logging(verbose)
    from recbench.core.progress import printable
    from recbench.distributed import tune as tuning

    if target == "best":
        if not study_name or write is None:
            raise ConfigError("tune best: give the study name and --write FILE.yaml")
        url = storage or tuning.default_storage(home, study_name)
        best = tuning.write_best(study_name, url, write)
        console.print(f"study {printable(study_name)}: best trial {best['trial']} (total "
                      f"NDCG@20 {best['value']:.4f}) -> {printable(write)}; run it with "
                      f"recbench run ... --config {printable(write)}", highlight=False)
        return
    if study_name is not None:
        raise ConfigError(f"tune {target} {study_name}: one study file at a time (or `best "
                          "STUDY`)")
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more")
    study = tuning.load_study(Path(target))
    if timeout is not None:
        if timeout <= 0:
            raise ConfigError(f"--timeout {timeout}: expected a positive number of seconds")
        study = tuning.Study(study.spec.model_copy(update={"timeout_s": timeout}), study.space,
                             study.path)
    out = tuning.run_tune(study, storage, workers, executor=executor, home=home,
                          address=address, cpus=cpus)
    states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(out["states"].items()))
    console.print(f"study {printable(out['study'])}: {out['trials']} trials ({states}); best "
                  f"total NDCG@20 {out['best_value']:.4f} (trial {out['best_trial']}) "
                  f"{printable(out['best_params'])}; storage {printable(out['storage'])}",
                  highlight=False)
