"""`recbench sweep`: plan a grid into run keys, skip finished ones, dispatch the rest.

The driver expands the grid (or a suite) into ordinary requests, plans each with
`recbench.runner.plan` (the same keys `recbench run` computes; datasets prepared once, here,
so that workers never race to prepare them), drops finished keys, and hands one `RunSpec` per
remaining key to an executor. Workers re-check their key (finished → skipped, live lease
elsewhere → busy), so a sweep restarted after a crash, or two sweeps over overlapping grids,
never train a key twice; a failed run never stops the grid.

State of a sweep lives in `$RECBENCH_HOME/sweeps/<name>/attempts.jsonl`: one line when an
attempt starts (written by the worker) and one when it ends (by the worker, or by the driver
for an attempt whose worker died). `sweep status` reads it with the store's records and leases.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbench.core import paths
from recbench.core.names import check_name, within
from recbench.distributed.executors import Events, Executor
from recbench.distributed.grid import Cell
from recbench.distributed.work import ATTEMPTS_LOG, Outcome, RunSpec


def sweeps_dir(home: Path) -> Path:
    return Path(home) / "sweeps"


def sweep_dir(home: Path, name: str) -> Path:
    return within(sweeps_dir(home), check_name(name, "sweep name"))


@dataclass
class SweepPlan:
    """A planned sweep: every key of the grid, split into finished ones and ones to run."""

    name: str
    home: Path
    specs: list[RunSpec]  # to dispatch
    finished: list[RunSpec]  # a record exists (and --overwrite keeps it)
    duplicates: int = 0  # cells of the grid that map to a key already planned

    @property
    def all(self) -> list[RunSpec]:
        return self.finished + self.specs


def _label(req, task: str) -> str:
    sets = " ".join(f"{k}={v}" for k, v in sorted(req.sets.items()))
    return (f"{req.group}/{req.model} {req.datasets[0]} {task} seed={req.seed}"
            + (f" {sets}" if sets else ""))


def plan_sweep(cells: Iterable[Cell], name: str, home: Path, executor: str,
               reporter=None) -> SweepPlan:
    """Plan `cells` into one spec per key (config errors surface here, before any dispatch)."""
    from recbench.results.store import ResultStore
    from recbench.runner import plan

    home = Path(paths.home(home)).resolve()
    store = ResultStore(home)
    sdir = str(sweep_dir(home, name))
    seen: set[str] = set()
    specs, finished, duplicates = [], [], 0
    for cell in cells:
        req = dataclasses.replace(
            cell.request, home=home,
            config_file=Path(cell.request.config_file).resolve() if cell.request.config_file
            else None)
        for p in plan(req, reporter):
            if cell.tasks is not None and p.task not in cell.tasks:
                continue
            if p.key in seen:
                duplicates += 1
                continue
            seen.add(p.key)
            one = dataclasses.replace(req, datasets=[p.dataset], task=p.task)
            spec = RunSpec(request=dataclasses.asdict(one), key=p.key, label=_label(one, p.task),
                           cpus=cell.resources.cpus, gpus=cell.resources.gpus,
                           executor=executor, sweep_dir=sdir,
                           record_path=str(store.record_path(p.dataset, p.group, p.model, p.key)))
            (finished if p.finished else specs).append(spec)
    return SweepPlan(name, home, specs, finished, duplicates)


class SweepEvents(Events):
    """Executor events plus one call per final outcome; counts them for the progress line."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.running = 0

    def started(self, spec: RunSpec, where: str) -> None:
        self.running += 1

    def retrying(self, spec: RunSpec, lost: Outcome) -> None:
        self.running -= 1
        self.counts["retried"] += 1

    def finished(self, outcome: Outcome) -> None:
        self.running -= 1
        self.counts[outcome.status] += 1


@dataclass
class SweepResult:
    plan: SweepPlan
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "lost")]

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)


def run_sweep(plan: SweepPlan, executor: Executor, events: SweepEvents | None = None
              ) -> SweepResult:
    """Dispatch the plan's specs; every outcome is collected (a failure never stops the grid)."""
    events = events or SweepEvents()
    result = SweepResult(plan)
    if not plan.specs:
        return result
    for outcome in executor.map(plan.specs, events):
        events.finished(outcome)
        result.outcomes.append(outcome)
    return result


# ----------------------------------------------------------------------------- status

@dataclass(frozen=True)
class KeyStatus:
    spec: RunSpec
    state: str  # done | running | stale | failed | missing
    detail: str = ""  # record path, lease owner, last error line
    attempts: int = 0


def read_attempts(sdir: Path) -> list[dict[str, Any]]:
    """The sweep's attempt events, oldest first (a torn last line is ignored)."""
    path = Path(sdir) / ATTEMPTS_LOG
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def sweep_status(plan: SweepPlan, stale_after_s: float | None = None) -> list[KeyStatus]:
    """Per key: done (record), running (fresh lease), stale (lease without heartbeat), failed
    (last attempt failed or was lost; its last error line), missing (never tried)."""
    from recbench.results.lease import DEFAULT_STALE_S, inspect_lease

    events = read_attempts(sweep_dir(plan.home, plan.name))
    starts = Counter(e["key"] for e in events if e.get("event") == "start")
    last_end: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event") == "end":
            last_end[e["key"]] = e
    out = []
    for spec in plan.all:
        record = Path(spec.record_path)
        n = starts.get(spec.key, 0)
        if record.exists():
            out.append(KeyStatus(spec, "done", str(record), n))
            continue
        lease = inspect_lease(record.with_suffix(".lease"), stale_after_s or DEFAULT_STALE_S)
        if lease is not None:
            out.append(KeyStatus(spec, "stale" if lease.stale else "running", lease.describe(), n))
            continue
        end = last_end.get(spec.key)
        if end is not None and end.get("status") in ("failed", "lost"):
            out.append(KeyStatus(spec, "failed", end.get("error") or "", n))
        else:
            out.append(KeyStatus(spec, "missing", "", n))
    return out
