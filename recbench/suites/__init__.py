"""Suites as data: a paper's protocol, datasets, rows, seeds, metrics and tables in one YAML file.

A suite (`recbench/suites/NAME.yaml`, listed by `recbench ls suites`) names

- the dataset protocol its numbers are measured under (`recbench-v1`, `loo-v1`, `temporal-v1`),
- the datasets (table columns) and the default size,
- its rows: each a registered model in a benchmark group plus the settings that make the row,
  optionally a row group (the table section), a task, a subset of datasets, and whether the row
  is a baseline (the reference of the significance markers),
- the seeds every row runs with, the metrics it reports per task, and its tables (task, metric,
  metrics protocol, which row groups they show).

`expand` turns a suite into ordinary `RunRequest`s (one per row x dataset x seed) and is pure:
the "sweep" executors and `recbench suite run` both call it. `row_matches` tells a leaderboard
which records belong to which row, from the record alone.

Typical use::

    suite = load_suite("recbench")
    requests = expand(suite, datasets=["amazon-beauty"], seeds=[0, 1, 2], only=["G"],
                      size="small", protocol=None)
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recbench.core.config import read_yaml_mapping, validate_as
from recbench.core.errors import ConfigError, UnknownNameError
from recbench.core.names import check_name

if TYPE_CHECKING:
    from recbench.results.record import Record
    from recbench.runner import RunRequest

SUITES_DIR = Path(__file__).parent
Task = Literal["ctr", "seq"]
# Values a row setting may take: what `--set key=value` can express, plus lists of those.
Scalar = Union[bool, int, float, str]
SettingValue = Union[Scalar, list[Scalar]]
# The record metrics key each task's metrics live under (see recbench.results.record.PROTOCOLS).
METRICS_PROTOCOLS = {"ctr": ("ctr",), "seq": ("full", "sampled100")}


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class SuiteRow(_Closed):
    """One row of a suite's tables: a registered model in a group plus the settings that make it.

    Attributes:
        name: Unique within the suite; the row label in its tables.
        group: The benchmark group the model runs in (`recbench ls groups`).
        model: A registered model of that group, or a backbone for the LLM constructions.
        settings: Flat `key: value` settings, exactly as `--set key=value` would give them.
        task: Only this task (default: every task the group and model cover).
        row_group: The table section the row sits in (default: `group`).
        datasets: Only these of the suite's datasets (default: all of them).
        baseline: The row is a reference for the significance markers of its tables
            (default: rows of the `baseline` group).
        note: Free text shown by `--dry-run`, e.g. why the row exists.
    """

    name: str
    group: str
    model: str
    settings: dict[str, SettingValue] = Field(default_factory=dict)
    task: Task | None = None
    row_group: str | None = None
    datasets: list[str] | None = None
    baseline: bool | None = None
    note: str = ""

    @field_validator("name", "group", "model")
    @classmethod
    def _safe(cls, value: str, info) -> str:
        return check_name(value, f"row {info.field_name}")

    @property
    def section(self) -> str:
        return self.row_group or self.group

    @property
    def is_baseline(self) -> bool:
        return self.group == "baseline" if self.baseline is None else self.baseline


class SuiteTable(_Closed):
    """One table of the suite's paper: a task, a metric and which rows it shows.

    Attributes:
        name: Unique within the suite (e.g. `ctr`, `seq-sampled`).
        title: Caption text, e.g. "RecBench Table 4".
        task: `ctr` or `seq`.
        metric: The metric of the cells, e.g. `gauc`, `ndcg@10`.
        metrics_protocol: The record's metrics key: `ctr`, or `full` / `sampled100` for SeqRec
            (default: the task's first).
        row_groups: The row groups (sections) shown, in this order (default: every row group
            that has rows of this task, in row order).
    """

    name: str
    title: str = ""
    task: Task
    metric: str
    metrics_protocol: str | None = None
    row_groups: list[str] | None = None

    @model_validator(mode="after")
    def _protocol_fits_task(self) -> SuiteTable:
        allowed = METRICS_PROTOCOLS[self.task]
        if self.metrics_protocol is not None and self.metrics_protocol not in allowed:
            raise ValueError(f"table {self.name!r}: metrics_protocol {self.metrics_protocol!r} "
                             f"is not one of {', '.join(allowed)} for task {self.task}")
        return self

    @property
    def protocol_key(self) -> str:
        return self.metrics_protocol or METRICS_PROTOCOLS[self.task][0]


class GreedyOrder(_Closed):
    """A paper's greedy order of row groups: each step's rows build on the best before them.

    `recbench suite run` (`--grid greedy`, the default where a suite has one) runs the
    reference row, then each step in turn: a row of the reference's model gets the reference's
    settings, then the winners' settings so far, then its own (its own win). The step's winner
    is the best of its rows and of the configuration carried into it, by the mean of `metric`
    over seeds and datasets; its own settings are carried on. Baseline rows and rows of other
    models run as written. `recbench.suites.execute` runs it.

    Attributes:
        reference: The row every step builds on (e.g. a paper's base configuration).
        steps: Row groups, in order (e.g. RQ1 ... RQ6).
        metric: The metric that picks each step's winner, e.g. `ndcg@10`.
        metrics_protocol: Its record metrics key (`full`, `sampled100`, `ctr`).
    """

    reference: str
    steps: list[str] = Field(min_length=1)
    metric: str
    metrics_protocol: str = "sampled100"


class Suite(_Closed):
    """A named, versioned benchmark: protocol, datasets, rows, seeds, metrics and tables."""

    name: str
    version: int = Field(ge=1)
    paper: str
    description: str = ""
    protocol: str  # the dataset protocol, e.g. recbench-v1 (`recbench prepare --protocol`)
    size: Literal["tiny", "small", "paper"] = "small"
    datasets: list[str] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    metrics: dict[Task, list[str]] = Field(default_factory=dict)
    tables: list[SuiteTable] = Field(min_length=1)
    rows: list[SuiteRow] = Field(min_length=1)
    greedy: GreedyOrder | None = None

    @field_validator("name", "protocol")
    @classmethod
    def _safe_name(cls, value: str, info) -> str:
        return check_name(value, f"suite {info.field_name}")

    @field_validator("datasets")
    @classmethod
    def _safe_datasets(cls, values: list[str]) -> list[str]:
        for value in values:
            check_name(value, "suite dataset")
        if len(set(values)) != len(values):
            raise ValueError(f"datasets repeat a name: {values}")
        return values

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values) or min(values) < 0:
            raise ValueError(f"seeds must be distinct and >= 0, got {values}")
        return values

    @model_validator(mode="after")
    def _references_resolve(self) -> Suite:
        names = [r.name for r in self.rows]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"row names repeat: {', '.join(repeated)}")
        tables = [t.name for t in self.tables]
        if len(set(tables)) != len(tables):
            raise ValueError(f"table names repeat: {tables}")
        sections = {r.section for r in self.rows}
        for table in self.tables:
            for section in table.row_groups or ():
                if section not in sections:
                    raise ValueError(f"table {table.name!r}: row group {section!r} has no rows "
                                     f"(row groups: {', '.join(sorted(sections))})")
            wanted = self.metrics.get(table.task)
            if wanted is not None and table.metric not in wanted:
                raise ValueError(f"table {table.name!r}: metric {table.metric!r} is not among "
                                 f"the suite's {table.task} metrics {wanted}")
        if self.greedy is not None:
            if self.greedy.reference not in names:
                raise ValueError(f"greedy.reference {self.greedy.reference!r} is not a row")
            for step in self.greedy.steps:
                if step not in sections:
                    raise ValueError(f"greedy step {step!r} is not a row group "
                                     f"(row groups: {', '.join(sorted(sections))})")
        for row in self.rows:
            for dataset in row.datasets or ():
                if dataset not in self.datasets:
                    raise ValueError(f"row {row.name!r}: dataset {dataset!r} is not one of the "
                                     f"suite's datasets {self.datasets}")
        return self

    def row(self, name: str) -> SuiteRow:
        for row in self.rows:
            if row.name == name:
                return row
        raise UnknownNameError(f"row of suite {self.name}", name, [r.name for r in self.rows])

    def table_rows(self, table: SuiteTable) -> list[SuiteRow]:
        """The rows `table` shows, section by section in the table's order, then row order."""
        fits = [r for r in self.rows if row_covers_task(r, table.task)]
        if table.row_groups is None:
            return fits
        return [r for section in table.row_groups for r in fits if r.section == section]


def row_covers_task(row: SuiteRow, task: str) -> bool:
    """Whether `row` produces `task` records (its own task, else its group's tasks)."""
    if row.task is not None:
        return row.task == task
    from recbench.groups import GROUPS

    spec = GROUPS.get(row.group)
    return spec is None or task in spec.tasks


# ---------------------------------------------------------------------------------------------
# Loading


def suite_names() -> list[str]:
    """The suites shipped in `recbench/suites/`, by name."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (`recbench ls suites`) or from a YAML file path.

    Raises:
        UnknownNameError: no shipped suite has that name (the message lists them).
        ConfigError: the file is not valid YAML or breaks the schema (field and expectation).
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        names = suite_names()
        if str(name_or_path) not in names:
            raise UnknownNameError("suite", str(name_or_path), names)
        path = SUITES_DIR / f"{name_or_path}.yaml"
    return _load(path.resolve())


@cache
def _load(path: Path) -> Suite:
    data = read_yaml_mapping(path, "suite", "a mapping with name, version, protocol, rows, ...")
    suite = validate_as(Suite, data, str(path))
    if suite.name != path.stem and path.parent == SUITES_DIR:
        raise ConfigError(f"{path}: name {suite.name!r} must match the file name {path.stem!r}")
    return suite


# ---------------------------------------------------------------------------------------------
# Expansion into runs


def select_rows(suite: Suite, only: Sequence[str] | None) -> list[SuiteRow]:
    """The rows named in `only` (row names, row groups or benchmark groups), in suite order.

    Raises:
        UnknownNameError: an entry names no row, row group or group of the suite.
    """
    if not only:
        return list(suite.rows)
    by_name = {r.name for r in suite.rows}
    sections = {r.section for r in suite.rows} | {r.group for r in suite.rows}
    lowered = {s.lower(): s for s in by_name | sections}
    wanted: set[str] = set()
    for entry in only:
        key = entry if entry in by_name | sections else lowered.get(entry.lower())
        if key is None:
            raise UnknownNameError(f"row or row group of suite {suite.name}", entry,
                                   by_name | sections)
        wanted.add(key)
    return [r for r in suite.rows
            if r.name in wanted or r.section in wanted or r.group in wanted]


def expand(suite: Suite, datasets: Sequence[str] | None = None,
           seeds: Sequence[int] | None = None, only: Sequence[str] | None = None,
           size: str | None = None, protocol: str | None = None, *,
           home: Path | None = None, overwrite: str = "never", device: str = "cpu",
           ) -> list[RunRequest]:
    """A suite as ordinary runs: one `RunRequest` per (seed, row, dataset), seeds outermost.

    The same as `expand_rows` without the rows; see there.
    """
    return [req for _, req in expand_rows(suite, datasets, seeds, only, size, protocol,
                                          home=home, overwrite=overwrite, device=device)]


def expand_rows(suite: Suite, datasets: Sequence[str] | None = None,
                seeds: Sequence[int] | None = None, only: Sequence[str] | None = None,
                size: str | None = None, protocol: str | None = None, *,
                home: Path | None = None, overwrite: str = "never", device: str = "cpu",
                ) -> list[tuple[SuiteRow, RunRequest]]:
    """A suite as (row, ordinary run) pairs: one per (seed, row, dataset), seeds outermost.

    Seeds come first so a suite stopped part-way has whole tables for the seeds it finished.
    Pure: reads nothing and writes nothing (whether a run is finished is the runner's business).

    Args:
        suite: The suite.
        datasets: A subset of the suite's datasets (default: all); names outside it are errors.
        seeds: Seeds (default: the suite's).
        only: Row names, row groups or benchmark groups (default: every row).
        size: Dataset size (default: the suite's).
        protocol: The dataset protocol (default: the suite's own); another one is an error,
            because a suite's numbers mean something only under its protocol.
        home, overwrite, device: Copied into every request.

    Raises:
        UnknownNameError: a dataset, row or row group the suite does not have.
        ConfigError: a protocol other than the suite's, or an empty selection.
    """
    from recbench.runner import RunRequest

    chosen_datasets = list(datasets) if datasets else list(suite.datasets)
    for name in chosen_datasets:
        if name not in suite.datasets:
            raise UnknownNameError(f"dataset of suite {suite.name}", name, suite.datasets)
    if protocol is not None and protocol != suite.protocol and \
            not suite.protocol.startswith(f"{protocol}-"):
        raise ConfigError(f"--protocol {protocol}: suite {suite.name} is defined under "
                          f"{suite.protocol}; its numbers are not comparable under another one")
    requests = []
    for seed in (list(seeds) if seeds else list(suite.seeds)):
        for row in select_rows(suite, only):
            for dataset in chosen_datasets:
                if row.datasets is not None and dataset not in row.datasets:
                    continue
                requests.append((row, _request(RunRequest, row, dataset, seed,
                                               size or suite.size, suite.protocol, home,
                                               overwrite, device)))
    if not requests:
        raise ConfigError(f"suite {suite.name}: the selection (rows {list(only or [])}, datasets "
                          f"{chosen_datasets}) leaves no run")
    return requests


def _request(cls: type[RunRequest], row: SuiteRow, dataset: str, seed: int, size: str,
             protocol: str, home: Path | None, overwrite: str, device: str) -> RunRequest:
    """One run of `row`. The one place that knows how a row becomes a RunRequest."""
    return cls(group=row.group, model=row.model, datasets=[dataset], sets=dict(row.settings),
               seed=seed, size=size, task=row.task, home=home, overwrite=overwrite,
               device=device, protocol=protocol)


# ---------------------------------------------------------------------------------------------
# Records back to rows


def row_matches(row: SuiteRow, record: Record) -> bool:
    """Whether `record` is a run of `row`: same group and model, every row setting as given.

    Settings the row does not name (e.g. `patience` raised for one dataset) do not matter, so a
    run with extra settings still fills the row; the leaderboard shows the newest config.
    """
    if record.group != row.group:
        return False
    if record.model != row.model and record.model_id != row.model:
        return False
    if row.task is not None and record.task != row.task:
        return False
    resolved: dict[str, Any] = {}
    for section in record.config.values():
        if isinstance(section, dict):
            for key, value in section.items():
                resolved.setdefault(key, value)
    return all(key in resolved and _same(resolved[key], value)
               for key, value in row.settings.items())


def _same(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, list):
        return isinstance(stored, (list, tuple)) and len(stored) == len(wanted) and all(
            _same(s, w) for s, w in zip(stored, wanted, strict=True))
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return stored is wanted
    if isinstance(wanted, (int, float)) and isinstance(stored, (int, float)):
        return float(stored) == float(wanted)
    return str(stored) == str(wanted)


def assign_rows(suite: Suite, records: Sequence[Record],
                rows: Sequence[SuiteRow] | None = None) -> dict[str, str]:
    """Record key -> row name, for every record that is a run of some row (of `rows`, default:
    all; a table passes its own, so one record can fill a row in each of several tables).

    Where several rows match (a row without settings and one that pins a setting), the row
    that pins the most settings wins, then the first in suite order.
    """
    out = {}
    for record in records:
        matches = [row for row in (suite.rows if rows is None else rows)
                   if row_matches(row, record)]
        if matches:
            out[record.key] = max(matches, key=lambda r: len(r.settings)).name
    return out


__all__ = ["GreedyOrder", "Suite", "SuiteRow", "SuiteTable", "assign_rows", "expand",
           "expand_rows", "load_suite", "row_covers_task", "row_matches", "select_rows",
           "suite_names"]
