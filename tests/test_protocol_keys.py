"""The fast paths under `recbench prepare`: integer codes for raw keys, repeated-row detection,
block-wise JSON-lines reading with the file hash computed on the way.

Each fast path is checked against a brute-force Python reference, and again with the key hash
replaced by one that collides, so that the exact fallbacks are exercised too."""

from __future__ import annotations

import functools
import hashlib
import json

import numpy as np
import polars as pl
import pytest

from recbench.core.errors import DataError
from recbench.data import keys, rawfiles
from recbench.data.keys import encode_keys, lookup_rows, repeated_rows
from recbench.data.sources import amazon


def _constant_hash(values: pl.Series, salt: int = 0) -> pl.Series:
    return pl.Series(np.zeros(len(values), dtype=np.uint64))


def _length_hash(values: pl.Series, salt: int = 0) -> pl.Series:
    """Collides whenever two values have the same length (not for every pair)."""
    size = values.list.len() if values.dtype.is_nested() else values.str.len_bytes()
    return size.fill_null(99).cast(pl.UInt64) + salt


HASHES = {"real": None, "constant": _constant_hash, "by_length": _length_hash}


@pytest.fixture(params=list(HASHES))
def key_hash(request, monkeypatch):
    if HASHES[request.param] is not None:
        monkeypatch.setattr(keys, "_key_hash", HASHES[request.param])
    return request.param


def _random_keys(rng, n, pool, runs=False, nulls=False):
    keys = [pool[i] for i in rng.integers(0, len(pool), n)]
    if runs:  # grouped like a dump sorted by item
        keys = [k for k in keys[: n // 8] for _ in range(8)][:n]
    if nulls:
        keys = [None if rng.random() < 0.05 else k for k in keys]
    return keys


POOL = ["b", "a", "ab", "B00X", "zz", "é", "a b", "", "N17", "N170", "U9", "10", "9"]


@pytest.mark.parametrize("runs", [False, True])
def test_encode_keys_matches_sorted_distinct_values(key_hash, runs):
    rng = np.random.default_rng(1)
    cols = [_random_keys(rng, 400, POOL, runs=runs, nulls=True),
            _random_keys(rng, 50, POOL + ["only-here"], runs=runs)]
    codes, values = encode_keys([pl.Series(c, dtype=pl.Utf8) for c in cols])
    # Reference: the distinct values sorted as polars sorts strings (bytes), null first.
    expected = sorted({v for c in cols for v in c}, key=lambda v: (v is not None, v or ""))
    assert values.to_list() == expected
    for col, code in zip(cols, codes, strict=True):
        assert code.dtype == np.uint32
        assert [expected[c] for c in code] == col


def test_encode_keys_unsorted_groups_lists(key_hash):
    lists = [["N1", "N2"], [], None, ["N2", "N1"], ["N1", "N2"], [], ["N1"], None]
    (codes,), values = encode_keys([pl.Series(lists, dtype=pl.List(pl.Utf8))], sort=False)
    assert len(values) == 5  # [N1,N2], [], None, [N2,N1], [N1]
    assert [values[int(c)] if values[int(c)] is None else values[int(c)].to_list()
            for c in codes] == lists


def test_lookup_rows_matches_a_dict(key_hash):
    rng = np.random.default_rng(2)
    # Distinct lengths: with the length hash the dictionary is collision-free, the keys are not.
    dictionary = ["a", "bb", "N17", "B00X"]
    keys = (_random_keys(rng, 300, POOL, nulls=True)
            + _random_keys(rng, 300, POOL, runs=True))
    rows = lookup_rows(pl.Series(keys, dtype=pl.Utf8), pl.Series(dictionary))
    index = {k: i for i, k in enumerate(dictionary)}
    assert rows.to_list() == [index.get(k) for k in keys]


def _repeated_reference(rows, subset, order_by):
    """Row numbers whose subset values occurred before, in (order_by, row) order."""
    order = sorted(range(len(rows)), key=lambda r: (rows[r][order_by], r) if order_by else r)
    seen, out = set(), []
    for r in order:
        key = tuple(rows[r][c] for c in subset)
        if key in seen:
            out.append(r)
        seen.add(key)
    return sorted(out)


@pytest.mark.parametrize("order_by", [None, "ts"])
def test_repeated_rows_matches_reference(key_hash, order_by):
    rng = np.random.default_rng(3)
    n = 500
    df = pl.DataFrame({
        "user_key": [f"u{i}" for i in rng.integers(0, 20, n)],
        "item_key": [f"i{i}" for i in rng.integers(0, 15, n)],
        "ts": rng.integers(0, 5, n),  # many ties: file order decides
    })
    got = repeated_rows(df, ["user_key", "item_key"], order_by=order_by)
    expected = _repeated_reference(df.rows(named=True), ["user_key", "item_key"], order_by)
    assert expected and got.arg_true().to_list() == expected


def test_repeated_rows_none_when_all_distinct(key_hash):
    df = pl.DataFrame({"user_key": ["a", "a", "b"], "item_key": ["x", "y", "x"]})
    assert repeated_rows(df, ["user_key", "item_key"]) is None


def test_prepare_output_does_not_depend_on_the_hash(tmp_path, monkeypatch):
    """The fallbacks give the very same Parquet bytes as the hash paths."""
    from recbench.data.prepare import prepare

    real = prepare("synthetic", size="tiny", seed=5, home=tmp_path / "a", show_progress=False)
    monkeypatch.setattr(keys, "_key_hash", _length_hash)
    other = prepare("synthetic", size="tiny", seed=5, home=tmp_path / "b", show_progress=False)
    assert real.manifest["content_hash"] == other.manifest["content_hash"]


# --- reading in blocks ----------------------------------------------------------------------

def _jsonl(path, n, rng, newline_at_end=True):
    lines = [json.dumps({"reviewerID": f"A{i % 17}", "asin": f"B{i % 5}",
                         "overall": float(rng.integers(1, 6)), "unixReviewTime": 1000 + i,
                         "reviewText": "x" * int(rng.integers(0, 120))})
             for i in range(n)]
    text = "\n".join(lines) + ("\n" if newline_at_end else "")
    path.write_text(text)
    return text


@pytest.mark.parametrize("newline_at_end", [True, False])
def test_line_blocks_end_on_newlines_and_hash_the_file(tmp_path, newline_at_end):
    path = tmp_path / "r.json"
    text = _jsonl(path, 60, np.random.default_rng(4), newline_at_end)
    blocks = list(rawfiles.line_blocks(path, size=300))
    assert len(blocks) > 5 and b"".join(blocks) == text.encode()
    assert all(b.endswith(b"\n") for b in blocks[:-1])
    assert rawfiles.file_sha256(path) == hashlib.sha256(text.encode()).hexdigest()
    # A changed file is hashed again, not served from the record of the old one.
    path.write_text(text + "{}\n")
    assert rawfiles.file_sha256(path) == hashlib.sha256((text + "{}\n").encode()).hexdigest()


def test_read_ndjson_blocks_equals_whole_file(tmp_path):
    path = tmp_path / "r.json"
    _jsonl(path, 200, np.random.default_rng(5))
    schema = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "overall": pl.Float64,
              "unixReviewTime": pl.Int64, "missing": pl.Utf8}
    got = rawfiles.read_ndjson_blocks(path, schema, block_size=1000)
    assert got.equals(pl.read_ndjson(path, schema=schema))
    assert got["missing"].null_count() == got.height


def test_json_fields_fall_back_when_values_are_not_typed(tmp_path):
    """`"overall": "5"` or a float time fail the typed parse; the text path reads them."""
    path = tmp_path / "Beauty_5.json"
    rows = [{"reviewerID": "A1", "asin": "B1", "overall": "5", "unixReviewTime": 1.3e9},
            {"reviewerID": "A2", "asin": "B2", "overall": 2.0, "unixReviewTime": 1300000001}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    fields = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "overall": pl.Float64,
              "unixReviewTime": pl.Int64}
    df = amazon.read_json_fields(path, fields, required=list(fields))
    assert df.rows() == [("A1", "B1", 5.0, 1_300_000_000), ("A2", "B2", 2.0, 1_300_000_001)]


def test_json_fields_with_lines_longer_than_a_block(tmp_path, monkeypatch):
    """A line split across blocks fails the block parse; the whole-file path reads it."""
    monkeypatch.setattr(amazon, "read_ndjson_blocks",
                        functools.partial(rawfiles.read_ndjson_blocks, block_size=64))
    path = tmp_path / "r.json"
    _jsonl(path, 30, np.random.default_rng(6))
    fields = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "overall": pl.Float64,
              "unixReviewTime": pl.Int64}
    df = amazon.read_json_fields(path, fields, required=list(fields))
    assert df.equals(pl.read_ndjson(path, schema=fields))


def test_json_fields_bad_value_still_names_the_line(tmp_path):
    path = tmp_path / "Beauty_5.json"
    rows = [{"reviewerID": "A1", "asin": "B1", "overall": 4.0, "unixReviewTime": 1}] * 3
    rows.append({"reviewerID": "A1", "asin": "B1", "overall": "great", "unixReviewTime": 1})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    fields = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "overall": pl.Float64,
              "unixReviewTime": pl.Int64}
    with pytest.raises(DataError, match=r"line 4, field 'overall': 'great' is not a valid"):
        amazon.read_json_fields(path, fields, required=list(fields))


# --- MIND text fast paths -------------------------------------------------------------------

def test_split_on_whitespace_equals_the_regex():
    from recbench.data.sources.mind import _split_on_whitespace

    spaced = pl.Series(["N1 N2 N3", "N1", None, "", "N1  N2", " N1 N2 ", "   "])
    odd = pl.Series(["N1\tN2", "N1 N2\r", "N1\u00a0N2 N3", "N1 N2"])
    for text in (spaced, odd, pl.concat([spaced, odd])):
        assert _split_on_whitespace(text).to_list() == text.str.extract_all(r"\S+").to_list()


def test_shown_items_fast_path_equals_splitn():
    from recbench.data.sources.mind import _shown_items

    behaviors = pl.DataFrame({
        "line": [1, 2, 3], "impression": [10, 11, 12], "user_key": ["U1", "U2", "U1"],
        "ts": [5, 6, 7], "impressions": ["N1-1 N22-0", "Né-0  -1 N3-0", "N4-1"],
    })
    got = _shown_items(behaviors, path=None)
    tokens = behaviors.select("line", pl.col("impressions").str.extract_all(r"\S+")).explode(
        "impressions")
    parts = tokens["impressions"].str.splitn("-", 2).struct.unnest()
    assert got["item_key"].to_list() == parts["field_0"].to_list()
    assert got["label"].to_list() == parts["field_1"].cast(pl.Int8).to_list()
    assert got["line"].to_list() == tokens["line"].to_list()
    bad = behaviors.with_columns(pl.lit("N1-1 N-5-1").alias("impressions"))
    with pytest.raises(DataError, match="'N-5-1' is not NEWSID-1 or NEWSID-0"):
        _shown_items(bad, path="behaviors.tsv")
