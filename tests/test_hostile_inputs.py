"""Hostile raw files through `recbench prepare`, as a user meets them (issue 13, classes 5, 13).

A generated corpus: for each source, a valid raw folder (the writers of the source tests), then
one defect at a time in its main interactions file: missing, empty, header only, a wrong or
missing column, a wrong dtype, a cut-off last line, garbage bytes, a garbage header with control
bytes, a 50 MB line, non-UTF-8 bytes, duplicated lines, an empty id. Each is run through the CLI
and checked against the policy of `recbench.data.rawfiles`: a rejected file gives exit code 2
and exactly one line on stderr (no traceback, no control byte, no 50 MB echo) and leaves the
home empty; a repaired one succeeds, writes only the dataset, and its manifest notes the repair.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.cli.app import app

runner = CliRunner()
LONG = 50 * 1024 * 1024  # the 50 MB line: over the csv module's field limit, over polars blocks
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# --- valid raw folders ------------------------------------------------------------------------

def write_csv(raw: Path) -> None:
    rng = np.random.default_rng(3)
    raw.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,timestamp,rating"]
    for u in range(60):
        for k, i in enumerate(rng.choice(200, 8, replace=False)):
            lines.append(f"u{u},i{i},{1_600_000_000 + 1000 * u + k},{[5, 4, 1, 5][k % 4]}")
    (raw / "interactions.csv").write_text("\n".join(lines) + "\n")
    (raw / "items.csv").write_text("item,title\n" + "".join(
        f'i{i},"Item {i}, the title"\n' for i in range(200)))


def write_p5(raw: Path) -> None:
    from test_source_p5 import write_p5 as write

    write(raw)


def write_mind(raw: Path) -> None:
    from test_source_mind import write_mind as write

    write(raw)


def write_amazon(raw: Path) -> None:
    from test_source_amazon import write_layout

    write_layout(raw, "2018")


def write_goodbooks(raw: Path) -> None:
    from test_source_goodbooks import make_raw

    make_raw(raw, to_read=False)


def write_movielens(raw: Path) -> None:
    from test_source_movielens import make_raw

    make_raw(raw, "ml-latest")


def write_ml1m(raw: Path) -> None:
    from test_source_movielens import make_raw

    make_raw(raw, "ml-1m")


def write_hm(raw: Path) -> None:
    from test_source_hm import write_hm as write

    write(raw)


def write_microlens(raw: Path) -> None:
    from test_source_microlens import write_microlens as write

    write(raw)


def write_microlens_tsv(raw: Path) -> None:
    from test_source_microlens import write_microlens as write

    write(raw, pairs="tsv")


def write_recbole_sequences(raw: Path) -> None:
    from test_source_recbole import write_sequences

    write_sequences(raw)


def write_recbole(raw: Path) -> None:
    from test_source_recbole import plain_rows, write_plain

    write_plain(raw, plain_rows())


def write_goodreads(raw: Path) -> None:
    from test_source_goodreads import make_raw

    make_raw(raw)


def write_steam(raw: Path) -> None:
    from test_source_steam import make_reviews, write_games, write_parquet_reviews

    raw.mkdir(parents=True, exist_ok=True)
    write_games(raw, "parquet", metadata=False)
    write_parquet_reviews(raw, make_reviews(0))


@dataclass(frozen=True)
class Source:
    """A source and the file the defects go into.

    fmt: "csv" (a header line), "headerless" (fixed fields, no header), "space" (P5 lines),
    "jsonl" or "parquet". `id_field` and `number_field` are field indices (text formats) or
    names (JSON, Parquet).
    """

    name: str
    write: Callable[[Path], None]
    target: str
    fmt: str
    separator: str = ","
    id_field: int | str = 0
    number_field: int | str | None = 2
    args: tuple[str, ...] = ()
    long_line: bool = False  # the 50 MB case runs for one source of each reader family
    optional: bool = False  # the source loads without this file
    slow: bool = False  # second files of a source: with --runslow (the default stays < 60 s)

    def __str__(self) -> str:
        return f"{self.name}:{Path(self.target).name}"


SOURCES = [
    Source("csv", write_csv, "interactions.csv", "csv", number_field=2, long_line=True),
    Source("p5", write_p5, "sequential_data.txt", "space", separator=" ", number_field=1,
           long_line=True),
    Source("mind", write_mind, "behaviors.tsv", "headerless", separator="\t", id_field=1,
           number_field=0, long_line=True),
    Source("amazon-beauty", write_amazon, "Beauty_5.json", "jsonl", id_field="reviewerID",
           number_field="overall", long_line=True),
    Source("goodbooks-10k", write_goodbooks, "ratings.csv", "csv", number_field=2),
    Source("ml-latest-small", write_movielens, "ml-latest/ratings.csv", "csv", number_field=3),
    Source("ml-1m", write_ml1m, "ml-1m/ratings.dat", "headerless", separator="::",
           number_field=3, long_line=True),
    Source("hm", write_hm, "transactions_train.csv", "csv", id_field=1, number_field=2),
    Source("microlens", write_microlens, "MicroLens-50k_pairs.csv", "csv", number_field=2),
    Source("recbole", write_recbole, "Games.inter", "csv", separator="\t", number_field=2),
    Source("goodreads", write_goodreads, "goodreads_interactions_dedup.json", "jsonl",
           id_field="user_id", number_field="rating", long_line=True),
    Source("steam", write_steam, "user_reviews.parquet", "parquet", id_field="user_id",
           number_field="recommend"),
    # Item files and second layouts: the same rules.
    Source("mind", write_mind, "news.tsv", "headerless", separator="\t", number_field=None,
           slow=True),
    Source("hm", write_hm, "articles.csv", "csv", number_field=0, slow=True),
    Source("goodbooks-10k", write_goodbooks, "books.csv", "csv", number_field=0, slow=True),
    Source("microlens", write_microlens_tsv, "MicroLens-50k_pairs.tsv", "headerless",
           separator="\t", number_field=0, slow=True),
    Source("recbole", write_recbole_sequences, "Games.test.inter", "csv", separator="\t",
           number_field=None, optional=True, slow=True),
    Source("csv", write_csv, "items.csv", "csv", number_field=None, slow=True),
]


# --- defects ----------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What the policy says for a defect: an error whose line matches `error`, or success with a
    manifest note matching `note`."""

    error: str | None = None
    note: str | None = None
    extra: dict = field(default_factory=dict)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _middle(lines: list[bytes], fmt: str) -> int:
    return len(lines) // 2 if fmt != "csv" else max(1, len(lines) // 2)


def _fields(line: bytes, sep: str) -> list[bytes]:
    return line.rstrip(b"\r\n").split(sep.encode())


def _join(fields: list[bytes], sep: str) -> bytes:
    return sep.encode().join(fields) + b"\n"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_records(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def missing(src: Source, path: Path) -> Outcome:
    path.unlink()
    if src.optional:
        return Outcome(note=".")
    return Outcome(error="expected|not found|no .*file|needs")


def empty(src: Source, path: Path) -> Outcome:
    path.write_bytes(b"")
    return Outcome(error="empty|no data|no record|no rows|no JSON record|not a readable|no usable")


def header_only(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        pl.read_parquet(path).head(0).write_parquet(path)
        return Outcome(error="no rows|no review|no usable|empty|nothing")
    if src.fmt != "csv":
        pytest.skip("no header line in this format")
    path.write_bytes(_lines(path)[0])
    return Outcome(error="no data lines")


def wrong_column(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        df = pl.read_parquet(path)
        df.rename({src.id_field: "bogus"}).write_parquet(path)
        return Outcome(error="missing column|no column|bogus|user_id")
    if src.fmt == "jsonl":
        records = [{("bogus" if k == src.id_field else k): v for k, v in r.items()}
                   for r in _records(path)]
        _write_records(path, records)
        return Outcome(error="no record has the field")
    lines = _lines(path)
    if src.fmt == "csv":
        fields = _fields(lines[0], src.separator)
        fields[src.id_field] = b"bogus"
        lines[0] = _join(fields, src.separator)
        path.write_bytes(b"".join(lines))
        return Outcome(error="missing column|no column|no field")
    # Header-less: a line with one field too many.
    i = _middle(lines, src.fmt)
    lines[i] = lines[i].rstrip(b"\r\n") + src.separator.encode() + b"extra\n"
    path.write_bytes(b"".join(lines))
    return Outcome(error=rf"line {i + 1}\b")


def missing_column(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        pl.read_parquet(path).drop(src.id_field).write_parquet(path)
        return Outcome(error="missing column|no column|user_id")
    if src.fmt == "jsonl":
        _write_records(path, [{k: v for k, v in r.items() if k != src.id_field}
                              for r in _records(path)])
        return Outcome(error="no record has the field")
    lines = _lines(path)
    if src.fmt == "csv":
        out = []
        for line in lines:
            fields = _fields(line, src.separator)
            out.append(_join(fields[:src.id_field] + fields[src.id_field + 1:], src.separator))
        path.write_bytes(b"".join(out))
        return Outcome(error="missing column|no column|no field")
    # Header-less: a line with one field too few.
    i = _middle(lines, src.fmt)
    lines[i] = _join(_fields(lines[i], src.separator)[:-1], src.separator)
    if src.fmt == "space":
        lines[i] = _fields(lines[i], src.separator)[0] + b"\n"  # a user without items
    path.write_bytes(b"".join(lines))
    return Outcome(error=rf"line {i + 1}\b")


def wrong_dtype(src: Source, path: Path) -> Outcome:
    if src.number_field is None:
        pytest.skip("no typed field in this file")
    bad = "abc\x1b[31m"  # with an ESC byte: it must reach the terminal escaped
    if src.fmt == "parquet":
        df = pl.read_parquet(path)
        col = df[src.number_field].cast(pl.Utf8)
        df.with_columns(col.scatter(5, bad)).write_parquet(path)
        return Outcome(error=r"row 6\b.*abc\\x1b")
    if src.fmt == "jsonl":
        records = _records(path)
        records[7][src.number_field] = bad
        _write_records(path, records)
        return Outcome(error=r"line 8\b.*abc\\x1b")
    lines = _lines(path)
    i = _middle(lines, src.fmt)
    fields = _fields(lines[i], src.separator)
    fields[src.number_field] = bad.encode()
    lines[i] = _join(fields, src.separator)
    path.write_bytes(b"".join(lines))
    return Outcome(error=rf"line {i + 1}\b.*abc\\x1b")


def cut_last_line(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return Outcome(error="not a readable Parquet|damaged|could not be read")
    lines = _lines(path)
    last = lines[-1].rstrip(b"\r\n")
    cut = last[: max(1, len(last) // 2)]
    if src.fmt == "space":
        cut = last[:-1]  # one digit off the last id: still an id, a different item
    path.write_bytes(b"".join(lines[:-1]) + cut)
    return Outcome(note=rf"line {len(lines)} .*(cut off|no newline)")


def garbage(src: Source, path: Path) -> Outcome:
    rng = np.random.default_rng(1)
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return Outcome(error=".")


def garbage_header(src: Source, path: Path) -> Outcome:
    lines = _lines(path)
    lines[0] = b"\x1b]0;pwned\x07\x1b[2J\x00\x01,\x9b31m\n"
    path.write_bytes(b"".join(lines))
    return Outcome(error=".")


def long_line(src: Source, path: Path) -> Outcome:
    if not src.long_line:
        pytest.skip("the 50 MB line runs once per reader family")
    assert src.number_field is not None
    lines = _lines(path)
    i = _middle(lines, src.fmt)
    if src.fmt == "jsonl":
        record = json.loads(lines[i])
        record[src.id_field] = "x" * LONG
        record[src.number_field] = "y" * 100  # and a bad value, so the line must be named
        lines.insert(i, json.dumps(record).encode() + b"\n")
        path.write_bytes(b"".join(lines))
        return Outcome(error=rf"line {i + 1}\b")
    fields = _fields(lines[i], src.separator)
    fields[src.id_field] = b"x" * LONG
    fields[src.number_field] = b"y" * 100
    lines.insert(i, _join(fields, src.separator))
    path.write_bytes(b"".join(lines))
    return Outcome(error=rf"line {i + 1}\b")


def non_utf8(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        pytest.skip("Parquet strings are UTF-8 by construction")
    lines = _lines(path)
    i = _middle(lines, src.fmt)
    if src.fmt == "jsonl":
        lines[i] = lines[i].replace(b'"' + src.id_field.encode() + b'": "',
                                    b'"' + src.id_field.encode() + b'": "\xff\xfe', 1)
    else:
        fields = _fields(lines[i], src.separator)
        fields[src.id_field] = fields[src.id_field] + b"\xff\xfe"
        lines[i] = _join(fields, src.separator)
    path.write_bytes(b"".join(lines))
    # ml-1m's .dat files fall back to latin-1 (the old releases' encoding): the id is then bad.
    return Outcome(error=rf"line {i + 1}\b.*(UTF-8|is not a valid)")


def duplicates(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        df = pl.read_parquet(path)
        pl.concat([df, df.head(10)]).write_parquet(path)
        return Outcome(note="repeated")
    lines = _lines(path)
    head = 1 if src.fmt == "csv" else 0
    body = lines[head:]
    out = lines[:head] + [line for k, line in enumerate(body) for _ in range(2 if k % 5 == 0
                                                                              else 1)]
    path.write_bytes(b"".join(out))
    return Outcome(note="repeated|duplicate")


def empty_id(src: Source, path: Path) -> Outcome:
    if src.fmt == "parquet":
        df = pl.read_parquet(path)
        df.with_columns(df[src.id_field].cast(pl.Utf8).scatter(5, None)).write_parquet(path)
        return Outcome(note="without user|lacking")
    if src.fmt == "jsonl":
        records = _records(path)
        records[7][src.id_field] = ""
        _write_records(path, records)
        return Outcome(note="lacking")
    lines = _lines(path)
    i = _middle(lines, src.fmt)
    fields = _fields(lines[i], src.separator)
    fields[src.id_field] = b""
    lines[i] = _join(fields, src.separator)
    path.write_bytes(b"".join(lines))
    return Outcome(error=rf"line {i + 1}\b")


DEFECTS = [missing, empty, header_only, wrong_column, missing_column, wrong_dtype,
           cut_last_line, garbage, garbage_header, long_line, non_utf8, duplicates, empty_id]


# --- the check ----------------------------------------------------------------------------------

def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _prepare(src: Source, raw: Path, home: Path):
    handlers = list(logging.getLogger().handlers)
    try:
        return runner.invoke(app, ["prepare", src.name, "--raw", str(raw), "--size", "tiny",
                                   "--home", str(home), *src.args])
    finally:  # the CLI adds a stderr log handler per call, bound to this call's stream
        for handler in logging.getLogger().handlers:
            if handler not in handlers:
                logging.getLogger().removeHandler(handler)


def _check(src: Source, defect, tmp_path: Path) -> None:
    raw, home = tmp_path / "raw", tmp_path / "home"
    src.write(raw)
    outcome = defect(src, raw / src.target)
    result = _prepare(src, raw, home)
    err = result.stderr
    assert "Traceback" not in result.output + err, result.output + err
    assert not CONTROL.search(err), repr(err[:300])
    if outcome.error is not None:
        assert result.exit_code == 2, (result.exit_code, result.output[-2000:], err[-2000:])
        assert err.endswith("\n") and err.count("\n") == 1, repr(err[:2000])
        assert len(err) < 1500, err[:2000]
        assert re.search(outcome.error, err), err
        assert _files(home) == [], _files(home)
        return
    assert result.exit_code == 0, (result.output[-2000:], err[-2000:])
    files = _files(home)
    manifests = [p for p in files if p.name == "manifest.json"]
    assert len(manifests) == 1, files
    dataset = manifests[0].parent
    assert all(p.is_relative_to(dataset) and not p.name.startswith(".") for p in files), files
    notes = json.loads(manifests[0].read_text())["notes"]
    assert any(re.search(outcome.note, n) for n in notes), notes
    assert all(len(n) < 1000 and not CONTROL.search(n) for n in notes), notes


def _params(sources: list[Source], slow: Callable[[Source], bool]) -> list:
    return [pytest.param(s, id=str(s), marks=[pytest.mark.slow] if slow(s) else [])
            for s in sources]


@pytest.mark.parametrize("defect", [d for d in DEFECTS if d is not long_line],
                         ids=lambda d: d.__name__)
@pytest.mark.parametrize("src", _params(SOURCES, lambda s: s.slow))
def test_hostile_raw_file(src, defect, tmp_path):
    _check(src, defect, tmp_path)


# One 50 MB line by default (the csv reader most sources share); the other families are slow.
@pytest.mark.parametrize("src", _params([s for s in SOURCES if s.long_line],
                                        lambda s: s.name != "csv"))
def test_50mb_line(src, tmp_path):
    _check(src, long_line, tmp_path)


def test_corpus_leaves_no_temp_files(tmp_path):
    """A failing prepare after a successful one leaves the earlier dataset as it was."""
    src = SOURCES[0]
    raw, home = tmp_path / "raw", tmp_path / "home"
    src.write(raw)
    assert _prepare(src, raw, home).exit_code == 0
    before = {p: p.read_bytes() for p in _files(home)}
    garbage(src, raw / src.target)
    result = runner.invoke(app, ["prepare", src.name, "--raw", str(raw), "--size", "tiny",
                                 "--home", str(home), "--force"])
    assert result.exit_code == 2
    assert {p: p.read_bytes() for p in _files(home)} == before
    assert not any(name.startswith(".") for _, _, names in os.walk(home) for name in names)


# --- prepared data: verified before a run trusts it (classes 6 and 18) ------------------------

def _run(home: Path, *extra: str):
    handlers = list(logging.getLogger().handlers)
    try:
        return runner.invoke(app, ["run", "-g", "baseline", "-m", "Random", "-d", "synthetic",
                                   "--size", "tiny", "--home", str(home),
                                   "--set", "latency_samples=5", *extra])
    finally:
        for handler in logging.getLogger().handlers:
            if handler not in handlers:
                logging.getLogger().removeHandler(handler)


@pytest.fixture(scope="module")
def prepared_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("prepared") / "home"
    result = runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home", str(home)])
    assert result.exit_code == 0, result.output
    return home


def _copy_home(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _one_line_error(result, *needles: str) -> str:
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output[-1500:], err[-1500:])
    assert "Traceback" not in result.output + err
    assert err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_edited_split_is_refused_with_the_rebuild_command(prepared_home, tmp_path):
    home = _copy_home(prepared_home, tmp_path / "home")
    split = next(home.rglob("seq/test.parquet"))
    frame = pl.read_parquet(split)
    # The same schema and row count, one target changed: a silent edit the old code recorded.
    frame.with_columns(pl.col("target").shift(1, fill_value=0)).write_parquet(split)
    err = _one_line_error(_run(home, "--task", "seq"), "changed after it was prepared",
                          "recbench prepare synthetic")
    assert "--size tiny" in err and "--force" in err
    results = home / "results"
    assert not results.exists() or not list(results.rglob("*.json"))  # nothing was recorded


def test_unedited_dataset_runs(prepared_home, tmp_path):
    home = _copy_home(prepared_home, tmp_path / "home")
    result = _run(home, "--task", "seq")
    assert result.exit_code == 0, result.output[-2000:]


@pytest.mark.parametrize("target", ["seq/test.parquet", "items.parquet", "manifest.json"])
def test_damaged_prepared_file_is_one_line(prepared_home, tmp_path, target):
    home = _copy_home(prepared_home, tmp_path / "home")
    path = next(p for p in home.rglob("*") if p.as_posix().endswith(target))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _one_line_error(_run(home, "--task", "seq"), "damaged", "rebuild with `recbench prepare "
                    "synthetic")


def test_damaged_split_without_manifest_check(prepared_home, tmp_path):
    """read_split without a manifest (any other caller) still says "damaged", not polars."""
    from recbench.core.errors import DataError
    from recbench.data.prepare import read_split

    home = _copy_home(prepared_home, tmp_path / "home")
    path = next(home.rglob("ctr/train.parquet"))
    path.write_bytes(b"PAR1" + os.urandom(64))
    with pytest.raises(DataError, match=r"damaged .*rebuild with `recbench prepare synthetic"):
        read_split(home, "synthetic", "tiny", "ctr/train")


@pytest.mark.parametrize("value", ["!!python/object/apply:os.system [ls]", "[1, 2",
                                   "\x1b[31mred", "!tag x"])
def test_set_value_that_is_not_plain_yaml(prepared_home, value):
    err = _one_line_error(_run(prepared_home, "--set", f"epochs={value}"), "--set")
    assert not CONTROL.search(err), repr(err)


def test_binary_config_file(prepared_home, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    _one_line_error(_run(prepared_home, "--config", str(config)), "--config", "UTF-8")
    config.write_bytes(b"epochs: !!python/name:os.system\n")
    _one_line_error(_run(prepared_home, "--config", str(config)), "not valid YAML")


def test_info_on_a_damaged_manifest(prepared_home, tmp_path):
    home = _copy_home(prepared_home, tmp_path / "home")
    manifest = next(home.rglob("manifest.json"))
    manifest.write_bytes(manifest.read_bytes()[:100])
    result = runner.invoke(app, ["info", "synthetic", "--home", str(home)])
    _one_line_error(result, "damaged", "rebuild with `recbench prepare synthetic")
