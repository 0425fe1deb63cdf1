"""`recbench run`: one group x model over one or more prepared datasets, one record per task.

For each (dataset, task): resolve and validate the config (before any data loads), skip if the
store already holds the key, else train, evaluate, time per-sample latency, and write predictions
then the record (atomically; the record marks completion, so an interrupted run leaves nothing
that looks finished and simply runs again).

Under a launcher that starts one process per device (`accelerate launch --num_processes K -m
recbench run ...`), rank 0 alone reads the store, takes the lease, writes checkpoints,
predictions and the record and times the latency; every rank trains and scores its shard of
the test rows, gathered on rank 0 (`recbench.distributed.multigpu`).

A `--config` file written by `recbench tune best --write` carries a `tuned_from` block (study,
trial, value, storage): it is kept out of the configs and their hash, and the record names it.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import ValidationError

import recbench
from recbench.core import paths
from recbench.core.config import EvalConfig, config_hash, load_yaml, resolve
from recbench.core.errors import AlreadyExistsError, ConfigError, DataError, Interrupted
from recbench.core.hardware import fingerprint, pin_threads
from recbench.core.names import check_name
from recbench.core.nodelock import node_exclusive
from recbench.core.progress import Reporter
from recbench.data.catalog import not_prepared_error
from recbench.data.prepare import (
    load_manifest,
    prepare,
    prepared_path,
    prepared_protocols,
    read_split,
    resolve_protocol,
)
from recbench.data.protocols import DEFAULT_PROTOCOL, manifest_tasks, protocol_name
from recbench.distributed.multigpu import evaluate_on_ranks, from_main, init_ranks
from recbench.groups import get_group
from recbench.latency import measure
from recbench.models.base import Recommender, RunContext, TaskData
from recbench.models.registry import MODELS, resolve_model
from recbench.results.lease import DEFAULT_STALE_S, LeaseState
from recbench.results.record import Record, TunedFrom
from recbench.results.store import Published, ResultStore, run_key

log = logging.getLogger("recbench.run")
Overwrite = Literal["never", "only-missing", "always"]
SMOKE_ROWS = {"train": 512, "valid": 128, "test": 128}
AUTO_PREPARED = ("synthetic",)  # embedded datasets `run` prepares on demand


@dataclass
class RunRequest:
    group: str
    model: str
    datasets: list[str] = field(default_factory=list)  # empty: every dataset prepared at `size`
    config_file: Path | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    size: str = "small"
    device: str = "cpu"
    overwrite: Overwrite = "never"
    smoke: bool = False
    task: str | None = None
    home: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)  # explicit CLI flags, highest precedence
    # evaluation protocol (name or family); None: each dataset's only prepared protocol
    protocol: str | None = None
    executor: str | None = None  # recorded: local | ray | slurm when a sweep dispatched it
    attempt: str | None = None  # this try's id (default: a fresh one); names its predictions
    node: str | None = None  # recorded (default: the host); a sweep names its Ray node too
    lease_stale_s: float = DEFAULT_STALE_S  # a key's lease silent this long is taken over


@dataclass
class RunOutcome:
    """What happened to one (dataset, task): `done` (trained and published), `skipped` (a
    finished record exists), `running-elsewhere` (a live lease; `record` is None) or
    `duplicate` (another attempt published first; `record` is the winner's)."""

    dataset: str
    task: str
    status: Literal["done", "skipped", "running-elsewhere", "duplicate"]
    record: Record | None
    path: Path


@dataclass(frozen=True)
class PlannedRun:
    """One (dataset, task) cell of a request: the key its record is stored under.

    `recbench sweep` plans a grid with these (the same keys `run` computes) to skip finished
    cells before dispatching them.
    """

    dataset: str
    task: str
    key: str
    group: str
    model: str  # the name records, logs and checkpoints are stored under
    finished: bool  # `run` would skip it: a record exists and --overwrite keeps it


def plan(req: RunRequest, reporter: Reporter | None = None) -> list[PlannedRun]:
    """Resolve `req` (config validated, datasets prepared or checked) into its keys, running
    nothing."""
    r = _resolve(req, reporter or Reporter())
    store = ResultStore(r.home)
    out = []
    for dataset, task, _, key in r.cells:
        existing = store.find(dataset, r.group, r.stored_as, key)
        finished = existing is not None and _keep(existing, store, req.overwrite)
        out.append(PlannedRun(dataset, task, key, r.group, r.stored_as, finished))
    return out


@dataclass
class _Resolved:
    home: Path
    group: str
    model_name: str
    stored_as: str
    model_cls: type[Recommender]
    configs: dict
    chash: str
    cells: list[tuple[str, str, dict, str]]  # (dataset, task, manifest, key)
    tuned_from: TunedFrom | None = None  # the tuning study and trial the --config came from


def resolve_request(req: RunRequest, reporter: Reporter | None = None) -> _Resolved:
    """`req` resolved (model class, validated configs, prepared datasets, keys), running
    nothing: for callers that train outside a record, e.g. `recbench tune` trials."""
    return _resolve(req, reporter or Reporter())


def _resolve(req: RunRequest, reporter: Reporter) -> _Resolved:
    home = paths.home(req.home)
    group = get_group(req.group)
    resolved = resolve_model(group.name, req.model)
    model_name = resolved.name
    # records, logs and checkpoints live under one name: the registered one, or for a
    # construction (`--group J --model llama3-8b`) the name as given, which says the backbone
    stored_as = req.model if resolved.implied else model_name
    entry = MODELS.entry(model_name)
    tasks = [t for t in group.tasks if t in entry.meta["tasks"]]
    if req.task is not None:
        if req.task not in tasks:
            raise ConfigError(f"--task {req.task}: group {group.name} / {model_name} covers "
                              f"{', '.join(tasks)}")
        tasks = [req.task]
    if req.overwrite not in ("never", "only-missing", "always"):
        raise ConfigError(f"--overwrite {req.overwrite!r}: choose never, only-missing or always")
    _check_device(req.device)
    if isinstance(req.seed, bool) or not isinstance(req.seed, int) or req.seed < 0:
        raise ConfigError(f"--seed {req.seed!r}: expected an integer >= 0")
    if not req.lease_stale_s > 0:
        raise ConfigError(f"lease_stale_s {req.lease_stale_s!r}: expected a positive number of "
                          "seconds")
    protocol = protocol_name(req.protocol) if req.protocol is not None else None
    for dataset in req.datasets:  # names become paths: checked before anything loads
        _check_dataset(home, dataset, req.size)

    reporter.stage(f"loading {model_name}")
    model_cls: type[Recommender] = MODELS.load(model_name)
    # The model name's implied settings (e.g. its backbone) rank with explicit flags.
    from_file = load_yaml(req.config_file)
    tuned_from = _tuned_from(from_file.pop("tuned_from", None), req.config_file)
    configs = resolve({"model": model_cls.Config, "eval": EvalConfig},
                      from_file, req.sets, {**req.flags, **resolved.implied})
    if req.smoke:
        configs["eval"] = configs["eval"].model_copy(update={
            "latency_samples": min(20, configs["eval"].latency_samples), "latency_warmup": 2})
    chash = config_hash(configs)
    datasets = req.datasets or _prepared_datasets(home, req.size, protocol)
    cells = []
    for dataset in datasets:
        manifest = _ensure_prepared(home, dataset, req.size, req.seed, protocol, reporter)
        for task in _dataset_tasks(manifest, dataset, tasks, req.task):
            key = run_key(group.name, model_name, manifest["content_hash"], task, chash,
                          req.seed, req.smoke)
            cells.append((dataset, task, manifest, key))
    return _Resolved(home, group.name, model_name, stored_as, model_cls, configs, chash, cells,
                     tuned_from)


def _tuned_from(block: Any, config_file: Path | None) -> TunedFrom | None:
    if block is None:
        return None
    try:
        return TunedFrom.model_validate(block)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{config_file}: tuned_from{'.' + where if where else ''}: "
                          f"{err['msg']} (expected study, trial, value, storage as written by "
                          "`recbench tune best --write`)") from None


def run(req: RunRequest, reporter: Reporter | None = None) -> list[RunOutcome]:
    rank, _ = init_ranks(req.device)
    # one rank speaks for the run: the others would print every line again
    reporter = (reporter or Reporter()) if rank == 0 else Reporter()
    r = _resolve(req, reporter)
    store = ResultStore(r.home)
    outcomes = []
    for dataset, task, manifest, key in r.cells:
        cell = _Cell(dataset, task, manifest, key)
        if rank == 0:
            outcomes.append(_run_leased(req, r, cell, store, reporter))
        else:
            outcomes.append(_follow_main(req, r, cell, store))
    return outcomes


@dataclass(frozen=True)
class _Cell:
    dataset: str
    task: str
    manifest: dict
    key: str


def _skipped(store, existing: Record, group, model_name, reporter) -> RunOutcome:
    path = store.record_path(existing.dataset, group, existing.model, existing.key)
    reporter.result(f"[yellow]skipped[/] {group}/{model_name} on {existing.dataset} "
                    f"({existing.task}): finished run exists ({path}); --overwrite always "
                    "re-runs it")
    return RunOutcome(existing.dataset, existing.task, "skipped", existing, path)


def _run_leased(req: RunRequest, r: _Resolved, cell: _Cell, store: ResultStore,
                reporter: Reporter) -> RunOutcome:
    """One run under its key's lease (rank 0): a finished key is skipped, a live lease
    elsewhere skips it too; a stale one (its owner died) is taken over and the run resumes
    from the key's epoch checkpoint. Other ranks learn the decision (`from_main`)."""
    group, model_name, stored_as = r.group, r.model_name, r.stored_as
    dataset, task, key = cell.dataset, cell.task, cell.key
    path = store.record_path(dataset, group, stored_as, key)
    existing = store.find(dataset, group, stored_as, key)
    if existing is not None and _keep(existing, store, req.overwrite):
        from_main(("skipped", None, existing))
        return _skipped(store, existing, group, model_name, reporter)
    lease = store.lease(dataset, group, stored_as, key, attempt=req.attempt,
                        stale_after_s=req.lease_stale_s)
    if isinstance(lease, LeaseState):
        from_main(("running-elsewhere", None, None))
        reporter.result(f"[yellow]skipped[/] {group}/{model_name} on {dataset} ({task}): "
                        f"running elsewhere ({lease.describe()}; lease {lease.path})")
        return RunOutcome(dataset, task, "running-elsewhere", None, path)
    with lease:
        if lease.taken_over is not None:
            reporter.stage(f"took over a stale lease ({lease.taken_over.describe()}): "
                           "resuming from its checkpoint if it left one")
        # another attempt may have finished the key between our first look and the lease
        existing = store.find(dataset, group, stored_as, key)
        if existing is not None and _keep(existing, store, req.overwrite):
            from_main(("skipped", None, existing))
            return _skipped(store, existing, group, model_name, reporter)
        from_main(("run", lease.attempt, existing))
        published = _run_one(req, r, cell, store, reporter, attempt=lease.attempt,
                             supersedes=existing)
    status = "duplicate" if published.duplicate else "done"
    return RunOutcome(dataset, task, status, published.record, published.path)


def _follow_main(req: RunRequest, r: _Resolved, cell: _Cell, store: ResultStore) -> RunOutcome:
    """A rank other than 0: do what rank 0 decided for the cell, touching nothing in the store
    (no lease, checkpoint, predictions or record); train and score its shard if it runs."""
    path = store.record_path(cell.dataset, r.group, r.stored_as, cell.key)
    decision, attempt, existing = from_main(None)
    if decision == "skipped":
        return RunOutcome(cell.dataset, cell.task, "skipped", existing, path)
    if decision == "running-elsewhere":
        return RunOutcome(cell.dataset, cell.task, "running-elsewhere", None, path)
    published = _run_one(req, r, cell, store, Reporter(), attempt=attempt, supersedes=existing)
    status = "duplicate" if published.duplicate else "done"
    return RunOutcome(cell.dataset, cell.task, status, published.record, published.path)


def _keep(existing: Record, store: ResultStore, overwrite: str) -> bool:
    if overwrite == "always":
        return False
    if overwrite == "only-missing" and existing.predictions:
        try:
            store.predictions(existing)
        except (OSError, DataError, pl.exceptions.ComputeError):
            return False  # repair: the record's predictions are gone or unreadable
    return True


def _run_one(req: RunRequest, r: _Resolved, cell: _Cell, store: ResultStore,
             reporter: Reporter, attempt: str, supersedes: Record | None) -> Published:
    """Train, evaluate, time and publish one cell. Under several ranks every rank trains and
    scores its shard; rank 0 alone logs to the run's file, times the latency and publishes,
    and the others receive how publishing ended."""
    home, group, model_name, stored_as = r.home, r.group, r.model_name, r.stored_as
    configs, dataset, task, key, manifest = r.configs, cell.dataset, cell.task, cell.key, \
        cell.manifest
    main = init_ranks(req.device)[0] == 0
    record_path = store.record_path(dataset, group, stored_as, key)
    work_dir = store.work_dir(dataset, group, stored_as, key)
    root_logger = logging.getLogger("recbench")
    handler = None
    if main:
        log_path = record_path.with_name(f"{key}.log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s"))
        root_logger.addHandler(handler)
        root_logger.setLevel(min(root_logger.level or logging.INFO, logging.INFO))
    started = _now()
    try:
        data = load_task_data(home, dataset, req.size, task, manifest, smoke=req.smoke)
        ctx = RunContext(seed=req.seed, device=req.device, cache_dir=paths.cache_dir(home),
                         work_dir=work_dir, smoke=req.smoke, log=log,
                         extra={"reporter": reporter})
        # the thread count is part of the key (EvalConfig.train_threads): pinned before the
        # model is built, so training, and evaluation after it, run at exactly that many
        pin_threads(configs["eval"].train_threads)
        _seed_everything(req.seed)
        model = r.model_cls(configs["model"], ctx)
        log.info("run %s: %s/%s on %s [%s], config %s", key, group, model_name, dataset, task,
                 {n: c.model_dump() for n, c in configs.items()})

        reporter.stage(f"{group}/{model_name} on {dataset} ({task}): training")
        t0 = time.perf_counter()
        model.fit(data)
        # a resumed run also spent the epochs it restored from its checkpoint
        train_result = getattr(model, "result", None)
        train_s = time.perf_counter() - t0 + getattr(train_result, "prior_seconds", 0.0)

        reporter.stage(f"{group}/{model_name} on {dataset} ({task}): evaluating "
                       f"{data.test.height:,} test rows")
        t0 = time.perf_counter()
        metrics, preds = evaluate_on_ranks(task, model, data, configs["eval"], reporter)
        eval_s = time.perf_counter() - t0
        if not main:
            return from_main(None)  # rank 0's Published, once it has published

        ecfg = configs["eval"]
        reporter.stage(f"{group}/{model_name} on {dataset} ({task}): latency, batch 1, "
                       f"{ecfg.latency_threads} thread(s)")
        score_one = model.predict_ctr if task == "ctr" else model.score_items
        # one latency timing per node at a time (recbench.core.nodelock): sweep workers
        # sharing a host never time while another times
        with node_exclusive(home, "latency"):
            latency = measure(score_one, data.test, n=ecfg.latency_samples,
                              warmup=ecfg.latency_warmup, threads=ecfg.latency_threads,
                              device=req.device)
        record = Record(
            key=key, group=group, model=stored_as, model_id=model.model_id,
            model_revision=model.model_revision, dataset=dataset, dataset_size=req.size,
            dataset_version=manifest["content_hash"],
            protocol_version=manifest["protocol_version"], task=task, mode=model.run_mode,
            metrics=metrics, latency=latency, train_seconds=train_s, eval_seconds=eval_s,
            seed=req.seed, config={n: c.model_dump(mode="json") for n, c in configs.items()},
            config_hash=r.chash, hardware=fingerprint(ecfg.latency_threads),
            recbench_version=recbench.__version__, git_commit=_git_commit(),
            started_at=started, finished_at=_now(), smoke=req.smoke,
            notes=model.notes() + _protocol_notes(manifest, task)
            + (["smoke run: tiny subset, not a result"] if req.smoke else []),
            executor=req.executor, node=req.node or socket.gethostname(), attempt=attempt,
            resumed_from_epoch=getattr(train_result, "resumed_from", None),
            tuned_from=r.tuned_from,
        )
        published = store.write(record, preds, supersedes=supersedes)
        shutil.rmtree(work_dir, ignore_errors=True)  # the key is finished, by us or the winner
        from_main(published)
        if published.duplicate:
            reporter.result(f"[yellow]duplicate discarded[/] {group}/{model_name} on {dataset} "
                            f"({task}): attempt {published.record.attempt} published first "
                            f"-> {published.path}")
            return published
        headline = _headline(task, metrics)
        reporter.result(f"[green]done[/] {group}/{model_name} on {dataset} ({task}): {headline}, "
                        f"latency {latency.mean_ms:.3f} ms/sample -> {published.path}")
        return published
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: say what was kept to resume from
        raise _interrupted(exc, work_dir) from exc
    finally:
        if handler is not None:
            root_logger.removeHandler(handler)
            handler.close()


def _interrupted(exc: KeyboardInterrupt, work_dir: Path) -> KeyboardInterrupt:
    if not (work_dir.is_dir() and any(work_dir.iterdir())):
        return exc
    interrupted = exc if isinstance(exc, Interrupted) else Interrupted()
    return interrupted.keeping(f"the checkpoint in {work_dir} was kept: rerun the same "
                               "command to resume from it")


def _dataset_tasks(manifest: dict, dataset: str, tasks: list[str], asked: str | None
                   ) -> list[str]:
    """The run's tasks that the dataset's protocol has rows for (a loo-v1 set has no CTR)."""
    offered = manifest_tasks(manifest)
    kept = [t for t in tasks if t in offered]
    if not kept:
        protocol = manifest["protocol_version"]
        wanted = asked or ", ".join(tasks)
        raise ConfigError(f"dataset {dataset!r} ({manifest['parameters']['size']}, protocol "
                          f"{protocol}) has no {wanted} rows: {protocol} prepares "
                          f"{', '.join(offered)} only; prepare it with `--protocol recbench` "
                          "for CTR")
    if len(kept) < len(tasks):
        log.info("%s (%s): no %s rows, running %s", dataset, manifest["protocol_version"],
                 ", ".join(t for t in tasks if t not in kept), ", ".join(kept))
    return kept


def _protocol_notes(manifest: dict, task: str) -> list[str]:
    """What a record says about its candidates: sampler, pool, exclusions, seed, tie rule."""
    block = manifest.get("protocol") or {}
    if task != "seq" or not block.get("candidates"):
        return []
    sampled = "; ".join(
        f"{split}: {c['n']} {c['sampler']} negatives from {c['pool']}, excluding {c['excludes']}, "
        f"seed {c['seed']} ({c['file']})" for split, c in block["candidates"].items())
    return [f"protocol {manifest['protocol_version']}: sampled candidates {sampled}; ties "
            f"{block.get('ties', 'pessimistic')}"]


def load_task_data(home: Path, dataset: str, size: str, task: str, manifest: dict,
                   smoke: bool = False) -> TaskData:
    protocol = manifest["protocol_version"]

    def read(rel: str) -> pl.DataFrame:
        return read_split(home, dataset, size, rel, protocol, manifest=manifest)  # sha256-checked

    splits = {s: read(f"{task}/{s}") for s in ("train", "valid", "test")}
    negatives = read("seq/test_negatives") if task == "seq" else None
    if smoke:
        splits = {s: df.head(SMOKE_ROWS[s]) for s, df in splits.items()}
        if negatives is not None:
            negatives = negatives.head(SMOKE_ROWS["test"])
    return TaskData(dataset=dataset, task=task, items=read("items"),
                    test_negatives=negatives, manifest=manifest,
                    path=prepared_path(home, dataset, size, protocol), **splits)


def _prepared_datasets(home: Path, size: str, protocol: str | None = None) -> list[str]:
    """Datasets prepared at `size` (with `protocol`, or any): datasets/NAME/PROTOCOL/SIZE."""
    pattern = f"*/{protocol or '*'}/{size}/manifest.json"
    found = sorted({p.parents[2].name for p in paths.datasets_dir(home).glob(pattern)})
    if not found:
        with_protocol = f" with protocol {protocol}" if protocol else ""
        flag = f" --protocol {protocol}" if protocol else ""
        raise DataError(f"no dataset is prepared at size {size!r}{with_protocol} under {home}: "
                        f"pass --dataset synthetic, or run `recbench prepare NAME{flag} --size "
                        f"{size}` first")
    return found


def _check_dataset(home: Path, dataset: str, size: str) -> None:
    """A safe name (recbench.core.names), and one that exists: a name that is neither prepared
    nor in the catalog (a typo) gets its close matches, not a `prepare` command for the typo."""
    check_name(dataset, "dataset name (--dataset)")
    if dataset in AUTO_PREPARED or paths.dataset_dir(home, dataset).is_dir():
        return
    raise not_prepared_error(dataset, size, home, paths.prepared_datasets(home))


def _ensure_prepared(home: Path, dataset: str, size: str, seed: int, protocol: str | None,
                     reporter: Reporter) -> dict:
    """The manifest `run` uses: the dataset's `protocol` (or its only prepared protocol)."""
    found = prepared_protocols(home, dataset, size)
    wanted = protocol or (found[0] if len(found) == 1 else DEFAULT_PROTOCOL)
    manifest_path = prepared_path(home, dataset, size, wanted) / "manifest.json"
    if not manifest_path.exists() and dataset in AUTO_PREPARED and (protocol or not found):
        reporter.stage(f"preparing {dataset} ({size}, {wanted}) first")
        try:
            prepare(dataset, size=size, seed=seed, home=home, show_progress=False,
                    protocol=wanted)
        except (AlreadyExistsError, FileExistsError, OSError) as exc:
            # another process prepared it meanwhile: its atomic rename won, ours was discarded
            lost_race = isinstance(exc, (AlreadyExistsError, FileExistsError)) or \
                exc.errno in (errno.EEXIST, errno.ENOTEMPTY)
            if not (lost_race and manifest_path.exists()):
                raise
            log.info("%s (%s) was prepared by another process meanwhile", dataset, size)
    return load_manifest(home, dataset, size, resolve_protocol(home, dataset, size, protocol))


DEVICES = ("cpu", "cuda")


def _check_device(device: str) -> None:
    """`cpu`, or `cuda` on a machine that has it; anything else is an error (training would
    otherwise run on the CPU, or on another GPU, under the name asked for). The training loop
    (Accelerate) places a single-process run on the current CUDA device, so a GPU is chosen
    with CUDA_VISIBLE_DEVICES, not cuda:N."""
    if device not in DEVICES:
        hint = " (choose the GPU with CUDA_VISIBLE_DEVICES)" if str(device).startswith(
            "cuda:") else ""
        raise ConfigError(f"--device {device!r}: choose cpu or cuda{hint}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu")


def _seed_everything(seed: int) -> None:
    import random
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - for third-party code that uses the global state
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _headline(task: str, metrics: dict) -> str:
    if task == "ctr":
        m = metrics["ctr"]
        return f"GAUC {m['gauc']:.4f} AUC {m['auc']:.4f}"
    m = metrics["full"]
    return f"NDCG@10 {m['ndcg@10']:.4f} HR@10 {m['hr@10']:.4f} (full)"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
