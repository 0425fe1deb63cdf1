"""Leaderboards rebuilt from result records alone, shaped like RecBench Tables 3-5.

Rows are (group, model) sorted in the paper's A-J order, one column per prepared dataset
version, then Overall (mean over the columns) and Latency (mean per-sample ms). Numbers from
different dataset versions, sizes or protocol versions never share a column. `render` writes
md, csv, json, latex or a self-contained html page (table + accuracy-vs-latency scatter plot).

Typical use::

    records = list(ResultStore(home).records())
    table = build_table(records, "ctr")             # gauc on the ctr protocol
    print(render(table, "md"))
    html = render_html([build_table(records, "ctr"), build_table(records, "seq")])
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from recbench.core.errors import UnknownNameError
from recbench.groups import GROUPS, group_order
from recbench.results.record import DEFAULT_METRIC, DEFAULT_PROTOCOL, PROTOCOLS, Record

FORMATS = ("md", "csv", "json", "latex", "html")
TASK_TITLES = {"ctr": "CTR (pair-wise)", "seq": "SeqRec (list-wise)"}
LOWER_IS_BETTER = frozenset({"logloss"})
SIZE_ORDER = {"tiny": 0, "small": 1, "paper": 2}
DAGGER = "†"
DECIMALS = 4
LATENCY_DECIMALS = 2
JSON_FORMAT = "recbench-leaderboard"
JSON_VERSION = 1


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
    """One (group, model, mode) row. `partial`: some columns are empty, so Overall carries a †."""

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


@dataclass(frozen=True)
class LeaderboardTable:
    """One task's leaderboard under one metric and protocol.

    A cell holds the newest record of its (group, model, mode, column); Overall is the mean of a
    row's cells; Latency is the mean `latency.mean_ms` of the records shown in the row.
    """

    task: str
    metric: str
    protocol: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    n_records: int  # records shown in cells
    footnotes: tuple[str, ...] = ()
    higher_is_better: bool = True

    @property
    def caption(self) -> str:
        better = "higher" if self.higher_is_better else "lower"
        return (f"{TASK_TITLES.get(self.task, self.task)} leaderboard: {self.metric} "
                f"({better} is better), protocol {self.protocol}, {self.n_records} records; "
                "latency = mean per-sample ms")

    def marks(self) -> list[list[str | None]]:
        """Per row: 'best' / 'second' / None for each dataset column, then Overall, then Latency.

        Values are compared at display precision, so ties share a mark. Overall ranks only the
        rows that have every column (a † mean over fewer datasets is not comparable).
        """
        hib = self.higher_is_better
        per_col = [_rank([r.cells[i] for r in self.rows], hib, DECIMALS)
                   for i in range(len(self.columns))]
        per_col.append(_rank([None if r.partial else r.overall for r in self.rows], hib, DECIMALS))
        per_col.append(_rank([r.latency_ms for r in self.rows], False, LATENCY_DECIMALS))
        return [[col[i] for col in per_col] for i in range(len(self.rows))]

    def to_dict(self) -> dict:
        return {
            "format": JSON_FORMAT, "version": JSON_VERSION, "task": self.task,
            "metric": self.metric, "protocol": self.protocol, "n_records": self.n_records,
            "higher_is_better": self.higher_is_better, "caption": self.caption,
            "columns": [vars(c) for c in self.columns],
            "rows": [{**vars(r), "cells": list(r.cells), "flags": list(r.flags),
                      "record_keys": list(r.record_keys)} for r in self.rows],
            "footnotes": list(self.footnotes),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LeaderboardTable:
        """Inverse of `to_dict` (the json format), e.g. to re-render a saved leaderboard."""
        return cls(
            task=data["task"], metric=data["metric"], protocol=data["protocol"],
            columns=tuple(Column(**c) for c in data["columns"]),
            rows=tuple(Row(**{**r, "cells": tuple(r["cells"]), "flags": tuple(r["flags"]),
                              "record_keys": tuple(r["record_keys"])}) for r in data["rows"]),
            n_records=data["n_records"], footnotes=tuple(data["footnotes"]),
            higher_is_better=data["higher_is_better"],
        )


# ---------------------------------------------------------------------------------------------
# Building


def available_metrics(records: Iterable[Record], task: str, protocol: str) -> set[str]:
    """Metric names that some `task` record reports under `protocol` (counts like n_rows aside)."""
    return {name for r in records if r.task == task
            for name in r.metrics.get(protocol, {}) if not name.startswith("n_")}


def build_table(records: Iterable[Record], task: str, metric: str | None = None,
                protocol: str | None = None, datasets: Sequence[str] | None = None,
                include_smoke: bool = False) -> LeaderboardTable:
    """Build one task's leaderboard from result records.

    Args:
        records: Result records (any task; others are ignored).
        task: "ctr" or "seq".
        metric: Metric name; defaults to `DEFAULT_METRIC[task]`.
        protocol: Metrics protocol key; defaults to `DEFAULT_PROTOCOL[task]`.
        datasets: Only these dataset names, in this column order (default: all, by name).
        include_smoke: Keep smoke-test records (tiny budgets), flagged in the row label.

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

    col_keys = _ordered_columns({_column_key(r) for r in usable}, datasets)
    columns = tuple(Column(*key, label=label)
                    for key, label in zip(col_keys, _column_labels(col_keys), strict=True))
    col_index = {key: i for i, key in enumerate(col_keys)}

    row_modes: dict[tuple[str, str], set[str]] = defaultdict(set)
    cell_records: dict[tuple[str, str, str], dict[int, list[Record]]] = defaultdict(
        lambda: defaultdict(list))
    for r in usable:
        row_modes[(r.group, r.model_id)].add(r.mode)
        cell_records[(r.group, r.model_id, r.mode)][col_index[_column_key(r)]].append(r)

    rows, superseded_total = [], 0
    for (group, model_id, mode), by_col in cell_records.items():
        chosen = {i: max(recs, key=_recency) for i, recs in by_col.items()}
        superseded = sum(len(recs) - 1 for recs in by_col.values())
        superseded_total += superseded
        cells = tuple(_value(chosen[i], protocol, metric) if i in chosen else None
                      for i in range(len(columns)))
        present = [v for v in cells if v is not None]
        latencies = [r.latency.mean_ms for r in chosen.values() if r.latency is not None]
        smoke = any(r.smoke for r in chosen.values())
        show_mode = len(row_modes[(group, model_id)]) > 1 or (
            group in GROUPS and len(GROUPS[group].modes) > 1)
        label = model_id + (f" ({mode})" if show_mode else "") + (" [smoke]" if smoke else "")
        partial = len(present) < len(columns)
        flags = (("partial",) if partial else ()) + (
            (f"superseded:{superseded}",) if superseded else ()) + (("smoke",) if smoke else ())
        rows.append(Row(
            group=group, model_id=model_id, mode=mode, label=label, cells=cells,
            overall=sum(present) / len(present) if present else None, partial=partial,
            latency_ms=sum(latencies) / len(latencies) if latencies else None, flags=flags,
            record_keys=tuple(chosen[i].key if i in chosen else None
                              for i in range(len(columns)))))
    rows.sort(key=lambda r: (group_order(r.group), r.group, r.label.lower(), r.mode))

    if any(r.partial for r in rows):
        notes.insert(0, f"{DAGGER} mean over the datasets present (the row lacks some columns); "
                        "not ranked.")
    if superseded_total:
        notes.append(f"{superseded_total} older record(s) superseded: where a model has several "
                     "runs on one dataset (other seeds or configs), the newest is shown.")
    if include_smoke and any("smoke" in r.flags for r in rows):
        notes.append("[smoke] rows include smoke-test runs (tiny budgets): not comparable.")
    return LeaderboardTable(
        task=task, metric=metric, protocol=protocol, columns=columns, rows=tuple(rows),
        n_records=sum(v is not None for r in rows for v in r.cells), footnotes=tuple(notes),
        higher_is_better=metric not in LOWER_IS_BETTER)


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


def render(table: LeaderboardTable, fmt: str) -> str:
    """Render one table as md, csv, json, latex or html (a whole page)."""
    return render_many([table], fmt)


def render_many(tables: Sequence[LeaderboardTable], fmt: str) -> str:
    """Render several tables (e.g. both tasks): json as a list of objects when there are several,
    html as one page with a section per table, the text formats one after the other."""
    if fmt not in FORMATS:
        raise UnknownNameError("format", fmt, FORMATS)
    if fmt == "html":
        return render_html(tables)
    if fmt == "json":
        data = [t.to_dict() for t in tables]
        return json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False) + "\n"
    one = {"md": _render_md, "csv": _render_csv, "latex": _render_latex}[fmt]
    return "\n".join(one(t) for t in tables)


def _fmt(value: float | None, decimals: int = DECIMALS) -> str | None:
    return None if value is None else f"{value:.{decimals}f}"


def _display_cells(row: Row) -> list[str | None]:
    """Dataset cells, Overall (no dagger yet), Latency as text; None where empty."""
    return ([_fmt(v) for v in row.cells] + [_fmt(row.overall)]
            + [_fmt(row.latency_ms, LATENCY_DECIMALS)])


def _styled_rows(table: LeaderboardTable, bold: Callable[[str], str],
                 second: Callable[[str], str], dagger: str,
                 ) -> Iterator[tuple[Row, list[str | None]]]:
    """Per row: dataset cells, Overall (+ dagger when partial), Latency, best/second styled."""
    styles = {"best": bold, "second": second}
    for row, marks in zip(table.rows, table.marks(), strict=True):
        texts: list[str | None] = []
        for j, (text, mark) in enumerate(zip(_display_cells(row), marks, strict=True)):
            if text is not None:
                text = styles[mark](text) if mark else text
                if j == len(table.columns) and row.partial:
                    text += dagger
            texts.append(text)
        yield row, texts


def _header(table: LeaderboardTable) -> list[str]:
    return ["Group", "Model", *(c.label for c in table.columns), "Overall", "Latency (ms)"]


def _render_md(table: LeaderboardTable) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "\\<")

    lines = [f"**{esc(table.caption)}**", "",
             "| " + " | ".join(esc(h) for h in _header(table)) + " |",
             "|:--|:--|" + "--:|" * (len(table.columns) + 2)]
    for row, texts in _styled_rows(table, lambda t: f"**{t}**", lambda t: f"<u>{t}</u>",
                                   DAGGER):
        texts = ["–" if t is None else t for t in texts]
        lines.append(f"| {group_marker(row.group)} | {esc(row.label)} | "
                     + " | ".join(texts) + " |")
    if not table.rows:
        lines.append("| | (no records) |" + " |" * (len(table.columns) + 2))
    lines += ["", *(f"- {note}" for note in table.footnotes)] if table.footnotes else []
    return "\n".join(lines) + "\n"


def _render_csv(table: LeaderboardTable) -> str:
    """Machine-readable: full-precision numbers, empty cells for missing values, no styling."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["group", "model", "mode", *(c.label for c in table.columns),
                     "overall", "overall_partial", "latency_ms", "flags"])
    for row in table.rows:
        writer.writerow([row.group, row.model_id, row.mode,
                         *("" if v is None else repr(v) for v in row.cells),
                         "" if row.overall is None else repr(row.overall),
                         str(row.partial).lower(),
                         "" if row.latency_ms is None else repr(row.latency_ms),
                         ";".join(row.flags)])
    return out.getvalue()


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "…": r"\ldots{}", "–": "--", DAGGER: r"\dag{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _render_latex(table: LeaderboardTable) -> str:
    ncols = len(table.columns) + 4
    lines = [r"% recbench leaderboard; needs \usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{{_latex(table.caption)}.}}",
             rf"\label{{tab:recbench-{table.task}-{_slug(table.metric)}}}",
             r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule",
             " & ".join(_latex(h) for h in _header(table)) + r" \\", r"\midrule"]
    previous = None
    for row, texts in _styled_rows(table, lambda t: rf"\textbf{{{t}}}",
                                   lambda t: rf"\underline{{{t}}}", r"$^\dagger$"):
        if previous is not None and row.group != previous:
            lines.append(r"\midrule")
        previous = row.group
        texts = ["--" if t is None else t for t in texts]
        lines.append(" & ".join([_latex(group_marker(row.group)), _latex(row.label), *texts])
                     + r" \\")
    if not table.rows:
        lines.append(rf"\multicolumn{{{ncols}}}{{c}}{{(no records)}} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.footnotes:
        lines.append(r"\par\smallskip\footnotesize "
                     + r" \\ ".join(_latex(n) for n in table.footnotes))
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
    classes = ["group", "model", *["num"] * len(table.columns), "num overall", "num"]
    head = "".join(f'<th class="{cls}">{html.escape(h)}</th>'
                   for h, cls in zip(_header(table), classes, strict=True))
    body, previous = [], None
    n_cols = len(table.columns)
    for row, texts in _styled_rows(table, lambda t: f"<b>{t}</b>", lambda t: f"<u>{t}</u>",
                                   DAGGER):
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
        body.append(f'<tr><td colspan="{len(table.columns) + 4}">(no records)</td></tr>')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in table.footnotes)
    svg, plot_notes = scatter_svg(table)
    groups = list(dict.fromkeys(r.group for r in table.rows))
    legend = "".join(
        f'<span><span class="dot" style="background:{group_color(g)}"></span>'
        f'{html.escape(group_marker(g))} {html.escape(_group_blurb(g))}</span>' for g in groups)
    if any(r.partial for r in table.rows):
        legend += ('<span><span class="dot" style="border:2px solid #5b6475"></span>'
                   f"hollow: Overall over fewer datasets ({DAGGER})</span>")
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
    ys = [r.overall for r in points]
    y_span = max(ys) - min(ys) or max(abs(ys[0]) * 0.1, 0.01)
    step = _nice_step(y_span * 1.2)
    y_lo = math.floor((min(ys) - 0.08 * y_span) / step) * step
    y_hi = math.ceil((max(ys) + 0.08 * y_span) / step) * step
    if min(ys) >= 0 > y_lo:  # metrics are non-negative: no axis below zero
        y_lo = 0.0
    if max(ys) <= 1 < y_hi:  # nor above one for AUC/NDCG-like metrics
        y_hi = 1.0

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
        fill = "#ffffff" if row.partial else color
        tip = (f"{row.label} [{group_marker(row.group)}]: Overall {row.overall:.4f}"
               f"{DAGGER if row.partial else ''}, {row.latency_ms:.2f} ms")
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
