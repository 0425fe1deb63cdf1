"""Finding and reading raw files with errors that name the file, line and expectation.

The policy every source follows for damaged raw input (one rule per defect, the same in every
loader; the README's Data section says it briefly):

Rejected, with one line naming the file, line, column or field, what was expected and the value
(quoted by `shown`: escaped like `repr`, cut to 60 characters, so that control bytes or a 50 MB
line never reach the terminal):
- a missing or empty file, a header without data lines, a missing column or field;
- a line with the wrong number of fields, a value that is not of its column's type (a text
  rating, a text timestamp, a non-integer id), bytes that are not UTF-8, a line that is not
  JSON, a Parquet file that cannot be read;
- an empty id (user, item) in a delimited text file: its column is there, so the line is damaged.

Repaired, with a note in the manifest saying what and how many:
- a last line without a newline is kept when it parses as a complete record and dropped when it
  does not (a file cut mid-line); where every prefix of a record is itself valid (P5's
  `user item item ...`: a cut id is still an id) it is dropped;
- a repeated record keeps its first occurrence: a (user, item) interaction (earliest; ties in
  file order), so that a held-out target never sits in its own history; an item id; a MIND
  impression id; a P5 user line;
- a JSON or Parquet record without a needed field (the dumps omit fields by design) is dropped
  and counted, as are well-formed values outside the protocol (neutral ratings, items without
  text, interactions on unknown items).
"""

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


def shown(value: object, limit: int = 60) -> str:
    """A raw value as error messages and notes quote it: escaped like `repr`, at most `limit`
    characters of it, with the full length when it was cut.

    Raw files are untrusted: a control byte of a garbage header must not reach the terminal,
    and a 50 MB line must not be echoed whole.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value[:limit * 4]).decode("utf-8", "backslashreplace")
        text = value
    else:
        text = str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text):,} characters)"


def _listing(names: Sequence[str], limit: int = 12) -> str:
    """Column names found in a file, quoted, at most `limit` of them."""
    out = ", ".join(shown(n, 40) for n in names[:limit])
    return f"[{out}{', ...' if len(names) > limit else ''}]"


# What polars raises on input it cannot read (a panic is a BaseException, not an Exception).
POLARS_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


def first_invalid_utf8(path: Path) -> tuple[int, bytes] | None:
    """(line number, the line) of the first line of `path` that is not valid UTF-8, if any."""
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number, line
    return None


def check_utf8(path: Path) -> None:
    """Raise a DataError naming the first line of `path` that is not valid UTF-8."""
    bad = first_invalid_utf8(path)
    if bad is not None:
        raise DataError(f"{path}: line {bad[0]} is not valid UTF-8 text ({shown(bad[1])}); "
                        "expected a UTF-8 file")


def read_csv_checked(
    path: Path,
    columns: dict[str, pl.DataType],
    *,
    separator: str = ",",
    has_header: bool = True,
    new_columns: Sequence[str] | None = None,
    notes: list[str] | None = None,
    quote_char: str | None = '"',
    allow_empty: bool = False,
) -> pl.DataFrame:
    """Read the `columns` of a delimited file, with clear errors for missing columns and bad lines.

    A final line without a newline that does not parse (a file cut mid-line) is dropped and
    reported in `notes`; any other malformed line is an error naming its line number (see the
    module docstring for the policy).

    Args:
        path: the file.
        columns: wanted column -> dtype (other columns are ignored).
        separator: field separator.
        has_header: whether the first line names the columns.
        new_columns: names for a header-less file's columns, in order.
        notes: where to report dropped lines.
        quote_char: CSV quote character, None for none.
        allow_empty: accept a file without data lines (otherwise an error).
    """
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (expected "
                        f"{'a header line and ' if has_header else ''}data lines)")
    header = _header(path, separator, has_header, new_columns, quote_char)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {_listing(header)}")
    ends_nl, n_lines = last_line_state(path)
    source: Path | io.BytesIO = path
    if not ends_nl:
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        last = data[cut:].decode("utf-8", "replace")
        # A line ending in the separator was cut right after it (its last field is lost).
        whole = not last.rstrip("\r").endswith(separator) and _line_parses(
            last, header, columns, separator, quote_char)
        if cut and not whole:
            (notes if notes is not None else []).append(
                f"{path.name}: line {n_lines} is cut off (no newline, {shown(last)}); dropped")
            log.info("%s: dropped truncated last line %d", path, n_lines)
            source = io.BytesIO(data[:cut])
        elif cut and last.strip() and notes is not None:
            notes.append(f"{path.name}: line {n_lines} has no newline but is a complete row; "
                         "kept (the file may have been cut at a line boundary)")
    # The header's last column is read too: a line short of fields has no value there.
    wanted = list(dict.fromkeys([*columns, header[-1]])) if header else list(columns)
    try:
        full = pl.read_csv(
            source, separator=separator, has_header=has_header,
            new_columns=list(new_columns) if new_columns else None,
            columns=wanted if has_header else None,
            infer_schema=False, quote_char=quote_char,
        )
        df = full.select(list(columns))
    except POLARS_ERRORS as exc:
        check_utf8(path)
        bad = _first_bad_line(path, header, columns, separator, quote_char, has_header)
        where = f"line {bad[0]}: {bad[1]}" if bad else shown(str(exc).splitlines()[0], 120)
        raise DataError(f"{path}: malformed data at {where} (expected columns "
                        f"{_describe(columns)})") from None
    if df.height == 0 and not allow_empty:
        raise DataError(f"{path}: no data lines{' after the header' if has_header else ''} "
                        f"(expected columns {_describe(columns)})")
    # Polars pads a short line with nulls: re-parse only the lines without a last field.
    # (A line with more fields than the header is an error of read_csv, so a line whose last
    # field is there is complete: an empty field before it is just empty.)
    short = pl.col(header[-1]).is_null() if header else pl.lit(False)
    null_rows = full.select(short.arg_true()).to_series().to_numpy()
    del full
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
                        f"{shown(df[col][row])} is not a valid {columns[col]}")
    return cast


def _split(line: str, separator: str, quote_char: str | None) -> list[str] | None:
    """The fields of one line, or None where the csv module cannot read it (a field longer than
    its limit, a stray quote)."""
    try:
        return next(csv.reader([line], delimiter=separator, quotechar=quote_char or "\x00",
                               quoting=csv.QUOTE_MINIMAL if quote_char else csv.QUOTE_NONE,
                               strict=True))
    except (csv.Error, StopIteration):
        return None


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
        fields = _split(text, separator, quote_char)
        if fields is None:
            return int(index) + 1, f"unreadable line {shown(text)}"
        if len(fields) != n_fields:
            return int(index) + 1, f"{len(fields)} fields, expected {n_fields}"
    return None


def _describe(columns: dict[str, pl.DataType]) -> str:
    return ", ".join(f"{c}:{t}" for c, t in columns.items())


def _header(path, separator, has_header, new_columns, quote_char) -> list[str]:
    if not has_header:
        return list(new_columns or [])
    with open(path, "rb") as fh:
        first = fh.readline()
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: line 1 (the header) is not valid UTF-8 text "
                        f"({shown(first)}); expected a UTF-8 file") from None
    if not text.strip():
        raise DataError(f"{path}: empty first line (expected a header line)")
    row = _split(text.rstrip("\r\n"), separator, quote_char)
    if row is None:
        raise DataError(f"{path}: line 1 (the header) is not readable as "
                        f"{separator!r}-separated column names ({shown(text)})")
    names = [c.strip() for c in row]
    twice = next((c for i, c in enumerate(names) if c and c in names[:i]), None)
    if twice is not None:
        raise DataError(f"{path}: the header names the column {shown(twice)} twice")
    return names


def read_header(path: Path, separator: str = ",", quote_char: str | None = '"') -> list[str]:
    """The column names on the first line of a delimited file (errors as `read_csv_checked`)."""
    if not path.is_file():
        raise MissingRawFilesError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (expected a header line and data lines)")
    return _header(path, separator, True, None, quote_char)


def _line_parses(line: str, header, columns, separator, quote_char) -> bool:
    if not line.strip():
        return True
    fields = _split(line, separator, quote_char)
    if fields is None or len(fields) != len(header):
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
        for number, line in enumerate(fh, start=1):
            if (has_header and number == 1) or not line.strip():
                continue
            fields = _split(line.rstrip("\r\n"), separator, quote_char)
            if fields is None:
                return number, f"unreadable line {shown(line)}"
            if len(fields) != len(header):
                return number, f"{len(fields)} fields, expected {len(header)}"
            for c, t in columns.items():
                if not _value_ok(fields[header.index(c)], t):
                    return number, f"column {c!r}: {shown(fields[header.index(c)])} is not {t}"
    return None


def iter_json_lines(path: Path, *, loose: bool = False,
                    notes: list[str] | None = None) -> Iterable[tuple[int, dict]]:
    """(line number, record) for each non-empty line of a JSON-lines file.

    `loose=True` accepts the Python-literal lines of the 2014 Amazon metadata dumps, parsed with
    `ast.literal_eval` (never `eval`). A last line without a newline that does not parse is
    dropped (noted in `notes`); any other bad line, or one that is not UTF-8, is an error.
    """
    import ast

    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}: line {number} is not valid UTF-8 text "
                                f"({shown(raw)}); expected a UTF-8 file") from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
                continue
            except json.JSONDecodeError:
                pass
            if loose:
                try:
                    yield number, ast.literal_eval(line)
                    continue
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    pass
            if not raw.endswith(b"\n") and notes is not None:  # only the last line can
                notes.append(f"{path.name}: line {number} is cut off (no newline, "  # lack one
                             f"{shown(line)}); dropped")
                return
            raise DataError(f"{path}: line {number} is not valid JSON ({shown(line.strip())})")


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
    for _, record in iter_json_lines(path, loose=loose, notes=notes):
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
