"""`recbench prepare` against an independent implementation of the same protocol.

`benchmarks/pandas_protocol.py` is the straightforward pandas version that prepare_bench times
recbench against. Both apply the same rules with the same seeded user permutations, so on the
benchmark's raw layouts (MIND tsv, Amazon 2018 JSON lines, written by prepare_bench's writers)
the items and every CTR and SeqRec split must be equal, row for row. (The 100 sampled
negatives are drawn differently and are not compared.)"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SPLITS = ("ctr/train", "ctr/valid", "ctr/test", "seq/train", "seq/valid", "seq/test")


@pytest.fixture(scope="module")
def bench_modules():
    pytest.importorskip("pandas", reason="the baseline is pandas (a dev dependency)")
    sys.path.insert(0, str(BENCH))
    try:
        import pandas_protocol
        import prepare_bench
    finally:
        sys.path.remove(str(BENCH))
    return prepare_bench, pandas_protocol


@pytest.mark.filterwarnings("ignore:The 'convert_dates' keyword")  # in the pandas baseline
@pytest.mark.parametrize("layout", ["mind", "amazon"])
def test_same_splits_as_the_pandas_protocol(tmp_path, bench_modules, layout):
    from recbench.data.prepare import prepare

    prepare_bench, pandas_protocol = bench_modules
    raw = tmp_path / "raw"
    raw.mkdir()
    prepare_bench.WRITERS[layout](raw, 30_000, 0)
    ours = prepare(prepare_bench.DATASET_NAME[layout], raw=raw, size="tiny", seed=4,
                   home=tmp_path / "home", show_progress=False)
    theirs = tmp_path / "pandas"
    theirs.mkdir()
    counts = pandas_protocol.prepare_pandas(layout, raw, theirs, seed=4, size="tiny")

    items = pl.read_parquet(ours.path / "items.parquet")
    reference = pl.read_parquet(theirs / "items.parquet").select(items.columns)
    assert items.equals(reference.cast(items.schema))
    for rel in SPLITS:
        got = pl.read_parquet(ours.path / f"{rel}.parquet")
        expected = pl.read_parquet(theirs / f"{rel}.parquet")
        assert got.height == counts[rel]["rows"] > 0
        assert got.equals(expected.cast(got.schema)), rel
