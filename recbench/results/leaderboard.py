"""Leaderboards rebuilt from result records alone, shaped like RecBench Tables 3-5.

Rows are (group, model, mode) sorted in the paper's A-J order (or a suite's rows, see
`recbench.suites`), one column per prepared dataset version, then Overall and Latency (mean
per-sample ms). Numbers from different dataset versions, sizes or protocol versions never share
a column. `render` writes md, csv, json, latex or a self-contained html page (table +
accuracy-vs-latency scatter plot with confidence intervals as error bars).

What a cell says, and how far to trust it:

- Records that differ only by seed are one cell: the mean over seeds, the sample std and the
  number of seeds. Where a cell has several configs (reruns with other settings) the newest
  config is shown and the others are counted as superseded.
- A 95% confidence interval per cell: a t-interval over seeds when the cell has >= 2 seeds;
  otherwise a paired bootstrap over test users from the stored predictions (the same resampled
  users for every row of a column). `ci_methods` says which.
- A marker (`*` better, `↓` worse) where a row differs significantly from the strongest
  baseline of its column (paired t-test on per-user values, p < 0.05; paper 000 Table 5).
- Best / second best (bold / underlined) go to every row not significantly different from the
  best / second (paired t-test on per-user values; Welch's t-test over seeds where no
  predictions are stored; the display precision where neither is possible, and a note says so).
- Overall is the mean over the datasets *every* row has, named in a note, so no row is crowned
  for being the only complete one.

Typical use::

    store = ResultStore(home)
    table = build_table(store.records(), "ctr", store=store)   # gauc on the ctr protocol
    print(render(table, "md"))
    html = render_html([build_table(records, "ctr"), build_table(records, "seq")])
"""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from recbench.core.errors import RecbenchError, UnknownNameError
from recbench.groups import GROUPS, group_order
from recbench.results.record import DEFAULT_METRIC, DEFAULT_PROTOCOL, PROTOCOLS, Record

if TYPE_CHECKING:
    from recbench.results.store import ResultStore

log = logging.getLogger(__name__)

FORMATS = ("md", "csv", "json", "latex", "html")
TASK_TITLES = {"ctr": "CTR (pair-wise)", "seq": "SeqRec (list-wise)"}
LOWER_IS_BETTER = frozenset({"logloss"})
SIZE_ORDER = {"tiny": 0, "small": 1, "paper": 2}
DAGGER = "†"
BETTER, WORSE = "*", "↓"
ALPHA = 0.05
CONFIDENCE = 0.95
DECIMALS = 4
LATENCY_DECIMALS = 2
JSON_FORMAT = "recbench-leaderboard"
JSON_VERSION = 2
CI_T, CI_BOOTSTRAP = "t", "bootstrap"
# The per-unit values a metric decomposes into (their mean is the metric), for the paired tests
# and the bootstrap: GAUC = mean per-user AUC; a SeqRec metric = mean over test rows (users).
SEQ_RANK_COLUMNS = {"full": "rank_full", "sampled100": "rank_sampled100"}


@dataclass(frozen=True)
class Column:
    """One dataset column: a (dataset, size, version, protocol version) never mixed with another."""

    dataset: str
    dataset_size: str
    dataset_version: str
    protocol_version: str
    label: str


@dataclass(frozen=True)
class Row:
    """One row. Per dataset column: the mean over seeds (`cells`), std, number of seeds, 95% CI
    and its method, and the marker against the strongest baseline. `marks` holds 'best' /
    'second' / None per dataset column, then Overall, then Latency. `partial`: some dataset
    columns are empty (Overall never uses them: it covers the datasets every row has)."""

    group: str
    model_id: str
    mode: str
    label: str
    cells: tuple[float | None, ...]
    overall: float | None
    partial: bool
    latency_ms: float | None
    flags: tuple[str, ...] = ()
    record_keys: tuple[str | None, ...] = ()
    stds: tuple[float | None, ...] = ()
    n_seeds: tuple[int, ...] = ()
    cis: tuple[tuple[float, float] | None, ...] = ()
    ci_methods: tuple[str | None, ...] = ()
    markers: tuple[str, ...] = ()
    marks: tuple[str | None, ...] = ()
    overall_ci: tuple[float, float] | None = None
    overall_ci_method: str | None = None
    baseline: bool = False

    @property
    def max_seeds(self) -> int:
        return max(self.n_seeds, default=0)


@dataclass(frozen=True)
class LeaderboardTable:
    """One task's leaderboard under one metric and protocol (see the module docstring)."""

    task: str
    metric: str
    protocol: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    n_records: int  # records behind the cells shown
    footnotes: tuple[str, ...] = ()
    higher_is_better: bool = True
    overall_columns: tuple[int, ...] = ()  # the dataset columns Overall averages
    title: str = ""

    @property
    def caption(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        head = self.title or f"{TASK_TITLES.get(self.task, self.task)} leaderboard"
        return (f"{head}: {self.metric} "
                f"({better} is better), protocol {self.protocol}, {self.n_records} records; "
                "latency = mean per-sample ms")

    @property
    def several_seeds(self) -> bool:
        return any(r.max_seeds > 1 for r in self.rows)

    def marks(self) -> list[list[str | None]]:
        """Per row: 'best' / 'second' / None per dataset column, then Overall, then Latency."""
        return [list(r.marks) for r in self.rows]

    def to_dict(self) -> dict:
        return {
            "format": JSON_FORMAT, "version": JSON_VERSION, "task": self.task,
            "metric": self.metric, "protocol": self.protocol, "n_records": self.n_records,
            "higher_is_better": self.higher_is_better, "caption": self.caption,
            "title": self.title, "confidence": CONFIDENCE, "alpha": ALPHA,
            "columns": [vars(c) for c in self.columns],
            "overall_columns": list(self.overall_columns),
            "rows": [{**vars(r), **{k: _listed(getattr(r, k)) for k in _ROW_TUPLES},
                      "overall_ci": None if r.overall_ci is None else list(r.overall_ci)}
                     for r in self.rows],
            "footnotes": list(self.footnotes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LeaderboardTable:
        """Inverse of `to_dict` (the json format), e.g. to re-render a saved leaderboard."""
        rows = []
        for r in data["rows"]:
            r = dict(r)
            for key in _ROW_TUPLES:
                r[key] = tuple(tuple(v) if isinstance(v, list) else v for v in r.get(key, ()))
            r["overall_ci"] = tuple(r["overall_ci"]) if r.get("overall_ci") else None
            rows.append(Row(**r))
        return cls(
            task=data["task"], metric=data["metric"], protocol=data["protocol"],
            columns=tuple(Column(**c) for c in data["columns"]), rows=tuple(rows),
            n_records=data["n_records"], footnotes=tuple(data["footnotes"]),
            higher_is_better=data["higher_is_better"],
            overall_columns=tuple(data.get("overall_columns", ())), title=data.get("title", ""))


_ROW_TUPLES = ("cells", "flags", "record_keys", "stds", "n_seeds", "cis", "ci_methods",
               "markers", "marks")


def _listed(values: tuple) -> list:
    return [list(v) if isinstance(v, tuple) else v for v in values]


# ---------------------------------------------------------------------------------------------
# Rows: which records make a row


@dataclass(frozen=True)
class RowSpec:
    """What a record contributes to: a row label in a section, its sort position, and whether
    the row is a baseline (the reference of the significance markers)."""

    group: str  # the section shown in the Group column (a benchmark group or a row group)
    label: str
    sort_key: tuple
    baseline: bool = False


def default_row(record: Record) -> RowSpec:
    """A row per (group, model, mode), in RecBench's A-J order; the `baseline` group is the
    reference of the markers."""
    return RowSpec(record.group, record.model_id, (group_order(record.group), record.group,
                                                   record.model_id.lower(), record.mode),
                   baseline=record.group == "baseline")


# ---------------------------------------------------------------------------------------------
# Building


def available_metrics(records: Iterable[Record], task: str, protocol: str) -> set[str]:
    """Metric names that some `task` record reports under `protocol` (counts like n_rows aside)."""
    return {name for r in records if r.task == task
            for name in r.metrics.get(protocol, {}) if not name.startswith("n_")}


@dataclass
class _Cell:
    """The records of one (row, column) that differ only by seed, newest config."""

    records: list[Record]  # one per seed, by seed
    values: np.ndarray  # per seed
    units: tuple[np.ndarray, np.ndarray] | None = None  # seed-averaged per-unit values
    ci: tuple[float, float] | None = None
    ci_method: str | None = None
    boot: np.ndarray | None = None  # bootstrap replicate means (single-seed cells)

    @property
    def mean(self) -> float:
        return float(self.values.mean())

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    @property
    def std(self) -> float | None:
        return float(self.values.std(ddof=1)) if self.n > 1 else None

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(r.seed for r in self.records)


def build_table(records: Iterable[Record], task: str, metric: str | None = None,
                protocol: str | None = None, datasets: Sequence[str] | None = None,
                include_smoke: bool = False, store: ResultStore | None = None,
                row_of: Callable[[Record], RowSpec | None] | None = None,
                title: str = "") -> LeaderboardTable:
    """Build one task's leaderboard from result records.

    Args:
        records: Result records (any task; others are ignored).
        task: "ctr" or "seq".
        metric: Metric name; defaults to `DEFAULT_METRIC[task]`.
        protocol: Metrics protocol key; defaults to `DEFAULT_PROTOCOL[task]`.
        datasets: Only these dataset names, in this column order (default: all, by name).
        include_smoke: Keep smoke-test records (tiny budgets), flagged in the row label.
        store: Where the records' predictions are read from, for the per-user significance
            tests and the bootstrap intervals of single-seed cells (None: neither; notes say so).
        row_of: Which row a record belongs to (None: leave it out); default `default_row`.
        title: Shown before the caption (e.g. the suite table's title).

    Returns:
        The table; it has no rows when no record of `task` reports `protocol`/`metric`.

    Raises:
        UnknownNameError: unknown task or protocol, a metric no record of `task` reports, or a
            dataset name with no record at all.
    """
    records = list(records)
    if task not in PROTOCOLS:
        raise UnknownNameError("task", task, PROTOCOLS)
    protocol = protocol or DEFAULT_PROTOCOL[task]
    if protocol not in PROTOCOLS[task]:
        raise UnknownNameError(f"{task} protocol", protocol, PROTOCOLS[task])
    metric = metric or DEFAULT_METRIC[task]
    row_of = row_of or default_row
    pool = [r for r in records if r.task == task]
    if datasets is not None:
        known = {r.dataset for r in records}
        for name in datasets:
            if known and name not in known:
                raise UnknownNameError("dataset", name, known)  # choices: those with results
        pool = [r for r in pool if r.dataset in set(datasets)]
    choices = available_metrics(pool, task, protocol)
    if choices and metric not in choices:
        raise UnknownNameError(f"{task} metric under protocol {protocol}", metric, choices)

    usable = [r for r in pool if _value(r, protocol, metric) is not None]
    notes: list[str] = []
    if len(usable) < len(pool):
        notes.append(f"{len(pool) - len(usable)} {task} record(s) without a finite "
                     f"{protocol}/{metric} value left out.")
    n_smoke = sum(r.smoke for r in usable)
    if not include_smoke:
        usable = [r for r in usable if not r.smoke]
        if n_smoke:
            notes.append(f"{n_smoke} smoke record(s) left out (pass --include-smoke to show).")
    specs = {r.key: row_of(r) for r in usable}
    usable = [r for r in usable if specs[r.key] is not None]

    col_keys = _ordered_columns({_column_key(r) for r in usable}, datasets)
    columns = tuple(Column(*key, label=label)
                    for key, label in zip(col_keys, _column_labels(col_keys), strict=True))
    col_index = {key: i for i, key in enumerate(col_keys)}

    row_modes: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_row: dict[tuple, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
    row_specs: dict[tuple, RowSpec] = {}
    for r in usable:
        spec = specs[r.key]
        ident = (spec.group, spec.label, r.model_id, r.mode)
        row_specs[ident] = spec
        row_modes[(spec.group, spec.label)].add(r.mode)
        by_row[ident][col_index[_column_key(r)]].append(r)

    units = _UnitValues(store, protocol, metric, task)
    hib = metric not in LOWER_IS_BETTER
    idents = sorted(by_row, key=lambda i: (row_specs[i].sort_key, i))
    grid: list[list[_Cell | None]] = []
    superseded_total = 0
    for ident in idents:
        cells: list[_Cell | None] = [None] * len(columns)
        for j, recs in by_row[ident].items():
            cells[j], superseded = _cell(recs, protocol, metric)
            superseded_total += superseded
        grid.append(cells)

    for j in range(len(columns)):
        for cells in grid:
            if cells[j] is not None:
                _fill_cell(cells[j], units, seed=j)

    overall_cols = tuple(j for j in range(len(columns)) if all(c[j] is not None for c in grid))
    markers, n_untested = _markers(grid, [row_specs[i].baseline for i in idents], hib)
    col_marks, fallback = zip(*(_honest_marks([c[j] for c in grid], hib)
                                for j in range(len(columns))), strict=True) \
        if columns else ((), ())

    rows = []
    for i, (ident, cells) in enumerate(zip(idents, grid, strict=True)):
        spec = row_specs[ident]
        group, label, model_id, mode = ident
        present = [c for c in cells if c is not None]
        overall = (float(np.mean([cells[j].mean for j in overall_cols]))
                   if overall_cols else None)
        overall_ci, overall_method = _overall_ci([cells[j] for j in overall_cols])
        latencies = [r.latency.mean_ms for c in present for r in c.records
                     if r.latency is not None]
        smoke = any(r.smoke for c in present for r in c.records)
        show_mode = len(row_modes[(group, label)]) > 1 or (
            spec.group in GROUPS and len(GROUPS[spec.group].modes) > 1
            and label == model_id)
        shown = label + (f" ({mode})" if show_mode else "") + (" [smoke]" if smoke else "")
        partial = len(present) < len(columns)
        n_superseded = sum(_cell(recs, protocol, metric)[1] for recs in by_row[ident].values())
        flags = (("partial",) if partial else ()) + (
            (f"superseded:{n_superseded}",) if n_superseded else ()) + (
            ("smoke",) if smoke else ()) + (("baseline",) if spec.baseline else ())
        rows.append(Row(
            group=group, model_id=model_id, mode=mode, label=shown,
            cells=tuple(None if c is None else c.mean for c in cells), overall=overall,
            partial=partial,
            latency_ms=sum(latencies) / len(latencies) if latencies else None, flags=flags,
            record_keys=tuple(None if c is None else max(c.records, key=_recency).key
                              for c in cells),
            stds=tuple(None if c is None else c.std for c in cells),
            n_seeds=tuple(0 if c is None else c.n for c in cells),
            cis=tuple(None if c is None else c.ci for c in cells),
            ci_methods=tuple(None if c is None else c.ci_method for c in cells),
            markers=tuple(markers[i]), marks=(), overall_ci=overall_ci,
            overall_ci_method=overall_method, baseline=spec.baseline))

    overall_marks = _rank([r.overall for r in rows], hib, DECIMALS)
    latency_marks = _rank([r.latency_ms for r in rows], False, LATENCY_DECIMALS)
    rows = [Row(**{**vars(r), "marks": (*(col_marks[j][i] for j in range(len(columns))),
                                        overall_marks[i], latency_marks[i])})
            for i, r in enumerate(rows)]

    notes = _notes(notes, rows, columns, overall_cols, superseded_total, include_smoke,
                   n_untested, sum(fallback), units, store is not None, metric)
    return LeaderboardTable(
        task=task, metric=metric, protocol=protocol, columns=columns, rows=tuple(rows),
        n_records=sum(len(c.records) for cells in grid for c in cells if c is not None),
        footnotes=tuple(notes), higher_is_better=hib, overall_columns=overall_cols,
        title=title)


def _cell(recs: list[Record], protocol: str, metric: str) -> tuple[_Cell, int]:
    """The newest config's records, one per seed (the newest run of a seed), and how many
    records that leaves out."""
    by_config: dict[tuple[str, bool], list[Record]] = defaultdict(list)
    for r in recs:
        by_config[(r.config_hash, r.smoke)].append(r)
    newest = max(by_config.values(), key=lambda group: max(map(_recency, group)))
    per_seed: dict[int, Record] = {}
    for r in sorted(newest, key=_recency):
        per_seed[r.seed] = r
    chosen = [per_seed[s] for s in sorted(per_seed)]
    values = np.array([_value(r, protocol, metric) for r in chosen], dtype=np.float64)
    return _Cell(chosen, values), len(recs) - len(chosen)


class _UnitValues:
    """Per-unit metric values of a record from its stored predictions, read once per record."""

    def __init__(self, store: ResultStore | None, protocol: str, metric: str, task: str):
        self.store, self.protocol, self.metric, self.task = store, protocol, metric, task
        self.cache: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        self.missing = 0  # records whose predictions could not be read
        self.supported = task == "seq" or metric == "gauc"
        if task == "seq":
            from recbench.metrics import per_row_metric

            try:  # NDCG/HR/MRR decompose into per-row values; coverage and the like do not
                per_row_metric(np.ones(1, dtype=np.int64), metric)
            except RecbenchError:
                self.supported = False

    def __call__(self, record: Record) -> tuple[np.ndarray, np.ndarray] | None:
        if self.store is None or not self.supported:
            return None
        if record.key not in self.cache:
            self.cache[record.key] = self._read(record)
        return self.cache[record.key]

    def _read(self, record: Record) -> tuple[np.ndarray, np.ndarray] | None:
        from recbench import metrics

        try:
            preds = self.store.predictions(record)
            if self.task == "ctr":
                users, aucs, _ = metrics.per_user_auc(preds["user_id"].to_numpy(),
                                                      preds["label"].to_numpy(),
                                                      preds["score"].to_numpy())
                return np.asarray(users), aucs
            ranks = preds[SEQ_RANK_COLUMNS[self.protocol]].to_numpy()
            return preds["row"].to_numpy(), metrics.per_row_metric(ranks, self.metric)
        except (RecbenchError, OSError, KeyError, ValueError) as exc:
            log.info("no per-unit values for record %s: %s", record.key, exc)
            self.missing += 1
            return None


def _fill_cell(cell: _Cell, units: _UnitValues, seed: int) -> None:
    """Seed-averaged per-unit values, then the CI: t over seeds, else a paired bootstrap."""
    from recbench.metrics.intervals import bootstrap_means, percentile_interval, t_interval
    from recbench.metrics.significance import align_units

    per_seed = [units(r) for r in cell.records]
    if per_seed and all(u is not None for u in per_seed):
        ids, values = per_seed[0]
        order = np.argsort(ids, kind="stable")
        ids, total = ids[order], values[order]
        for other_ids, other in per_seed[1:]:
            total, extra = align_units(ids, total, other_ids, other)
            ids = np.intersect1d(ids, other_ids)
            total = total + extra
        if ids.shape[0]:
            cell.units = (ids, total / len(per_seed))
    if cell.n >= 2:
        cell.ci, cell.ci_method = t_interval(cell.values, CONFIDENCE), CI_T
    elif cell.units is not None and cell.units[1].shape[0] >= 2:
        # Seeded by the column: every row of a column resamples the same users (paired).
        cell.boot = bootstrap_means(cell.units[1], seed=seed)
        cell.ci, cell.ci_method = percentile_interval(cell.boot, CONFIDENCE), CI_BOOTSTRAP


def _overall_ci(cells: list[_Cell]) -> tuple[tuple[float, float] | None, str | None]:
    """CI of the mean over datasets: t over per-seed Overall values where every cell has the
    same >= 2 seeds; the mean of the columns' paired bootstrap replicates where every cell has
    one; otherwise none."""
    from recbench.metrics.intervals import percentile_interval, t_interval

    if not cells:
        return None, None
    seeds = {c.seeds for c in cells}
    if len(seeds) == 1 and cells[0].n >= 2:
        per_seed = np.mean([c.values for c in cells], axis=0)
        return t_interval(per_seed, CONFIDENCE), CI_T
    if all(c.boot is not None for c in cells):
        return percentile_interval(np.mean([c.boot for c in cells], axis=0), CONFIDENCE), \
            CI_BOOTSTRAP
    return None, None


def _differ(a: _Cell, b: _Cell) -> bool | None:
    """Significantly different (p < ALPHA)? Paired on per-unit values, else Welch over seeds;
    None where neither test is possible."""
    from recbench.metrics.significance import align_units, paired_tests, welch_test

    if a is b:
        return False
    if a.units is not None and b.units is not None:
        xa, xb = align_units(*a.units, *b.units)
        if xa.shape[0] >= 2:
            return bool(paired_tests(xa, xb, ALPHA)["significant"])
    if a.n >= 2 and b.n >= 2:
        return bool(welch_test(a.values, b.values, ALPHA)["significant"])
    return None


def _honest_marks(cells: list[_Cell | None], hib: bool) -> tuple[list[str | None], int]:
    """'best' for the best row and every row not significantly different from it; 'second'
    likewise for the best of the rest. Returns the marks and how many comparisons fell back
    to equality at display precision (no test possible)."""
    marks: list[str | None] = [None] * len(cells)
    present = [i for i, c in enumerate(cells) if c is not None]
    if not present:
        return marks, 0
    order = sorted(present, key=lambda i: cells[i].mean, reverse=hib)
    fallback = 0

    def tied(i: int, j: int) -> bool:
        nonlocal fallback
        differ = _differ(cells[i], cells[j])
        if differ is None:
            fallback += i != j
            return round(cells[i].mean, DECIMALS) == round(cells[j].mean, DECIMALS)
        return not differ

    best = [i for i in order if tied(i, order[0])]
    rest = [i for i in order if i not in best]
    second = [i for i in rest if tied(i, rest[0])] if rest else []
    for i in best:
        marks[i] = "best"
    for i in second:
        marks[i] = "second"
    return marks, fallback


def _markers(grid: list[list[_Cell | None]], baseline: list[bool], hib: bool
             ) -> tuple[list[list[str]], int]:
    """`*` / `↓` where a non-baseline cell is significantly better / worse than the strongest
    baseline cell of its column (paired t-test on per-unit values); the number of cells that
    could not be tested."""
    from recbench.metrics.significance import align_units, paired_tests

    markers = [[""] * len(cells) for cells in grid]
    untested = 0
    for j in range(len(grid[0]) if grid else 0):
        refs = [i for i, cells in enumerate(grid) if baseline[i] and cells[j] is not None]
        if not refs:
            continue
        ref = grid[max(refs, key=lambda i: grid[i][j].mean if hib else -grid[i][j].mean)][j]
        for i, cells in enumerate(grid):
            cell = cells[j]
            if cell is None or baseline[i]:
                continue
            if cell.units is None or ref.units is None:
                untested += 1
                continue
            xa, xb = align_units(*cell.units, *ref.units)
            if xa.shape[0] < 2:
                untested += 1
                continue
            test = paired_tests(xa, xb, ALPHA)
            if test["significant"]:
                better = (test["mean_diff"] > 0) == hib
                markers[i][j] = BETTER if better else WORSE
    return markers, untested


def _notes(notes, rows, columns, overall_cols, superseded, include_smoke, untested, fallback,
           units: _UnitValues, have_store: bool, metric: str) -> list[str]:
    notes = list(notes)
    if rows and len(columns) > 1:
        used = ", ".join(columns[j].label for j in overall_cols)
        left = [c.label for j, c in enumerate(columns) if j not in overall_cols]
        if not overall_cols:
            notes.insert(0, "Overall: no dataset is shared by every row, so no Overall is "
                            "computed (narrow the columns with --datasets).")
        elif left:
            notes.insert(0, f"Overall = mean over {used}, the datasets every row has "
                            f"({', '.join(left)} left out).")
        else:
            notes.insert(0, f"Overall = mean over all {len(columns)} datasets.")
    if any(r.max_seeds > 1 for r in rows):
        notes.append("Cells: mean ± sample std over seeds; Seeds = the number of seeds "
                     "(a range where cells differ).")
    n_t = sum(m == CI_T for r in rows for m in r.ci_methods)
    n_b = sum(m == CI_BOOTSTRAP for r in rows for m in r.ci_methods)
    n_none = sum(v is not None and m is None for r in rows
                 for v, m in zip(r.cells, r.ci_methods, strict=True))
    if n_t or n_b or n_none:
        parts = []
        if n_t:
            parts.append(f"{n_t} cell(s): t-interval over seeds")
        if n_b:
            parts.append(f"{n_b} single-seed cell(s): paired bootstrap over test users from "
                         "the stored predictions (1,000 resamples; marked ᵇ)")
        if n_none:
            parts.append(f"{n_none} cell(s) without one (one seed and no per-user {metric} "
                         "from stored predictions)")
        notes.append(f"{CONFIDENCE:.0%} CI: " + "; ".join(parts) + ".")
    if any(r.baseline for r in rows) and any(not r.baseline for r in rows):
        notes.append(f"{BETTER} / {WORSE}: significantly better / worse than the strongest "
                     f"baseline of the column (paired t-test on per-user {metric}, "
                     f"p < {ALPHA:g})" + (f"; {untested} cell(s) untested (no stored "
                                          "predictions or no per-user values for this "
                                          "metric)" if untested else "") + ".")
    notes.append("Bold / underlined: best / second best, shared by every row not "
                 f"significantly different from it (p ≥ {ALPHA:g}: paired t-test on per-user "
                 "values, or Welch's t-test over seeds)"
                 + (f"; {fallback} comparison(s) could not be tested and compare the values "
                    "at display precision" if fallback else "")
                 + ". Overall and Latency marks compare display precision.")
    if not have_store:
        notes.append("No predictions were read (no results store given): markers and "
                     "single-seed CIs need them.")
    elif units.missing:
        notes.append(f"{units.missing} record(s) had no readable predictions.")
    if superseded:
        notes.append(f"{superseded} older record(s) superseded: where a row has runs with "
                     "several configs on one dataset, the newest config is shown (its seeds "
                     "aggregated).")
    if include_smoke and any("smoke" in r.flags for r in rows):
        notes.append("[smoke] rows include smoke-test runs (tiny budgets): not comparable.")
    return notes


def _value(record: Record, protocol: str, metric: str) -> float | None:
    value = record.metrics.get(protocol, {}).get(metric)
    return float(value) if value is not None and math.isfinite(value) else None


def _column_key(r: Record) -> tuple[str, str, str, str]:
    return (r.dataset, r.dataset_size, r.dataset_version, r.protocol_version)


def _recency(r: Record) -> tuple[datetime, str]:
    try:
        when = datetime.fromisoformat(r.finished_at)
    except ValueError:
        when = datetime.min
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when, r.key


def _ordered_columns(keys: set[tuple[str, str, str, str]],
                     datasets: Sequence[str] | None) -> list[tuple[str, str, str, str]]:
    position = {name: i for i, name in enumerate(datasets or ())}
    return sorted(keys, key=lambda k: (position.get(k[0], len(position)), k[0],
                                       SIZE_ORDER.get(k[1], len(SIZE_ORDER)), k[1], k[2], k[3]))


def _column_labels(keys: list[tuple[str, str, str, str]]) -> list[str]:
    """Dataset name alone when it has one version; otherwise size, short hash (and protocol)."""
    by_name: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
    for key in keys:
        by_name[key[0]].append(key)
    uniform_size = len({k[1] for k in keys}) <= 1
    labels: dict[tuple[str, str, str, str], str] = {}
    for name, group in by_name.items():
        if len(group) == 1:
            labels[group[0]] = name if uniform_size else f"{name} ({group[0][1]})"
            continue
        several_protocols = len({k[3] for k in group}) > 1
        for width in (4, 8, 16, 64):
            trial = {k: f"{name} ({k[1]}, {k[2][:width]}…"
                        + (f", {k[3]})" if several_protocols else ")") for k in group}
            if len(set(trial.values())) == len(group):
                break
        labels.update(trial)
    return [labels[k] for k in keys]


def _rank(values: list[float | None], higher_is_better: bool, decimals: int) -> list[str | None]:
    distinct = sorted({round(v, decimals) for v in values if v is not None},
                      reverse=higher_is_better)
    marks = {value: mark for value, mark in zip(distinct, ("best", "second"), strict=False)}
    return [None if v is None else marks.get(round(v, decimals)) for v in values]


# ---------------------------------------------------------------------------------------------
# Rendering


def group_marker(group: str) -> str:
    """The group letter as printed in the tables; baselines get an en dash."""
    return "–" if group == "baseline" else group


def render(table: LeaderboardTable, fmt: str, ci: bool = False) -> str:
    """Render one table as md, csv, json, latex or html (a whole page).

    `ci`: also print the 95% CI of each cell in md and latex (csv, json and html always carry
    it)."""
    return render_many([table], fmt, ci=ci)


def render_many(tables: Sequence[LeaderboardTable], fmt: str, ci: bool = False) -> str:
    """Render several tables (e.g. both tasks): json as a list of objects when there are several,
    html as one page with a section per table, the text formats one after the other."""
    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    if fmt == "html":
        return render_html(tables)
    if fmt == "json":
        data = [t.to_dict() for t in tables]
        return json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return "\n".join(_render_csv(t) for t in tables)
    one = {"md": _render_md, "latex": _render_latex}[fmt]
    return "\n".join(one(t, ci) for t in tables)


def _fmt(value: float | None, decimals: int = DECIMALS) -> str | None:
    return None if value is None else f"{value:.{decimals}f}"


@dataclass(frozen=True)
class _Style:
    """How one format writes the parts of a cell."""

    bold: Callable[[str], str]
    second: Callable[[str], str]
    marker: Callable[[str], str] = lambda m: m
    pm: str = " ± "
    bootstrap: str = "ᵇ"
    escape: Callable[[str], str] = lambda t: t


def _seeds_text(row: Row) -> str:
    counts = [n for n in row.n_seeds if n]
    if not counts:
        return "–"
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _styled_rows(table: LeaderboardTable, style: _Style, ci: bool
                 ) -> Iterator[tuple[Row, list[str | None]]]:
    """Per row: dataset cells (mean [± std], marker, [CI]), Overall, Latency[, Seeds]."""
    styles = {"best": style.bold, "second": style.second}
    n_cols = len(table.columns)
    for row in table.rows:
        marks = list(row.marks) or [None] * (n_cols + 2)
        texts: list[str | None] = []
        for j in range(n_cols):
            value = row.cells[j]
            if value is None:
                texts.append(None)
                continue
            std = row.stds[j] if row.stds else None
            core = _fmt(value) + (f"{style.pm}{_fmt(std)}" if std is not None else "")
            text = styles[marks[j]](core) if marks[j] else core
            marker = row.markers[j] if row.markers else ""
            text += style.marker(marker) if marker else ""
            interval = row.cis[j] if row.cis else None
            if ci and interval is not None:
                text += style.escape(f" [{_fmt(interval[0])}, {_fmt(interval[1])}]")
                if row.ci_methods[j] == CI_BOOTSTRAP:
                    text += style.bootstrap
            texts.append(text)
        overall = _fmt(row.overall)
        if overall is not None:
            overall = styles[marks[n_cols]](overall) if marks[n_cols] else overall
            if ci and row.overall_ci is not None:
                overall += style.escape(f" [{_fmt(row.overall_ci[0])}, "
                                        f"{_fmt(row.overall_ci[1])}]")
                if row.overall_ci_method == CI_BOOTSTRAP:
                    overall += style.bootstrap
        texts.append(overall)
        latency = _fmt(row.latency_ms, LATENCY_DECIMALS)
        if latency is not None and marks[n_cols + 1]:
            latency = styles[marks[n_cols + 1]](latency)
        texts.append(latency)
        if table.several_seeds:
            texts.append(_seeds_text(row))
        yield row, texts


def _header(table: LeaderboardTable) -> list[str]:
    return ["Group", "Model", *(c.label for c in table.columns), "Overall", "Latency (ms)",
            *(["Seeds"] if table.several_seeds else [])]


def _render_md(table: LeaderboardTable, ci: bool = False) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "\\<")

    header = _header(table)
    lines = [f"**{esc(table.caption)}**", "",
             "| " + " | ".join(esc(h) for h in header) + " |",
             "|:--|:--|" + "--:|" * (len(header) - 2)]
    style = _Style(bold=lambda t: f"**{t}**", second=lambda t: f"<u>{t}</u>",
                   marker=lambda m: "\\*" if m == BETTER else m)
    for row, texts in _styled_rows(table, style, ci):
        texts = ["–" if t is None else t for t in texts]
        lines.append(f"| {group_marker(row.group)} | {esc(row.label)} | "
                     + " | ".join(texts) + " |")
    if not table.rows:
        lines.append("| | (no records) |" + " |" * (len(header) - 2))
    notes = [n for n in table.footnotes if ci or not n.startswith(f"{CONFIDENCE:.0%} CI")]
    lines += ["", *(f"- {esc(note)}" for note in notes)] if notes else []
    return "\n".join(lines) + "\n"


def _render_csv(table: LeaderboardTable) -> str:
    """Machine-readable: full-precision numbers, empty cells for missing values, no styling.

    Per dataset: mean, std, n_seeds, ci_low, ci_high, ci_method, vs_baseline (better / worse)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    per_col = ("std", "n_seeds", "ci_low", "ci_high", "ci_method", "vs_baseline")
    writer.writerow(["group", "model", "mode",
                     *(name for c in table.columns
                       for name in (c.label, *(f"{c.label}_{k}" for k in per_col))),
                     "overall", "overall_ci_low", "overall_ci_high", "overall_ci_method",
                     "overall_partial", "latency_ms", "flags"])

    def num(v: float | None) -> str:
        return "" if v is None else repr(float(v))

    for row in table.rows:
        cols = []
        for j in range(len(table.columns)):
            interval = row.cis[j] if row.cis else None
            marker = row.markers[j] if row.markers else ""
            cols += [num(row.cells[j]), num(row.stds[j] if row.stds else None),
                     str(row.n_seeds[j]) if row.n_seeds and row.n_seeds[j] else "",
                     num(interval[0] if interval else None),
                     num(interval[1] if interval else None),
                     (row.ci_methods[j] or "") if row.ci_methods else "",
                     {BETTER: "better", WORSE: "worse"}.get(marker, "")]
        oci = row.overall_ci
        writer.writerow([row.group, row.model_id, row.mode, *cols, num(row.overall),
                         num(oci[0] if oci else None), num(oci[1] if oci else None),
                         row.overall_ci_method or "", str(row.partial).lower(),
                         num(row.latency_ms), ";".join(row.flags)])
    return out.getvalue()


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "…": r"\ldots{}", "–": "--", DAGGER: r"\dag{}", "±": r"$\pm$", "≥": r"$\geq$",
                  "↓": r"$\downarrow$", "ᵇ": r"$^{b}$"}


def _latex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _render_latex(table: LeaderboardTable, ci: bool = False) -> str:
    ncols = len(_header(table))
    lines = [r"% recbench leaderboard; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{_latex(table.caption)}.}}",
             rf"\label{{tab:recbench-{table.task}-{_slug(table.metric)}}}",
             r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule",
             " & ".join(_latex(h) for h in _header(table)) + r" \\", r"\midrule"]
    previous = None
    style = _Style(bold=lambda t: rf"\textbf{{{t}}}", second=lambda t: rf"\underline{{{t}}}",
                   marker=lambda m: r"$^{*}$" if m == BETTER else r"$^{\downarrow}$",
                   pm=r" $\pm$ ", bootstrap=r"$^{b}$", escape=_latex)
    for row, texts in _styled_rows(table, style, ci):
        if previous is not None and row.group != previous:
            lines.append(r"\midrule")
        previous = row.group
        texts = ["--" if t is None else t for t in texts]
        lines.append(" & ".join([_latex(group_marker(row.group)), _latex(row.label), *texts])
                     + r" \\")
    if not table.rows:
        lines.append(rf"\multicolumn{{{ncols}}}{{c}}{{(no records)}} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = [n for n in table.footnotes if ci or not n.startswith(f"{CONFIDENCE:.0%} CI")]
    if notes:
        lines.append(r"\par\smallskip\footnotesize "
                     + r" \\ ".join(_latex(n) for n in notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML: one self-contained page, table + inline SVG scatter plot, no external resources.

GROUP_COLORS = {"baseline": "#7f7f7f", "A": "#1f77b4", "B": "#ff7f0e", "C": "#2ca02c",
                "D": "#d62728", "E": "#9467bd", "F": "#8c564b", "G": "#1f77b4", "H": "#ff7f0e",
                "I": "#2ca02c", "J": "#d62728"}
_EXTRA_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939")

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dee7; --band: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; color: var(--ink); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 4px; padding-top: 12px; border-top: 2px solid var(--ink); }
p.sub, p.caption { color: var(--muted); margin: 0 0 12px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; text-align: right; white-space: nowrap; }
th { position: sticky; top: 0; background: #fff; border-bottom: 2px solid var(--ink);
  font-weight: 600; }
td.group, td.model, th.group, th.model { text-align: left; }
tr.group-start td { border-top: 1px solid var(--line); }
tbody tr:hover td { background: var(--band); }
td.overall, th.overall { border-left: 1px solid var(--line); }
td.empty { color: #a0a7b4; }
.ci { color: var(--muted); font-size: 12px; }
td.muted { color: var(--muted); }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 6px; vertical-align: -1px; }
b { font-weight: 700; }
u { text-decoration-thickness: 1.5px; text-underline-offset: 2px; }
ul.notes { color: var(--muted); margin: 8px 0 0; padding-left: 18px; font-size: 13px; }
figure { margin: 20px 0 0; }
figure svg { display: block; width: 100%; max-width: 980px; height: auto;
  border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; max-width: 980px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; margin: 8px 0 0; font-size: 13px; }
.legend span { white-space: nowrap; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
"""


def group_color(group: str) -> str:
    if group in GROUP_COLORS:
        return GROUP_COLORS[group]
    return _EXTRA_COLORS[sum(map(ord, group)) % len(_EXTRA_COLORS)]


def render_html(tables: Sequence[LeaderboardTable]) -> str:
    """One self-contained page: per table a section with the table and the scatter plot."""
    from recbench import __version__

    n = sum(t.n_records for t in tables)
    nav = " · ".join(f'<a href="#{t.task}-{_slug(t.metric)}">'
                     f"{html.escape(TASK_TITLES.get(t.task, t.task))}</a>" for t in tables)
    body = "\n".join(_html_section(t) for t in tables)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recbench leaderboard</title>
<style>{_CSS}</style>
</head>
<body>
<h1>recbench leaderboard</h1>
<p class="sub">Rebuilt from {n} result records by recbench {html.escape(__version__)}.
Best value per column in <b>bold</b>, second <u>underlined</u>; latency: lower is better.
{nav}</p>
{body}
</body>
</html>
"""


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def _html_section(table: LeaderboardTable) -> str:
    title = html.escape(TASK_TITLES.get(table.task, table.task))
    classes = ["group", "model", *["num"] * len(table.columns), "num overall", "num",
               *(["num"] if table.several_seeds else [])]
    head = "".join(f'<th class="{cls}">{html.escape(h)}</th>'
                   for h, cls in zip(_header(table), classes, strict=True))
    body, previous = [], None
    n_cols = len(table.columns)
    style = _Style(bold=lambda t: f"<b>{t}</b>", second=lambda t: f"<u>{t}</u>",
                   marker=lambda m: f"<sup>{html.escape(m)}</sup>",
                   escape=lambda t: f'<span class="ci">{html.escape(t)}</span>',
                   bootstrap='<sup class="ci">b</sup>')
    for row, texts in _styled_rows(table, style, ci=True):
        spec = GROUPS.get(row.group)
        tip = html.escape(spec.description if spec else row.group, quote=True)
        cls = ' class="group-start"' if previous is not None and row.group != previous else ""
        previous = row.group
        tds = [f'<td class="group" title="{tip}"><span class="dot" style="background:'
               f'{group_color(row.group)}"></span>{html.escape(group_marker(row.group))}</td>',
               f'<td class="model">{html.escape(row.label)}</td>']
        for j, text in enumerate(texts):
            kind = "num overall" if j == n_cols else "num muted" if j > n_cols else "num"
            if text is None:
                tds.append(f'<td class="{kind} empty">–</td>')
                continue
            key = row.record_keys[j] if j < n_cols else None
            tip = f' title="record {html.escape(key)}"' if key else ""
            tds.append(f'<td class="{kind}"{tip}>{text}</td>')
        body.append(f"<tr{cls}>{''.join(tds)}</tr>")
    if not table.rows:
        body.append(f'<tr><td colspan="{len(classes)}">(no records)</td></tr>')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.footnotes)
    svg, plot_notes = scatter_svg(table)
    groups = list(dict.fromkeys(r.group for r in table.rows))
    legend = "".join(
        f'<span><span class="dot" style="background:{group_color(g)}"></span>'
        f'{html.escape(group_marker(g))} {html.escape(_group_blurb(g))}</span>' for g in groups)
    if any(r.overall_ci is not None for r in table.rows):
        legend += ("<span>bars: 95% CI of Overall (t over seeds, or paired bootstrap over "
                   "test users)</span>")
    fig_note = "".join(f" {html.escape(n)}" for n in plot_notes)
    return f"""<section id="{table.task}-{_slug(table.metric)}">
<h2>{title}</h2>
<p class="caption">{html.escape(table.caption)}</p>
<div class="scroll"><table>
<thead><tr>{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table></div>
{f'<ul class="notes">{notes}</ul>' if notes else ''}
<figure>
{svg}
<div class="legend">{legend}</div>
<figcaption>Overall {html.escape(table.metric)} against mean per-sample latency (log scale),
one point per row.{fig_note}</figcaption>
</figure>
</section>"""


def _group_blurb(group: str) -> str:
    spec = GROUPS.get(group)
    if spec is None:
        return group
    if group == "baseline":
        return "baseline"
    return f"{spec.representation} · {spec.family}"


def _nice_step(span: float, target: int = 5) -> float:
    raw = span / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _decimals_for(step: float) -> int:
    """Fewest decimals that print every multiple of `step` exactly (0.025 -> 3)."""
    for decimals in range(0, 10):
        if abs(round(step, decimals) - step) < step * 1e-6:
            return decimals
    return 9


def _ms_label(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms"


def scatter_svg(table: LeaderboardTable, width: int = 960, height: int = 520,
                ) -> tuple[str, list[str]]:
    """Inline SVG: Overall (y) against latency (x, log10), coloured by group, labelled.

    Returns the SVG text and notes on rows that could not be plotted.
    """
    points = [r for r in table.rows
              if r.overall is not None and r.latency_ms is not None and r.latency_ms > 0]
    skipped = [r.label for r in table.rows if r not in points]
    notes = [f"Not plotted (no latency or Overall): {', '.join(skipped)}."] if skipped else []
    left, right, top, bottom = 74, 28, 20, 56
    pw, ph = width - left - right, height - top - bottom
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img">',
           f"<title>{html.escape(table.metric)} vs latency, {html.escape(table.task)}</title>",
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfcfd" '
           'stroke="#c9d0db"/>']
    if not points:
        svg.append(f'<text x="{left + pw / 2}" y="{top + ph / 2}" text-anchor="middle" '
                   'fill="#5b6475" font-size="14">no row has both a latency and an Overall '
                   "value</text></svg>")
        return "\n".join(svg), notes

    logs = [math.log10(r.latency_ms) for r in points]
    # A quarter decade of room each side; ticks sit on the decades (and 2x, 5x) inside.
    x_lo, x_hi = min(logs) - 0.25, max(logs) + 0.25
    # The axis covers the error bars too (the CI of Overall), not just the means.
    ys = [v for r in points for v in (r.overall, *(r.overall_ci or ()))]
    y_span = max(ys) - min(ys) or max(abs(ys[0]) * 0.1, 0.01)
    step = _nice_step(y_span * 1.2)
    y_lo = math.floor((min(ys) - 0.08 * y_span) / step) * step
    y_hi = math.ceil((max(ys) + 0.08 * y_span) / step) * step
    if min(ys) >= 0 > y_lo:  # metrics are non-negative: no axis below zero
        y_lo = 0.0
    if max(ys) <= 1 < y_hi:  # nor above one for AUC/NDCG-like metrics
        y_hi = 1.0
    y_lo_axis, y_hi_axis = y_lo, y_hi

    def sx(log_ms: float) -> float:
        return left + (log_ms - x_lo) / (x_hi - x_lo) * pw

    def sy(value: float) -> float:
        return top + (1 - (value - y_lo) / (y_hi - y_lo)) * ph

    # Grid and ticks: every decade, plus 2x and 5x when the axis spans few decades.
    multiples = (1, 2, 5) if x_hi - x_lo <= 3 else (1,)
    for decade in range(math.floor(x_lo), math.ceil(x_hi) + 1):
        for m in multiples:
            log_ms = decade + math.log10(m)
            if not x_lo <= log_ms <= x_hi:
                continue
            x = sx(log_ms)
            major = m == 1
            svg.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                       f'stroke="{"#dde2ea" if major else "#eef1f5"}"/>')
            svg.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle" '
                       f'font-size="{12 if major else 10}" fill="#5b6475">'
                       f"{_ms_label(10 ** log_ms)}</text>")
    n_ticks = round((y_hi - y_lo) / step)
    decimals = _decimals_for(step)
    for i in range(n_ticks + 1):
        value = y_lo + i * step
        y = sy(value)
        svg.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                   'stroke="#dde2ea"/>')
        svg.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
                   f'fill="#5b6475">{value:.{decimals}f}</text>')
    better = "higher" if table.higher_is_better else "lower"
    svg.append(f'<text x="{left + pw / 2}" y="{height - 12}" text-anchor="middle" '
               'font-size="13" fill="#1d2330">latency per sample (ms, log scale; left is '
               "faster)</text>")
    svg.append(f'<text transform="translate(18 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
               f'font-size="13" fill="#1d2330">Overall {html.escape(table.metric)} '
               f"({better} is better)</text>")

    placed: list[tuple[float, float, float, float]] = []
    coords = [(sx(math.log10(r.latency_ms)), sy(r.overall)) for r in points]
    for (x, y) in coords:
        placed.append((x - 8, y - 8, x + 8, y + 8))
    labels = []
    # Place labels greedily, top of the plot first, at the candidate spot that overlaps least.
    for idx in sorted(range(len(points)), key=lambda i: coords[i][1]):
        row, (x, y) = points[idx], coords[idx]
        text = row.label
        w, h = 6.6 * len(text) + 2, 13
        candidates = [(x + 9, y + 4, "start"), (x - 9, y + 4, "end"),
                      (x, y - 10, "middle"), (x, y + 18, "middle"),
                      (x + 8, y - 8, "start"), (x + 8, y + 16, "start"),
                      (x - 8, y - 8, "end"), (x - 8, y + 16, "end")]
        best, best_cost = None, math.inf
        for order, (tx, ty, anchor) in enumerate(candidates):
            x0 = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
            box = (x0, ty - h + 2, x0 + w, ty + 2)
            cost = sum(_overlap(box, other) for other in placed) + order * 0.5
            outside = (max(0, left - box[0]) + max(0, box[2] - (left + pw))
                       + max(0, top - box[1]) + max(0, box[3] - (top + ph)))
            cost += outside * h * 4
            if cost < best_cost:
                best, best_cost = (tx, ty, anchor, box), cost
        tx, ty, anchor, box = best
        placed.append(box)
        labels.append(f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" font-size="11" '
                      f'fill="#1d2330">{html.escape(text)}</text>')
    for row, (x, y) in zip(points, coords, strict=True):
        color = group_color(row.group)
        fill = color
        interval = ""
        if row.overall_ci is not None:
            lo, hi = row.overall_ci
            bar_lo, bar_hi = sy(max(lo, y_lo_axis)), sy(min(hi, y_hi_axis))
            svg.append(f'<path class="errorbar" d="M{x:.1f} {bar_lo:.1f}V{bar_hi:.1f}'
                       f'M{x - 4:.1f} {bar_lo:.1f}h8M{x - 4:.1f} {bar_hi:.1f}h8" '
                       f'stroke="{color}" stroke-width="1.5" fill="none"/>')
            interval = (f", 95% CI [{lo:.4f}, {hi:.4f}] "
                        f"({'t over seeds' if row.overall_ci_method == CI_T else 'bootstrap'})")
        tip = (f"{row.label} [{group_marker(row.group)}]: Overall {row.overall:.4f}"
               f"{interval}, {row.latency_ms:.2f} ms")
        svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5" fill="{fill}" stroke="{color}" '
                   f'stroke-width="2"><title>{html.escape(tip)}</title></circle>')
    svg += labels
    svg.append("</svg>")
    return "\n".join(svg), notes


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    dx = min(a[2], b[2]) - max(a[0], b[0])
    dy = min(a[3], b[3]) - max(a[1], b[1])
    return dx * dy if dx > 0 and dy > 0 else 0.0


__all__ = ["FORMATS", "Column", "LeaderboardTable", "Row", "available_metrics", "build_table",
           "group_marker", "render", "render_html", "render_many", "scatter_svg"]
