"""Finding and reading raw files with errors that name the file, line and expectation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.core.hashing import sha256_file

log = logging.getLogger(__name__)

# sha256 of files read whole by this module, keyed by (path, size, mtime): the manifest's hash
# of a multi-GB raw file then costs no second pass over it.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def find_file(raw_dir: Path, *names: str, required: bool = True) -> Path | None:
    """The first of `names` (file names or glob patterns) in `raw_dir` or one folder below it.

    Official archives often unpack into a sub-folder (`ml-1m/ratings.dat`), so both levels count.
    """
    for name in names:
        for pattern in (name, f"*/{name}"):
            hits = sorted(p for p in raw_dir.glob(pattern) if p.is_file())
            if hits:
                return hits[0]
    if required:
        raise MissingRawFilesError(
            f"{raw_dir}: expected a file named {' or '.join(names)} (in this folder or one below)")
    return None


def last_line_state(path: Path) -> tuple[bool, int]:
    """(ends with a newline, number of lines) of a text file, read in binary chunks.

    The file's sha256 is computed on the way (see `file_sha256`).
    """
    lines, last = 0, b"\n"
    for block in _hashed_blocks(path, 1 << 22):
        lines += block.count(b"\n")
        last = block[-1:]
    ends_nl = last == b"\n"
    return ends_nl, lines + (0 if ends_nl else 1)


def file_sha256(path: Path) -> str:
    """The sha256 of a file; free when this module has just read the whole file."""
    key = _digest_key(path)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = sha256_file(path)
    return digest


def _digest_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def _hashed_blocks(path: Path, size: int, whole_lines: bool = False) -> Iterator[bytes]:
    """The bytes of `path` in blocks of about `size`; its sha256 is recorded once all were read.

    With `whole_lines`, a block ends after its last newline (or at the end of the file): the
    partial line after it is read again as the start of the next block (and hashed once). The
    hash runs in a worker thread (hashlib releases the GIL), beside the caller's parsing.
    """
    key = _digest_key(path)
    digest = hashlib.sha256()
    with ThreadPoolExecutor(1) as pool, open(path, "rb") as fh:
        pending: Future | None = None
        hashed = 0  # the file's first `hashed` bytes went to the hash
        while True:
            start = fh.tell()
            block = fh.read(size)
            if not block:
                break
            if pending is not None:
                pending.result()
            pending = pool.submit(digest.update, memoryview(block)[hashed - start:])
            hashed = start + len(block)
            if whole_lines and len(block) == size:
                cut = block.rfind(b"\n") + 1
                if 0 < cut < len(block):
                    fh.seek(start + cut)
                    block = block[:cut]
            yield block
        if pending is not None:
            pending.result()
    if _digest_key(path) == key:  # unchanged while read
        _DIGESTS[key] = digest.hexdigest()


def line_blocks(path: Path, size: int = 1 << 24) -> Iterator[bytes]:
    """A text file as blocks of whole lines (about `size` bytes each), read once, hashed on the way.

    Parsing block by block keeps a multi-GB file out of memory: reading it whole (or memory-
    mapping it, as polars does) would count the entire file in the process's resident memory.
    A line longer than `size` arrives in pieces: the parser then fails and the caller falls back.
    """
    return _hashed_blocks(path, size, whole_lines=True)


def read_ndjson_blocks(path: Path, schema: dict[str, pl.DataType],
                       block_size: int = 1 << 24) -> pl.DataFrame:
    """The `schema` fields of a plain JSON-lines file, parsed by polars block by block.

    Absent fields are null; a value polars cannot read as its type raises a polars error (the
    caller decides how to report it). See `line_blocks` for why blocks.
    """
    parts = [pl.read_ndjson(block, schema=schema) for block in line_blocks(path, block_size)]
    if not parts:
        return pl.DataFrame(schema=schema)
    return pl.concat(parts, rechunk=False)


def read_csv_checked(
    path: Path,
    columns: dict[str, pl.DataType],
    *,
    separator: str = ",",
    has_header: bool = True,
    new_columns: Sequence[str] | None = None,
    notes: list[str] | None = None,
    quote_char: str | None = '"',
) -> pl.DataFrame:
    """Read the `columns` of a delimited file, with clear errors for missing columns and bad lines.

    A final line without a newline that does not parse (a file cut mid-line) is dropped and
    reported in `notes`; any other malformed line is an error naming its line number.

    Args:
        path: the file.
        columns: wanted column -> dtype (other columns are ignored).
        separator: field separator.
        has_header: whether the first line names the columns.
        new_columns: names for a header-less file's columns, in order.
        notes: where to report dropped lines.
        quote_char: CSV quote character, None for none.
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    header = _header(path, separator, has_header, new_columns, quote_char)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {header}")
    ends_nl, n_lines = last_line_state(path)
    source: Path | io.BytesIO = path
    if not ends_nl:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        last = data[cut:].decode("utf-8", "replace")
        if not _line_parses(last, header, columns, separator, quote_char):
            (notes if notes is not None else []).append(
                f"{path.name}: line {n_lines} is cut off (no newline, {last!r}); dropped")
            log.warning("%s: dropped truncated last line %d", path, n_lines)
            source = io.BytesIO(data[:cut])
    try:
        df = pl.read_csv(
            source, separator=separator, has_header=has_header,
            new_columns=list(new_columns) if new_columns else None,
            columns=list(columns) if has_header else None,
            infer_schema=False, quote_char=quote_char,
        ).select(list(columns))
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        bad = _first_bad_line(path, header, columns, separator, quote_char, has_header)
        where = f"line {bad[0]}: {bad[1]}" if bad else str(exc).splitlines()[0][:120]
        raise DataError(f"{path}: malformed data at {where} (expected columns "
                        f"{_describe(columns)})") from None
    # Polars pads a short line with nulls: re-parse only the lines that came out with a null.
    # (A line with more fields than the header is an error of read_csv, so a line whose last
    # field is there is complete: an empty field before it is just empty.)
    short = pl.any_horizontal([pl.col(c).is_null() for c in columns])
    if header and header[-1] in columns:
        short = short & pl.col(header[-1]).is_null()
    null_rows = df.select(short.arg_true()).to_series().to_numpy()
    if len(null_rows):
        bad = _short_line(source, null_rows + int(has_header), len(header), separator, quote_char)
        if bad:
            raise DataError(f"{path}: malformed data at line {bad[0]}: {bad[1]} (expected "
                            f"columns {_describe(columns)})")
    # Everything was read as text; a value that does not cast is reported with its line number.
    cast = df.select([pl.col(c).str.strip_chars().cast(t, strict=False)
                      for c, t in columns.items()])
    bad = (cast.select(pl.any_horizontal([pl.col(c).is_null() & df[c].is_not_null()
                                           for c in columns]).arg_true()).to_series())
    if len(bad):
        row = int(bad[0])
        col = next(c for c in columns if cast[c][row] is None and df[c][row] is not None)
        raise DataError(f"{path}: line {row + 1 + int(has_header)}, column {col!r}: "
                        f"{df[col][row]!r} is not a valid {columns[col]}")
    return cast


def _short_line(source, line_indices, n_fields, separator, quote_char) -> tuple[int, str] | None:
    """The first of the given 0-based lines whose field count is wrong, as (line number, why)."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    raw = pl.read_csv(source, separator="\x1f", has_header=False, quote_char=None,
                      infer_schema=False, new_columns=["line"])["line"]
    for index in line_indices[:1000]:
        if index >= len(raw):
            break
        text = raw[int(index)] or ""
        if not text.strip():
            continue  # a blank line: harmless, its null row is dropped by the source
        fields = next(csv.reader([text], delimiter=separator, quotechar=quote_char or "\x00"))
        if len(fields) != n_fields:
            return int(index) + 1, f"{len(fields)} fields, expected {n_fields}"
    return None


def _describe(columns: dict[str, pl.DataType]) -> str:
    return ", ".join(f"{c}:{t}" for c, t in columns.items())


def _header(path, separator, has_header, new_columns, quote_char) -> list[str]:
    if not has_header:
        return list(new_columns or [])
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        raise DataError(f"{path}: empty file (expected a header line)")
    row = next(csv.reader([first], delimiter=separator, quotechar=quote_char or "\x00"))
    return [c.strip() for c in row]


def _line_parses(line: str, header, columns, separator, quote_char) -> bool:
    if not line.strip():
        return True
    try:
        fields = next(csv.reader([line], delimiter=separator, quotechar=quote_char or "\x00"))
    except (csv.Error, StopIteration):
        return False
    if len(fields) != len(header):
        return False
    return all(_value_ok(fields[header.index(c)], t) for c, t in columns.items())


def _value_ok(value: str, dtype: pl.DataType) -> bool:
    if dtype.is_integer():
        return value.strip().lstrip("-").isdigit()
    if dtype.is_float():
        try:
            float(value)
        except ValueError:
            return False
    return True


def _first_bad_line(path, header, columns, separator, quote_char, has_header
                    ) -> tuple[int, str] | None:
    """(line number, what is wrong) of the first bad line; a slow pass run only after a failure."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=separator, quotechar=quote_char or "\x00")
        for number, fields in enumerate(reader, start=1):
            if (has_header and number == 1) or not fields:
                continue
            if len(fields) != len(header):
                return reader.line_num, f"{len(fields)} fields, expected {len(header)}"
            for c, t in columns.items():
                if not _value_ok(fields[header.index(c)], t):
                    return reader.line_num, f"column {c!r}: {fields[header.index(c)]!r} is not {t}"
    return None


def iter_json_lines(path: Path, *, loose: bool = False) -> Iterable[tuple[int, dict]]:
    """(line number, record) for each non-empty line of a JSON-lines file.

    `loose=True` accepts the Python-literal lines of the 2014 Amazon metadata dumps, parsed with
    `ast.literal_eval` (never `eval`).
    """
    import ast

    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError:
                if loose:
                    try:
                        yield number, ast.literal_eval(line)
                        continue
                    except (ValueError, SyntaxError):
                        pass
                raise DataError(f"{path}: line {number} is not valid JSON "
                                f"({line[:60].strip()!r}...)") from None


def read_json_lines(path: Path, fields: dict[str, pl.DataType], *, loose: bool = False,
                    notes: list[str] | None = None) -> pl.DataFrame:
    """Read `fields` from a JSON-lines file (fast path: polars; fallback: line by line).

    A missing field in every record is an error naming the field; records lacking some of the
    fields are dropped and counted in `notes`.
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    try:
        df = pl.read_ndjson(path, infer_schema_length=1000, ignore_errors=False)
        present = [f for f in fields if f in df.columns]
        if len(present) == len(fields):
            df = df.select([pl.col(f).cast(t, strict=False) for f, t in fields.items()])
            return _drop_incomplete(df, path, notes)
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError):
        pass  # not strict JSON lines (e.g. Python literals): parse line by line below
    cols: dict[str, list] = {f: [] for f in fields}
    seen = set()
    for _, record in iter_json_lines(path, loose=loose):
        seen.update(record)
        for f in fields:
            cols[f].append(record.get(f))
    missing = [f for f in fields if f not in seen]
    if missing:
        raise DataError(f"{path}: no record has field(s) {missing}; found {sorted(seen)[:20]}")
    df = pl.DataFrame({f: pl.Series(f, v, dtype=pl.Utf8 if t == pl.Utf8 else None, strict=False)
                       for (f, v), t in zip(cols.items(), fields.values(), strict=True)})
    df = df.select([pl.col(f).cast(t, strict=False) for f, t in fields.items()])
    return _drop_incomplete(df, path, notes)


def _drop_incomplete(df: pl.DataFrame, path: Path, notes: list[str] | None) -> pl.DataFrame:
    before = df.height
    df = df.drop_nulls()
    if df.height < before and notes is not None:
        notes.append(f"{path.name}: dropped {before - df.height} records lacking a needed field")
    if df.height == 0:
        raise DataError(f"{path}: no usable record")
    return df
