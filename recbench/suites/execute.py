"""Running a suite: its expanded runs one after the other, a failing run reported, not fatal.

`recbench suite run` calls `check_suite_runs` (every row's settings resolve, every dataset is
prepared under the suite's protocol) before anything trains, then `run_suite`. Finished keys
are skipped by the runner, so a suite that was killed resumes where it stopped.

A suite with a `greedy` order (`GreedyOrder`) runs step by step instead (`run_greedy`): each
step's rows get the winners of the steps before; `full_grid` is the product of every step's
choices. Both return the suite with the settings each row really ran with (`resolved_suite`,
written by the CLI beside the records), which is what its leaderboard reads.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

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


# ---------------------------------------------------------------------------------------------
# The greedy order and the full grid (Suite.greedy)

Expander = Callable[[Suite], list[tuple[SuiteRow, RunRequest]]]
Runner = Callable[[list[SuiteRun]], list[SuiteRun]]


@dataclass
class GreedyStep:
    """One step of the greedy order: its candidates' scores and the winner it carried on."""

    step: str
    scores: dict[str, float]  # candidate row -> mean metric (rows without records left out)
    winner: str
    carried: dict[str, Any]  # the settings carried into the next step


def own_settings(reference: SuiteRow, row: SuiteRow) -> dict[str, Any]:
    """The settings `row` sets beyond the reference's: its own design choice."""
    return {k: v for k, v in row.settings.items() if reference.settings.get(k, _MISSING) != v}


_MISSING = object()


def builds_on(reference: SuiteRow, row: SuiteRow) -> bool:
    """Whether `row` takes the carried settings: same group and model, not a baseline."""
    return (row.group, row.model) == (reference.group, reference.model) and not row.is_baseline


def carried_row(reference: SuiteRow, carried: dict[str, Any], row: SuiteRow) -> SuiteRow:
    """`row` with its settings = the reference's, then `carried`, then its own."""
    if not builds_on(reference, row):
        return row
    settings = {**reference.settings, **carried, **own_settings(reference, row)}
    return row.model_copy(update={"settings": settings})


def _resolved(row: SuiteRow) -> dict[str, Any]:
    """The row's full model config (defaults filled in): two rows that resolve alike are one
    run (one record key)."""
    from recbench.models.registry import MODELS, resolve_model

    resolved = resolve_model(get_group(row.group).name, row.model)
    configs = resolve({"model": MODELS.load(resolved.name).Config, "eval": EvalConfig},
                      dict(row.settings), resolved.implied)
    return {"model": row.model, **configs["model"].model_dump(mode="json")}


def _score(runs: Sequence[SuiteRun], row: str, protocol: str, metric: str) -> float | None:
    """Mean over datasets of the mean over seeds of `metric`, from `row`'s finished runs."""
    by_dataset: dict[str, list[float]] = {}
    for run in runs:
        if run.row != row:
            continue
        for outcome in run.outcomes:
            value = (outcome.record.metrics.get(protocol, {}).get(metric)
                     if outcome.record is not None else None)
            if value is not None:
                by_dataset.setdefault(outcome.dataset, []).append(float(value))
    if not by_dataset:
        return None
    return statistics.fmean(statistics.fmean(v) for v in by_dataset.values())


def run_greedy(suite: Suite, expand: Expander, run: Runner,
               on_step: Callable[[Suite, list[GreedyStep]], None] = lambda _s, _h: None,
               ) -> tuple[list[SuiteRun], Suite, list[GreedyStep]]:
    """The greedy order: the rows outside the steps (the reference first), then each step.

    A step's candidates are the configuration carried into it (the previous winner, already
    run; shown as row `<step>-ref` unless a row of the step resolves to the same run) and its
    rows of the reference's model; the best mean `metric` wins (ties: the carried one, then row
    order), and the winner's own settings are carried on. A candidate without records (failed,
    or filtered out by `expand`) is passed over. `expand` turns a suite into (row, request)
    pairs (the CLI's datasets, seeds, --only ...); `run` runs a list of planned runs.

    Returns:
        Every run, the suite as it ran (each row with its carried settings, the `-ref` rows
        added) and the steps with their scores and winners.
    """
    order = suite.greedy
    if order is None:
        raise ConfigError(f"suite {suite.name} has no greedy order")
    reference = suite.row(order.reference)
    steps = set(order.steps)
    first = [reference, *(r for r in suite.rows if r.section not in steps and r is not reference)]
    runs = run(plan_runs(expand(suite.model_copy(update={"rows": first}))))
    rows_out, history = list(first), []
    best, carried = reference, {}
    for step in order.steps:
        rows = [carried_row(reference, carried, r) for r in suite.rows if r.section == step]
        if not rows:  # not selected (--only)
            continue
        runs_step = run(plan_runs(expand(suite.model_copy(update={"rows": rows}))))
        runs += runs_step
        same = [r for r in rows if builds_on(reference, r) and _resolved(r) == _resolved(best)]
        if not same and best is not reference:
            rows_out.append(best.model_copy(update={
                "name": f"{step}-ref", "row_group": step, "baseline": False,
                "note": f"the configuration carried into {step} (winner so far: {best.name})"}))
        rows_out += rows
        scores = {}
        for cand in [best, *(r for r in rows if builds_on(reference, r))]:
            value = _score(runs, cand.name, order.metrics_protocol, order.metric)
            if value is not None:
                scores.setdefault(cand.name, value)
        if scores:
            name = max(scores, key=lambda n: scores[n])  # the first of equals: carried first
            if name != best.name:
                best = next(r for r in rows if r.name == name)
                carried = {**carried, **own_settings(reference, best)}
        history.append(GreedyStep(step, scores, best.name, dict(carried)))
        on_step(suite.model_copy(update={"rows": rows_out}), history)
    return runs, suite.model_copy(update={"rows": rows_out}), history


def full_grid(suite: Suite) -> Suite:
    """The full product of every greedy step's choices: one row per combination, in section
    `grid` (named by the chosen rows, `+`-joined; the reference alone keeps its name), and the
    suite's other rows as written. Combinations that resolve to the same run appear once."""
    order = suite.greedy
    if order is None:
        raise ConfigError(f"suite {suite.name} has no greedy order")
    reference = suite.row(order.reference)
    choices = [[None, *(r for r in suite.rows if r.section == step and builds_on(reference, r))]
               for step in order.steps]
    rows, seen = [], set()
    for combo in itertools.product(*choices):
        chosen = [r for r in combo if r is not None]
        settings: dict[str, Any] = {}
        for r in chosen:
            settings.update(own_settings(reference, r))
        row = reference.model_copy(update={
            "name": "+".join(r.name for r in chosen) or reference.name, "row_group": "grid",
            "settings": {**reference.settings, **settings}})
        key = repr(sorted(_resolved(row).items()))
        if key not in seen:
            seen.add(key)
            rows.append(row)
    steps = set(order.steps) | {reference.section}
    others = [r for r in suite.rows if r.section not in steps or not builds_on(reference, r)]
    tables = [t.model_copy(update={"row_groups": None}) for t in suite.tables]
    return suite.model_copy(update={"rows": [*rows, *others], "tables": tables})


def resolved_suite_yaml(suite: Suite, header: Sequence[str] = ()) -> str:
    """A suite as YAML text (the rows with the settings they ran with), `load_suite`-able."""
    import yaml

    body = yaml.safe_dump(suite.model_dump(mode="json", exclude_none=True,
                                           exclude={"greedy"}), sort_keys=False, width=100)
    return "".join(f"# {line}\n" for line in header) + body


__all__ = ["GreedyStep", "SuiteRun", "builds_on", "carried_row", "check_suite_runs",
           "dataset_protocol", "full_grid", "own_settings", "plan_runs", "resolved_suite_yaml",
           "run_greedy", "run_suite"]
