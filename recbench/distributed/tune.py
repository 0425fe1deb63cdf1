"""`recbench tune`: Optuna studies over shared storage, N workers (paper 002 §7.1.4).

The protocol maps onto plain Optuna:

- TPE (`TPESampler(n_startup_trials=40, multivariate=True)`, constant liar on, so parallel
  workers do not all sample the same point), a *different sampler seed per worker*
  (seed + rank: with one seed every worker would draw the same random start-up configs);
- the objective is the total NDCG@20 (full catalogue) over the validation folds, reported
  fold by fold (`trial.report(running total, fold)`) so the pruner can act between folds;
- `PercentilePruner(80.0, n_startup_trials=10)`: a trial whose running total is in the
  bottom 20% of the completed trials at the same fold is pruned, and only once 10 trials have
  completed (pruned trials count toward neither);
- every worker carries the stop rule: after `patience` (100) trials without improving the
  best value, `study.stop()` ends that worker's loop (each worker checks it on the shared
  storage, so all of them stop);
- SQLite (one machine, the default under $RECBENCH_HOME/tuning/) or any SQLAlchemy URL
  (PostgreSQL for several machines) with Optuna's heartbeat: a trial whose worker dies stops
  beating, is failed after the grace period, and `RetryHeartbeatStaleTrialCallback` enqueues
  it again with the same parameters; the next free worker runs it.

Folds: a dataset prepared with `temporal-v1` carries three chained validation folds
(`seq/folds/fold*/`, each a train and a test part cut from the training period); each fold
trains the model on its train part and scores its test part. Any other protocol has no
folds, and the stand-in objective is stated in the study's user attributes: the model
trains once on the train split and the validation split is cut into three consecutive
parts, reported as three "folds" (a cheaper proxy: the folds share one training).

Fold metrics stay in the study (trial user attributes); nothing here writes a record. `tune
best STUDY --write tuned.yaml` writes the best parameters as a `--config` file for an
ordinary `recbench run`, with the study and trial it came from in a comment.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recbench.core import paths
from recbench.core.config import read_yaml_mapping, validate_as
from recbench.core.errors import ConfigError, RecbenchError
from recbench.core.names import check_name, within

log = logging.getLogger(__name__)
SPACES_DIR = Path(__file__).parent / "spaces"
Scalar = Union[bool, int, float, str]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Param(_Closed):
    """One dimension of a search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Scalar] | None = None

    def check(self, name: str, where: str) -> None:
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: {name}: a categorical parameter needs choices")
            return
        if self.low is None or self.high is None or not self.low <= self.high:
            raise ConfigError(f"{where}: {name}: needs low <= high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}: {name}: a log scale needs low > 0, got {self.low}")

    def suggest(self, trial, name: str) -> Any:
        if self.type == "categorical":
            return trial.suggest_categorical(name, self.choices)
        if self.type == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


class StudyFile(_Closed):
    """STUDY.yaml: what to tune, on which data, and the protocol's numbers."""

    name: str
    group: str
    model: str
    dataset: str
    size: str = "small"
    protocol: str | None = None  # the dataset's protocol (temporal-v1 has the tuning folds)
    seed: int = 0
    settings: dict[str, Scalar] = Field(default_factory=dict)  # fixed for every trial
    space: Union[str, dict[str, Param]]  # a file in recbench/distributed/spaces, or inline
    startup_trials: int = Field(40, ge=0)
    prune_after: int = Field(10, ge=0)  # completed trials before pruning starts
    prune_bottom_percent: float = Field(20.0, gt=0, lt=100)
    patience: int = Field(100, ge=1)  # trials without improvement before every worker stops
    n_trials: int | None = Field(None, ge=1)  # per worker (None: until patience or timeout)
    timeout_s: float | None = Field(None, gt=0)
    heartbeat_s: int = Field(60, ge=1)
    grace_s: int = Field(180, ge=1)
    max_retry: int = Field(2, ge=0)


@dataclass(frozen=True)
class Study:
    spec: StudyFile
    space: dict[str, Param]
    path: Path | None


def load_space(name: str) -> dict[str, Param]:
    path = within(SPACES_DIR, f"{check_name(name, 'search space')}.yaml")
    if not path.is_file():
        choices = sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown search space {name!r}; choose {', '.join(choices)} or give "
                          "the space inline")
    return _parse_space(yaml.safe_load(path.read_text()) or {}, str(path))


def _parse_space(raw: dict, where: str) -> dict[str, Param]:
    try:
        space = {k: Param.model_validate(v) for k, v in raw.items()}
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(f"{where}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    for name, param in space.items():
        param.check(name, where)
    return space


def load_study(path: Path) -> Study:
    return study_from_dict(read_yaml_mapping(path, "study"), path)


def study_from_dict(raw: dict, path: Path | None = None) -> Study:
    where = str(path) if path else "study"
    spec = validate_as(StudyFile, raw, where)
    check_name(spec.name, f"study name in {where}")
    check_name(spec.dataset, f"dataset name in {where}")
    space = load_space(spec.space) if isinstance(spec.space, str) else \
        _parse_space({k: v.model_dump() for k, v in spec.space.items()}, where)
    if not space:
        raise ConfigError(f"{where}: the search space is empty")
    return Study(spec, space, path)


def default_storage(home: Path, name: str) -> str:
    folder = Path(paths.home(home)).resolve() / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{within(folder, check_name(name, 'study name') + '.db')}"


def _storage(url: str, spec: StudyFile):
    _optuna()
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=spec.heartbeat_s,
                      grace_period=spec.grace_s,
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                          max_retry=spec.max_retry))


def _optuna():
    from recbench.distributed.executors import require

    optuna = require("optuna", "recbench tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def create_study(study: Study, storage: str, rank: int = 0):
    """The shared study (created by whichever worker comes first), with this worker's sampler."""
    optuna = _optuna()
    spec = study.spec
    sampler = optuna.samplers.TPESampler(n_startup_trials=spec.startup_trials,
                                         seed=spec.seed + rank, multivariate=True,
                                         constant_liar=True)
    pruner = optuna.pruners.PercentilePruner(100.0 - spec.prune_bottom_percent,
                                             n_startup_trials=spec.prune_after)
    return optuna.create_study(study_name=spec.name, storage=_storage(storage, spec),
                               sampler=sampler, pruner=pruner, direction="maximize",
                               load_if_exists=True)


class StopWithoutImprovement:
    """`study.stop()` once `patience` trials have finished since the best one (every worker
    registers it; each reads the same storage, so each stops its own loop)."""

    def __init__(self, patience: int):
        self.patience = patience

    def __call__(self, study, trial) -> None:
        optuna = _optuna()
        done = [t for t in study.get_trials(deepcopy=False)
                if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
        complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            return
        best = max(complete, key=lambda t: t.value).number
        if sum(t.number > best for t in done) >= self.patience:
            study.stop()


# ----------------------------------------------------------------------------- objective

@dataclass
class Fold:
    train: Any  # polars frames
    test: Any


def study_request(study: Study, home: Path):
    """The ordinary run request a study tunes (its key settings; trials add their params)."""
    from recbench.runner import RunRequest

    spec = study.spec
    return RunRequest(group=spec.group, model=spec.model, datasets=[spec.dataset],
                      sets=dict(spec.settings), seed=spec.seed, size=spec.size, task="seq",
                      home=Path(home), protocol=spec.protocol)


class Objective:
    """Total NDCG@20 over the folds for one trial's parameters (reported fold by fold)."""

    def __init__(self, study: Study, home: Path):
        from recbench.runner import resolve_request

        self.study, self.home = study, Path(paths.home(home)).resolve()
        self.request = study_request(study, self.home)
        self.resolved = resolve_request(self.request)
        (dataset, task, manifest, _), = self.resolved.cells
        from recbench.runner import load_task_data

        self.data = load_task_data(self.resolved.home, dataset, study.spec.size, task, manifest)
        self.folds, self.kind = self._folds()

    def _folds(self) -> tuple[list[Fold] | None, str]:
        import polars as pl

        root = Path(self.data.path) / "seq" / "folds" if self.data.path else None
        if root is not None and root.is_dir():
            folds = []
            for d in sorted(p for p in root.iterdir() if p.is_dir()):
                test = d / "test.parquet" if (d / "test.parquet").exists() else d / "valid.parquet"
                folds.append(Fold(pl.read_parquet(d / "train.parquet"), pl.read_parquet(test)))
            if folds:
                return folds, f"{len(folds)} temporal validation folds ({root})"
        return None, ("stand-in: no validation folds in this dataset's protocol; trained once "
                      "on the train split, the valid split cut into 3 consecutive parts")

    def _model(self, params: dict[str, Any]):
        from recbench.core.config import EvalConfig, load_yaml, resolve
        from recbench.models.base import RunContext

        model_cls = self.resolved.model_cls
        configs = resolve({"model": model_cls.Config, "eval": EvalConfig},
                          load_yaml(None), dict(self.study.spec.settings), params)
        ctx = RunContext(seed=self.study.spec.seed, device="cpu",
                         cache_dir=paths.cache_dir(self.home), work_dir=None, smoke=False,
                         log=log, extra={})
        return model_cls(configs["model"], ctx)

    def __call__(self, trial) -> float:
        import dataclasses

        optuna = _optuna()
        params = {name: p.suggest(trial, name) for name, p in self.study.space.items()}
        trial.set_user_attr("objective", self.kind)
        total, per_fold = 0.0, []
        if self.folds is None:
            model = self._model(params)
            model.fit(self.data)
            parts = np.array_split(np.arange(self.data.valid.height), 3)
            evals = [(model, self.data.valid[int(p[0]):int(p[-1]) + 1]) for p in parts if len(p)]
        else:
            evals = None
        for step in range(len(self.folds) if self.folds is not None else len(evals)):
            if self.folds is not None:
                fold = self.folds[step]
                data = dataclasses.replace(self.data, train=fold.train, valid=fold.test,
                                           test=fold.test)
                model = self._model(params)
                model.fit(data)
                rows = fold.test
            else:
                model, rows = evals[step]
            value = ndcg_at(model, rows, 20)
            per_fold.append(value)
            total += value
            trial.report(total, step)
            trial.set_user_attr("fold_ndcg@20", per_fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return total


def ndcg_at(model, rows, k: int = 20, batch: int = 256) -> float:
    """Mean NDCG@k over the full catalogue (pessimistic ties, as every evaluator ranks)."""
    from recbench import metrics

    ranks = []
    for lo in range(0, rows.height, batch):
        part = rows[lo:lo + batch]
        scores = np.asarray(model.score_items(part), dtype=np.float32)
        ranks.append(metrics.full_ranks(scores, part["target"].to_numpy().astype(np.int64)))
    r = np.concatenate(ranks) if ranks else np.zeros(0)
    return float(np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0).mean()) if len(r) else 0.0


# ----------------------------------------------------------------------------- workers

def tune_worker(study: Study, storage: str, rank: int, home: str, cpus: int = 1) -> dict:
    """One worker: pin threads, open the shared study, optimise until a stop rule fires.

    A trial whose parameters the model rejects (a `RecbenchError`, e.g. k > sample_size) is
    recorded as FAIL and the worker goes on; anything else ends the worker.
    """
    from recbench.distributed.work import pin_threads

    pin_threads(cpus)
    spec = study.spec
    objective = Objective(study, Path(home))
    optuna_study = create_study(study, storage, rank)
    t0 = time.perf_counter()
    optuna_study.optimize(objective, n_trials=spec.n_trials, timeout=spec.timeout_s,
                          callbacks=[StopWithoutImprovement(spec.patience)],
                          catch=(RecbenchError,), gc_after_trial=False)
    return {"rank": rank, "pid": os.getpid(), "seconds": time.perf_counter() - t0}


def _spawned_worker(args) -> None:
    tune_worker(*args)


def run_tune(study: Study, storage: str | None, workers: int, executor: str = "local",
             home: Path | None = None, address: str | None = None, cpus: int = 1) -> dict:
    """Start `workers` workers on `executor`, wait for all, and summarise the study."""
    import multiprocessing

    home_abs = str(Path(paths.home(home)).resolve())
    storage = storage or default_storage(Path(home_abs), study.spec.name)
    _optuna()
    from recbench.runner import resolve_request

    # validated and prepared here, once: workers must not race to prepare the dataset
    resolve_request(study_request(study, Path(home_abs)))
    create_study(study, storage, 0)  # create it once, before workers race to
    args = [(study, storage, rank, home_abs, cpus) for rank in range(workers)]
    if executor == "local":
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_spawned_worker, args=(a,), name=f"recbench-tune-{a[2]}")
                 for a in args]
        for p in procs:
            p.start()
        try:
            for p in procs:
                p.join()
        finally:
            for p in procs:
                if p.is_alive():
                    p.kill()
                    p.join()
    elif executor == "ray":
        from recbench.distributed.executors import RayExecutor

        ray, started_here = RayExecutor(address, workers)._connect()
        try:
            task = ray.remote(tune_worker)
            ray.get([task.options(num_cpus=cpus, max_retries=2).remote(*a) for a in args])
        finally:
            if started_here:
                ray.shutdown()
    elif executor == "slurm":
        from recbench.distributed.executors import require

        submitit = require("submitit", "--executor slurm")
        ex = submitit.AutoExecutor(folder=str(Path(home_abs) / "tuning" / "slurm" / "%j"))
        ex.update_parameters(cpus_per_task=cpus, timeout_min=72 * 60,
                             slurm_array_parallelism=workers)
        for job in ex.map_array(tune_worker, *zip(*args, strict=True)):
            job.result()
    else:
        raise ConfigError(f"--executor {executor!r}: choose local, ray or slurm")
    return summary(study, storage)


def summary(study: Study, storage: str) -> dict:
    optuna = _optuna()
    s = optuna.load_study(study_name=study.spec.name, storage=_storage(storage, study.spec))
    trials = s.get_trials(deepcopy=False)
    states = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    return {"study": study.spec.name, "storage": storage, "trials": len(trials),
            "states": states, "best_value": best.value if best else math.nan,
            "best_trial": best.number if best else None,
            "best_params": best.params if best else {}}


def write_best(name: str, storage: str, out: Path) -> dict:
    """Write the best trial's parameters as a `--config` file (with where they came from)."""
    optuna = _optuna()
    s = optuna.load_study(study_name=check_name(name, "study name"), storage=storage)
    complete = [t for t in s.get_trials(deepcopy=False)
                if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"study {name} in {storage}: no completed trial yet")
    best = max(complete, key=lambda t: t.value)
    where = masked_url(storage)
    header = (f"# tuned by recbench tune: study {name}, trial {best.number}, total "
              f"NDCG@20 {best.value:.6f}\n# storage {where}\n"
              f"# objective: {best.user_attrs.get('objective', '')}\n"
              "# tuned_from is provenance: `recbench run` keeps it out of the config and its "
              "hash,\n# and the run's record names the study and trial\n")
    from recbench.core.atomic import write_text

    # the runner reads `tuned_from` into Record.tuned_from (recbench.results.record.TunedFrom)
    body = {**dict(best.params), "tuned_from": {"study": name, "trial": best.number,
                                                "value": float(best.value), "storage": where}}
    write_text(out, header + yaml.safe_dump(body, sort_keys=True))
    return {"trial": best.number, "value": best.value, "params": best.params}


def masked_url(url: str) -> str:
    """`url` with any password replaced by ***: a record or a config file never holds one."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
