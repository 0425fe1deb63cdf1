"""What travels to a worker and back: `RunSpec` in (exactly one run key), `Outcome` out.

`run_spec` is the one module-level entry every executor calls (a spawned process, a Ray task,
a Slurm array element). It pins the worker's threads to the CPUs the cell reserved *before*
torch loads, re-checks the key on the worker (a finished key is skipped again; a live lease
elsewhere is left alone; a stale one is taken over and resumed by the runner), and turns model
errors into a `failed` outcome instead of an exception, so no engine retries a deterministic
error. A lost worker (SIGKILL, node death) returns nothing: the executor reports it `lost`
and retries it.

This module imports nothing heavy (no torch, no Ray): unpickling a spec in a fresh worker must
not load torch before the thread count is set.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

# local | ray | slurm; the statuses an attempt can end in
Status = Literal["done", "skipped", "duplicate", "busy", "failed", "lost"]
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
ATTEMPTS_LOG = "attempts.jsonl"


@dataclass(frozen=True)
class RunSpec:
    """One (group, model, dataset, task, settings, seed) run: exactly one key.

    `request` holds the fields of a `recbench.runner.RunRequest` (datasets = [one], task set),
    kept as plain values so that unpickling a spec imports nothing heavy.
    """

    request: dict[str, Any]
    key: str
    label: str  # for humans: "G/SASRec-3L synthetic seq seed=0 lr=0.001"
    cpus: int = 1
    gpus: float = 0.0
    executor: str = "local"
    sweep_dir: str | None = None  # $HOME/sweeps/<name>: where attempts are logged
    record_path: str = ""

    @property
    def log_path(self) -> str:
        return str(Path(self.record_path).with_name(f"{self.key}.log"))


@dataclass(frozen=True)
class Outcome:
    """How one attempt of a spec ended (small: it comes back through pipes, Ray, pickles)."""

    key: str
    label: str
    status: Status
    node: str = ""
    pid: int = 0
    attempt: str | None = None
    seconds: float = 0.0
    record_path: str | None = None
    log_path: str | None = None
    error: str | None = None  # the last line of the error, for the failures table
    resumed_from_epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pin_threads(cpus: int) -> None:
    """Give BLAS/OpenMP/torch exactly `cpus` threads: env vars first (read when torch and numpy
    load), then torch itself if it is already loaded (a reused Ray worker)."""
    n = str(max(1, int(cpus)))
    for var in THREAD_VARS:
        os.environ[var] = n
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(n))
    try:  # the training side's own pinning (threadpoolctl, interop threads), where it exists
        from recbench.core.hardware import pin_threads as pin_hardware
    except ImportError:
        return
    pin_hardware(int(n))


def node_name(executor: str) -> str:
    """The host, plus Ray's node id under Ray: several Ray nodes may share one host."""
    host = socket.gethostname()
    if executor == "ray" and "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return f"{host}:{ray.get_runtime_context().get_node_id()[:12]}"
    return host


def log_attempt(sweep_dir: str | None, event: dict[str, Any]) -> None:
    """Append one JSON line to the sweep's attempts log. One `write` on an O_APPEND file, so
    lines from concurrent workers on one file system never interleave."""
    if not sweep_dir:
        return
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    line = (json.dumps({"time": time.time(), **event}, sort_keys=True) + "\n").encode()
    # 0o666 less the umask, like any file: a group-shared sweep stays writable by the group
    fd = os.open(Path(sweep_dir) / ATTEMPTS_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def run_spec(spec: RunSpec) -> Outcome:
    """Run one spec on this worker; never raises for a model or input error."""
    pin_threads(spec.cpus)
    node, pid, t0 = node_name(spec.executor), os.getpid(), time.perf_counter()
    log_attempt(spec.sweep_dir, {"event": "start", "key": spec.key, "node": node, "pid": pid})
    try:
        outcome = _run(spec, node, pid, t0)
    except Exception as exc:  # noqa: BLE001 - any error of one run is that run's failure
        outcome = _failed(spec, node, pid, t0, exc)
    log_attempt(spec.sweep_dir, {"event": "end", **outcome.to_json()})
    return outcome


def _run(spec: RunSpec, node: str, pid: int, t0: float) -> Outcome:
    from recbench.runner import RunRequest, run

    if spec.gpus >= 2:
        from recbench.core.errors import ConfigError
        from recbench.distributed.multigpu import accelerate_command, describe

        raise ConfigError(
            f"{spec.label}: a run on {spec.gpus:g} GPUs needs rank-aware training (only rank 0 "
            "leases, checkpoints and publishes), which the runner does not have yet; run it by "
            f"hand: {describe(accelerate_command(spec.request, int(spec.gpus)))}")

    req = RunRequest(**{**spec.request, "executor": spec.executor, "node": node})
    outcomes = run(req)
    if len(outcomes) != 1:
        raise RuntimeError(f"spec {spec.key} expanded to {len(outcomes)} runs on the worker")
    out = outcomes[0]
    key = out.path.stem
    if key != spec.key:  # the worker's code or data differ from the driver's
        raise RuntimeError(f"the worker computed key {key}, the driver {spec.key}: is the same "
                           "recbench version and prepared data on every node?")
    status = {"done": "done", "skipped": "skipped", "duplicate": "duplicate",
              "running-elsewhere": "busy"}[out.status]
    rec = out.record
    return Outcome(spec.key, spec.label, status, node, pid,
                   attempt=getattr(rec, "attempt", None) if rec else None,
                   seconds=time.perf_counter() - t0, record_path=str(out.path),
                   log_path=spec.log_path,
                   resumed_from_epoch=getattr(rec, "resumed_from_epoch", None) if rec else None)


def _failed(spec: RunSpec, node: str, pid: int, t0: float, exc: BaseException) -> Outcome:
    text = f"{exc.__class__.__name__}: {exc}".strip().splitlines()
    # the full traceback goes to the run's log, beside where its record would be
    try:
        Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(spec.log_path, "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR recbench.sweep: attempt on "
                     f"{node} (pid {pid}) failed\n{traceback.format_exc()}")
    except OSError:
        pass
    return Outcome(spec.key, spec.label, "failed", node, pid, seconds=time.perf_counter() - t0,
                   log_path=spec.log_path, error=text[-1] if text else exc.__class__.__name__)
