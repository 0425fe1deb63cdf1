"""Executors: where the runs of a sweep execute, behind one small interface.

    executor.map(specs, events) -> iterator of Outcome, in completion order

- `local` (default, no dependency): standard-library processes, at most `workers` at a time
  and a fresh process per run (no torch state, threads or memory carried between runs; a crash
  takes down only its own run). The processes are forked from one `forkserver` that imported
  torch, Accelerate, polars and the runner once (`recbench.distributed.warm`), so a run does
  not spend its first seconds importing them (`start="spawn"` gives a bare interpreter per
  run instead). A process that dies without reporting is `lost` and retried up to
  `max_retries` times; the retry takes over the dead run's lease and resumes from its epoch
  checkpoint.
- `ray`: one Ray core task per run with `num_cpus`/`num_gpus` from the grid's resources,
  `max_retries` on worker or node loss and `retry_exceptions=False` (a model error is
  deterministic: `run_spec` returns it as a `failed` outcome and Ray never retries it). GPU
  tasks get `max_calls=1`: a fresh worker process, so GPU memory is freed between runs.
- `slurm`: submitit job arrays (one array per resource shape, at most `workers` running);
  `cluster="local"` runs them as local subprocesses (for tests, or a machine without Slurm).

Ray and submitit are imported only when chosen, with a one-line install hint otherwise.
Multi-node runs need $RECBENCH_HOME on a file system every node sees (splits, records, leases,
epoch checkpoints), as submitit needs its folder there.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import socket
import time
from collections import deque
from collections.abc import Iterator, Sequence
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Protocol

from recbench.core.errors import ConfigError
from recbench.distributed.work import Outcome, RunSpec, log_attempt, run_spec

EXECUTORS = ("local", "ray", "slurm")
EXTRAS = {"ray": "ray", "submitit": "slurm", "optuna": "tune"}


class Events:
    """Callbacks from an executor to whoever shows progress (the default does nothing)."""

    def started(self, spec: RunSpec, where: str) -> None:
        """An attempt of `spec` was handed to a worker (`where`: a pid, a Ray/Slurm id)."""

    def retrying(self, spec: RunSpec, lost: Outcome) -> None:
        """An attempt was lost (worker or node died) and `spec` goes back in the queue."""


class Executor(Protocol):
    name: str

    def map(self, specs: Sequence[RunSpec], events: Events) -> Iterator[Outcome]:
        """Run every spec; yield each final outcome as it arrives (one per spec)."""
        ...


def require(module: str, what: str) -> Any:
    """Import an optional dependency or fail with the one-line install hint."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = EXTRAS.get(module, module)
        raise ConfigError(f"{what} needs {module}, which is not installed: "
                          f"pip install 'recbench[{extra}]'") from None


def make_executor(name: str, workers: int | None = None, max_retries: int = 2,
                  address: str | None = None, folder: Path | None = None,
                  slurm: dict[str, Any] | None = None) -> Executor:
    """The executor called `name` (local | ray | slurm)."""
    if max_retries < 0:
        raise ConfigError(f"--max-retries {max_retries}: expected 0 or more")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: expected 1 or more")
    if name == "local":
        if address:
            raise ConfigError("--address is for --executor ray; the local executor runs here")
        return LocalExecutor(workers or 1, max_retries)
    if name == "ray":
        return RayExecutor(address, workers, max_retries)
    if name == "slurm":
        if folder is None:
            raise ConfigError("--executor slurm needs a folder for its job files")
        return SlurmExecutor(folder, workers, max_retries, slurm or {})
    raise ConfigError(f"--executor {name!r}: choose {', '.join(EXECUTORS)}")


def _lost(spec: RunSpec, node: str, where: str, why: str) -> Outcome:
    return Outcome(spec.key, spec.label, "lost", node=node, log_path=spec.log_path,
                   error=f"{why} ({where})")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            import signal

            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _child(spec: RunSpec, conn, environ: dict[str, str] | None = None,
           cwd: str | None = None) -> None:
    """Body of a worker process: one run, its outcome sent back, then exit.

    A process forked from the fork server starts with the server's environment and folder
    (those of the driver when the server started): the driver's current ones are restored
    first, as a spawned process would have had them."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if cwd is not None:
        os.chdir(cwd)
    outcome = run_spec(spec)
    conn.send(outcome)
    conn.close()


START_METHODS = ("forkserver", "spawn")


def _context(start: str):
    """The multiprocessing context for `start`; the fork server preloads the heavy imports."""
    if start not in START_METHODS:
        raise ConfigError(f"start method {start!r}: choose {', '.join(START_METHODS)}")
    if start == "forkserver" and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # read when the server starts (once per driver process); later calls change nothing
        ctx.set_forkserver_preload(["recbench.distributed.warm"])
        return ctx
    return multiprocessing.get_context("spawn")  # no fork server on this platform


class LocalExecutor:
    """At most `workers` processes at a time, one fresh process per run."""

    name = "local"

    def __init__(self, workers: int = 1, max_retries: int = 2, start: str = "forkserver"):
        self.workers, self.max_retries = workers, max_retries
        self.ctx = _context(start)

    def map(self, specs: Sequence[RunSpec], events: Events) -> Iterator[Outcome]:
        ctx = self.ctx
        forked = ctx.get_start_method() == "forkserver"
        host = socket.gethostname()
        queue = deque((spec, 0) for spec in specs)
        running: dict[int, tuple[Any, Any, RunSpec, int]] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    spec, tries = queue.popleft()
                    recv, send = ctx.Pipe(duplex=False)
                    extra = (dict(os.environ), os.getcwd()) if forked else ()
                    proc = ctx.Process(target=_child, args=(spec, send, *extra),
                                       name=f"recbench-run-{spec.key}")
                    proc.start()
                    send.close()  # the child holds the only writer: EOF if it dies
                    running[proc.sentinel] = (proc, recv, spec, tries)
                    events.started(spec, f"pid {proc.pid}")
                for sentinel in wait(list(running)):
                    proc, recv, spec, tries = running.pop(sentinel)
                    outcome = None
                    try:
                        if recv.poll():
                            outcome = recv.recv()
                    except (EOFError, OSError):
                        outcome = None
                    recv.close()
                    proc.join()
                    if outcome is not None:
                        yield outcome
                        continue
                    lost = _lost(spec, host, f"pid {proc.pid}",
                                 f"worker died with {_exit_text(proc.exitcode)} before reporting")
                    log_attempt(spec.sweep_dir, {"event": "end", **lost.to_json()})
                    if tries < self.max_retries:
                        events.retrying(spec, lost)
                        queue.appendleft((spec, tries + 1))  # resumes from its checkpoint
                    else:
                        yield lost
        finally:  # interrupted or closed early: no orphan runs left behind
            for proc, recv, _, _ in running.values():
                proc.kill()
                proc.join()
                recv.close()


class RayExecutor:
    """One Ray core task per run; Ray retries lost workers/nodes, never model errors."""

    name = "ray"

    def __init__(self, address: str | None, workers: int | None = None, max_retries: int = 2):
        self.address, self.workers, self.max_retries = address, workers, max_retries

    def _connect(self):
        ray = require("ray", "--executor ray")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        started_here = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:  # a private single-node Ray on this machine, `workers` CPUs wide
                ray.init(num_cpus=self.workers or os.cpu_count(), **kwargs)
            started_here = True
        return ray, started_here

    def map(self, specs: Sequence[RunSpec], events: Events) -> Iterator[Outcome]:
        ray, started_here = self._connect()
        task = ray.remote(run_spec)
        pending = deque(specs)
        inflight: dict[Any, RunSpec] = {}
        limit = self.workers or max(len(specs), 1)
        try:
            while pending or inflight:
                while pending and len(inflight) < limit:
                    spec = pending.popleft()
                    options: dict[str, Any] = {"num_cpus": spec.cpus, "num_gpus": spec.gpus,
                                               "max_retries": self.max_retries,
                                               "retry_exceptions": False}
                    if spec.gpus > 0:
                        options["max_calls"] = 1
                    ref = task.options(**options).remote(spec)
                    inflight[ref] = spec
                    events.started(spec, "ray task")
                done, _ = ray.wait(list(inflight), num_returns=1)
                for ref in done:
                    spec = inflight.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        # retries exhausted (worker or node lost each time) or Ray itself failed
                        lines = str(exc).strip().splitlines() or [exc.__class__.__name__]
                        lost = _lost(spec, "", "ray", f"{exc.__class__.__name__}: {lines[-1]}")
                        log_attempt(spec.sweep_dir, {"event": "end", **lost.to_json()})
                        yield lost
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()


class SlurmExecutor:
    """submitit job arrays: one array per (cpus, gpus) shape, at most `workers` running."""

    name = "slurm"
    poll_s = 2.0

    def __init__(self, folder: Path, workers: int | None, max_retries: int,
                 parameters: dict[str, Any]):
        self.folder, self.workers, self.max_retries = folder, workers, max_retries
        self.parameters = dict(parameters)
        self.cluster = self.parameters.pop("cluster", None)  # None: Slurm if found; "local"

    def _executor(self, submitit, cpus: int, gpus: float):
        if gpus != int(gpus):
            raise ConfigError(f"--executor slurm: gpus {gpus} per run: Slurm allocates whole "
                              "GPUs; use a whole number, or the ray executor to share a GPU")
        ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster=self.cluster)
        params = {"cpus_per_task": cpus, "timeout_min": 24 * 60, **self.parameters}
        if gpus:
            params["gpus_per_node"] = int(math.ceil(gpus))
        if self.workers:
            params["slurm_array_parallelism"] = self.workers
        ex.update_parameters(**params)
        return ex

    def map(self, specs: Sequence[RunSpec], events: Events) -> Iterator[Outcome]:
        submitit = require("submitit", "--executor slurm")
        jobs: list[tuple[Any, RunSpec, int]] = []

        def submit(batch: list[tuple[RunSpec, int]]) -> None:
            shapes: dict[tuple[int, float], list[tuple[RunSpec, int]]] = {}
            for spec, tries in batch:
                shapes.setdefault((spec.cpus, spec.gpus), []).append((spec, tries))
            for (cpus, gpus), group in shapes.items():
                ex = self._executor(submitit, cpus, gpus)
                submitted = ex.map_array(run_spec, [spec for spec, _ in group])
                for job, (spec, tries) in zip(submitted, group, strict=True):
                    jobs.append((job, spec, tries))
                    events.started(spec, f"slurm job {job.job_id}")

        submit([(spec, 0) for spec in specs])
        try:
            while jobs:
                still = []
                retry: list[tuple[RunSpec, int]] = []
                for job, spec, tries in jobs:
                    if not job.done():
                        still.append((job, spec, tries))
                        continue
                    try:
                        yield job.result()
                    except (submitit.core.utils.FailedJobError,
                            submitit.core.utils.UncompletedJobError) as exc:
                        lines = str(exc).strip().splitlines() or [exc.__class__.__name__]
                        lost = _lost(spec, "", f"slurm job {job.job_id}", lines[-1][:300])
                        log_attempt(spec.sweep_dir, {"event": "end", **lost.to_json()})
                        if tries < self.max_retries:
                            events.retrying(spec, lost)
                            retry.append((spec, tries + 1))
                        else:
                            yield lost
                jobs[:] = still
                if retry:
                    submit(retry)
                if jobs:
                    time.sleep(self.poll_s)
        finally:
            for job, _, _ in jobs:
                job.cancel(check=False)
