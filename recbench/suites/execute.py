"""Running a suite: its expanded runs one after the other, a failing run reported, not fatal.

`recbench suite run` calls `check_suite_runs` (every row's settings resolve, every dataset is
prepared under the suite's protocol) before anything trains, then `run_suite`. Finished keys
are skipped by the runner, so a suite that was killed resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recbench.core import paths
from recbench.core.config import EvalConfig, resolve
from recbench.core.errors import ConfigError
from recbench.core.progress import Reporter
from recbench.groups import get_group
from recbench.runner import AUTO_PREPARED, RunOutcome, RunRequest
from recbench.runner import run as run_one
from recbench.suites import Suite, SuiteRow

log = logging.getLogger(__name__)


@dataclass
class SuiteRun:
    """One expanded run of a suite and how it went."""

    row: str
    request: RunRequest
    status: Literal["pending", "done", "skipped", "failed"] = "pending"
    outcomes: list[RunOutcome] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def dataset(self) -> str:
        return self.request.datasets[0]


def plan_runs(pairs: Sequence[tuple[SuiteRow, RunRequest]]) -> list[SuiteRun]:
    """The runs of `expand_rows`' (row, request) pairs, not started yet."""
    return [SuiteRun(row.name, req) for row, req in pairs]


def check_suite_runs(suite: Suite, runs: Sequence[SuiteRun], home: Path | None) -> None:
    """Fail before anything trains: unknown models/settings, datasets not prepared as needed.

    Raises:
        ConfigError: a row's model or settings do not resolve (the row is named).
        DataError: a dataset is not prepared under the suite's protocol (the message names the
            `recbench prepare` command).
    """
    root = paths.home(home)
    names = {run.row for run in runs}
    for row in suite.rows:
        if row.name in names:
            _check_row(row)
    for dataset, size in dict.fromkeys((run.dataset, run.request.size) for run in runs):
        if dataset not in AUTO_PREPARED:
            dataset_protocol(root, dataset, size, suite.protocol)


def _check_row(row: SuiteRow) -> None:
    from recbench.models.registry import MODELS, resolve_model

    try:
        resolved = resolve_model(get_group(row.group).name, row.model)
        model_cls = MODELS.load(resolved.name)
        resolve({"model": model_cls.Config, "eval": EvalConfig}, dict(row.settings),
                resolved.implied)
    except ConfigError as exc:
        raise ConfigError(f"suite row {row.name!r}: {exc}") from None


def dataset_protocol(home: Path, dataset: str, size: str, protocol: str) -> str:
    """The prepared protocol `protocol` of `dataset` at `size`, or a one-line error naming the
    `recbench prepare NAME --protocol P --size S` command."""
    from recbench.data.prepare import check_old_layout, resolve_protocol

    check_old_layout(home, dataset, size)
    return resolve_protocol(home, dataset, size, protocol)


def run_suite(runs: Sequence[SuiteRun], reporter: Reporter | None = None,
              on_start: Callable[[int, SuiteRun], None] = lambda _i, _run: None,
              on_done: Callable[[int, SuiteRun], None] = lambda _i, _run: None,
              ) -> list[SuiteRun]:
    """Run each planned run in order; a failure is recorded on its run and the next one starts.

    KeyboardInterrupt is not caught: nothing partial is written, and the next `suite run`
    resumes (finished keys are skipped).
    """
    reporter = reporter or Reporter()
    for i, run in enumerate(runs):
        on_start(i, run)
        t0 = time.perf_counter()
        try:
            run.outcomes = run_one(run.request, reporter)
            run.status = ("skipped" if run.outcomes and all(o.status == "skipped"
                                                             for o in run.outcomes) else "done")
        except Exception as exc:  # noqa: BLE001 - one failing row must not stop the suite
            log.exception("suite run %s on %s (seed %s) failed", run.row, run.dataset,
                          run.request.seed)
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        run.seconds = time.perf_counter() - t0
        on_done(i, run)
    return list(runs)


__all__ = ["SuiteRun", "check_suite_runs", "dataset_protocol", "plan_runs", "run_suite"]
