"""loo-v1 and temporal-v1 on hand-made logs: each rule checked against a plain-Python reference.

The references below are written from the protocols' definitions (LLMEmb's `filter_common` and
leave-one-out; dh-r's `TemporalSplit`), not from recbench's code: dictionaries and loops over
a few hundred interactions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recbench.core.errors import ConfigError, DataError
from recbench.data import prepare as prep
from recbench.data.protocols import get_protocol, protocol_config
from recbench.data.raw import RawTables

N_NEG = 5  # small catalogues: 5 sampled negatives per row instead of 100


def _raw(rows: list[tuple[str, str, int]], n_items: int | None = None, *,
         timestamps: bool = True) -> RawTables:
    """RawTables from (user, item, ts) positives; every item named, plus unused items."""
    keys = sorted({i for _, i, _ in rows} | {f"z{j:03d}" for j in range(n_items or 0)})
    items = pl.DataFrame({"item_key": keys, "text": [f"title {k}" for k in keys]})
    events = pl.DataFrame(rows, schema=["user_key", "item_key", "ts"], orient="row")
    events = events.with_columns(pl.lit(1, pl.Int8).alias("label"))
    return RawTables(items, events.lazy(), "sampled", timestamps=timestamps)


def _build(name: str, raw: RawTables, size: str = "paper", seed: int = 0, **options):
    protocol = get_protocol(name)
    return protocol.build(raw, size, seed, protocol_config(protocol, {"negatives": N_NEG,
                                                                      **options}))


def _as_keys(out, ids) -> list[str]:
    names = dict(zip(out.items["item_id"], out.items["item_key"], strict=True))
    return [names[i] for i in ids]


# --- loo-v1 -------------------------------------------------------------------------------------

def _loo_log(rng: np.random.Generator, n_users: int = 40, n_items: int = 30
             ) -> list[tuple[str, str, int]]:
    rows = []
    for u in range(n_users):
        length = int(rng.integers(1, 9))
        picks = rng.choice(n_items, size=length, replace=False)
        rows += [(f"u{u:03d}", f"i{int(i):03d}", int(t)) for t, i in
                 zip(rng.permutation(1000)[:length], picks, strict=True)]
    return rows


def _reference_filter(rows, user_k, item_k, iterative, min_len):
    kept = list(rows)
    while True:
        users, items = {}, {}
        for u, i, _ in kept:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        after = [r for r in kept if users[r[0]] >= user_k and items[r[1]] >= item_k]
        if not iterative or len(after) == len(kept):
            kept = after
            break
        kept = after
    length = {}
    for u, _, _ in kept:
        length[u] = length.get(u, 0) + 1
    return [r for r in kept if length[r[0]] >= min_len]


def _reference_sequences(rows) -> dict[str, list[str]]:
    seqs: dict[str, list[tuple[int, int, str]]] = {}
    for pos, (u, i, t) in enumerate(rows):
        seqs.setdefault(u, []).append((t, pos, i))
    return {u: [i for _, _, i in sorted(v)] for u, v in sorted(seqs.items())}


@pytest.mark.parametrize("filter_", ["one-pass", "k-core"])
def test_loo_filter_reindex_and_leave_one_out(filter_):
    rows = _loo_log(np.random.default_rng(3), n_items=60)
    out = _build("loo", _raw(rows, n_items=20), k=3, filter=filter_, max_len=4)
    expected = _reference_sequences(_reference_filter(rows, 3, 3, filter_ == "k-core", 3))
    assert expected  # the fixture keeps some users, and the two filters differ on it
    assert (_reference_filter(rows, 3, 3, True, 3) != _reference_filter(rows, 3, 3, False, 3))

    # ids are dense, in raw-key order, over the kept items only (the unused z* items are gone)
    kept_items = sorted({i for seq in expected.values() for i in seq})
    assert out.items["item_id"].to_list() == list(range(len(kept_items)))
    assert out.items["item_key"].to_list() == kept_items
    users = sorted(expected)
    for split, drop in (("test", 0), ("valid", 1), ("train", 2)):
        df = out.seq[split]
        got = {users[u]: (_as_keys(out, h), _as_keys(out, [t])[0])
               for u, h, t in df.iter_rows()}
        want = {u: (seq[:len(seq) - drop - 1][-4:], seq[len(seq) - drop - 1])
                for u, seq in expected.items() if len(seq) - drop >= 2}
        assert got == want, split
        assert df["user_id"].to_list() == sorted(df["user_id"].to_list())
    assert out.ctr == {}
    assert out.stats["n_users"] == len(expected)


def test_loo_negatives_are_never_in_the_users_sequence():
    rows = _loo_log(np.random.default_rng(2), n_users=60, n_items=40)
    out = _build("loo", _raw(rows), k=2)
    seqs = {u: set(s) for u, s in
            _reference_sequences(_reference_filter(rows, 2, 2, False, 3)).items()}
    users = sorted(seqs)
    n_items = out.items.height
    for split, negs in (("valid", out.extra["seq/valid_negatives"]),
                        ("test", out.seq_test_negatives)):
        rows_ = out.seq[split]
        assert negs["row"].to_list() == list(range(rows_.height))
        assert negs["user_id"].to_list() == rows_["user_id"].to_list()
        for user_id, neg in zip(negs["user_id"], negs["negatives"].to_list(), strict=True):
            assert len(neg) == N_NEG == len(set(neg))
            assert all(0 <= n < n_items for n in neg)
            assert not set(_as_keys(out, neg)) & seqs[users[user_id]]


def test_loo_min_seq_len_and_users_without_a_train_row():
    # u0: 3 items (valid + test only), u1: 4 items, u2: 2 items (dropped by min_seq_len),
    # u3: more items for the negatives
    rows = [("u0", "a", 1), ("u0", "b", 2), ("u0", "c", 3),
            ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4),
            ("u2", "a", 1), ("u2", "d", 2)] + [("u3", k, t) for t, k in enumerate("efgh")]
    out = _build("loo", _raw(rows), k=1, negatives=3)
    assert out.seq["test"]["user_id"].to_list() == [0, 1, 2]  # u0, u1, u3
    assert out.seq["train"].filter(pl.col("user_id") < 2).rows() == [(1, [0], 1)]  # u1: a -> b
    assert any("no train row" in n for n in out.notes)
    with pytest.raises(ConfigError, match="min_seq_len"):
        _build("loo", _raw(rows), min_seq_len=2)


def test_loo_sizes_draw_users_and_say_so():
    rng = np.random.default_rng(3)
    rows = [(f"u{u:04d}", f"i{int(i):03d}", t) for u in range(700)
            for t, i in enumerate(rng.choice(150, size=4, replace=False))]
    tiny = _build("loo", _raw(rows), size="tiny", k=1)
    assert tiny.stats["n_users"] == tiny.seq["test"].height == 600
    assert any("600 of 700 users drawn" in n for n in tiny.notes)
    paper = _build("loo", _raw(rows), size="paper", k=1)
    assert paper.stats["n_users"] == 700


# --- temporal-v1 --------------------------------------------------------------------------------

def _sessions_log(n_sessions: int = 41, seed: int = 4) -> list[tuple[str, str, int]]:
    """Sessions with distinct end times; later sessions use some items never seen before."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        length = int(rng.integers(1, 6))
        pool = 20 + s  # the catalogue grows over time: late sessions bring unseen items
        items = rng.choice(pool, size=length, replace=False)
        end = 10_000 + 100 * int(rng.permutation(n_sessions)[0]) + s  # distinct, shuffled
        rows += [(f"s{s:03d}", f"i{int(i):03d}", end - (length - j)) for j, i in
                 enumerate(items)]
        rows[-1] = (rows[-1][0], rows[-1][1], end)
    return rows


def _reference_temporal(rows, test_fraction=0.2):
    seqs = _reference_sequences(rows)
    end = {}
    for pos, (u, _, t) in enumerate(rows):
        end[u] = max(end.get(u, (t, pos)), (t, pos))
    ordered = sorted(seqs, key=lambda u: end[u])
    n_test = math.ceil(test_fraction * len(ordered))
    return seqs, ordered[:-n_test], ordered[-n_test:]


def _leave_last_out(seqs, users, known=None):
    out = {}
    for u in users:
        s = [i for i in seqs[u] if known is None or i in known]
        if len(s) >= 2:
            out[u] = (s[:-1], s[-1])
    return out


def test_temporal_test_sessions_are_the_last_and_only_train_items():
    rows = _sessions_log()
    out = _build("temporal", _raw(rows, n_items=5))
    seqs, train, test = _reference_temporal(rows)
    users = sorted(seqs)
    train_items = {i for u in train for i in seqs[u]}
    expected = _leave_last_out(seqs, test, train_items)
    got = {users[u]: (_as_keys(out, h), _as_keys(out, [t])[0])
           for u, h, t in out.seq["test"].iter_rows()}
    assert got == expected
    # the unseen-item filter did drop something in this fixture, and left no unseen item
    assert out.stats["test_filter"]["dropped_interactions"] > 0
    for h, t in got.values():
        assert set(h) | {t} <= train_items
    assert len(test) == math.ceil(0.2 * len(seqs))


def test_temporal_folds_are_chained_and_disjoint():
    rows = _sessions_log(n_sessions=57, seed=5)
    out = _build("temporal", _raw(rows))
    seqs, train, _ = _reference_temporal(rows)
    users = sorted(seqs)
    bins = [list(b) for b in np.array_split(np.array(train), 4)]

    def fold(k, split):
        df = out.extra[f"seq/folds/fold{k}/{split}"]
        return {users[u]: (_as_keys(out, h), _as_keys(out, [t])[0]) for u, h, t in df.iter_rows()}

    for k in (1, 2, 3):
        fold_train = [u for b in bins[:k] for u in b]
        known = {i for u in fold_train for i in seqs[u]}
        assert fold(k, "train") == _leave_last_out(seqs, fold_train)
        assert fold(k, "valid") == _leave_last_out(seqs, bins[k], known)
        assert not set(fold(k, "train")) & set(fold(k, "valid"))  # disjoint sessions
        if k > 1:  # chained: each fold's training sessions extend the previous fold's
            assert set(fold(k - 1, "train")) < set(fold(k, "train"))
            assert set(fold(k - 1, "valid")) <= set(fold(k, "train"))
    assert out.seq["train"].equals(out.extra["seq/folds/fold3/train"])
    assert out.seq["valid"].equals(out.extra["seq/folds/fold3/valid"])
    test_users = set(out.seq["test"]["user_id"])
    for k in (1, 2, 3):
        assert not test_users & set(out.extra[f"seq/folds/fold{k}/train"]["user_id"])


def test_temporal_negatives_come_from_train_items_outside_the_session():
    rows = _sessions_log(n_sessions=60, seed=6)
    out = _build("temporal", _raw(rows))
    seqs, train, _ = _reference_temporal(rows)
    users = sorted(seqs)
    train_items = {i for u in train for i in seqs[u]}
    negs = out.seq_test_negatives
    assert negs["user_id"].to_list() == out.seq["test"]["user_id"].to_list()
    for user_id, neg in zip(negs["user_id"], negs["negatives"].to_list(), strict=True):
        names = set(_as_keys(out, neg))
        assert len(names) == N_NEG
        assert names <= train_items and not names & set(seqs[users[user_id]])


def test_temporal_without_timestamps_orders_by_file_and_says_so():
    rows = [(f"s{s}", f"i{(s + j) % 12}", s * 10 + j) for s in range(20) for j in range(3)]
    with_time = _build("temporal", _raw(rows))
    by_file = _build("temporal", _raw(rows, timestamps=False))
    assert "file order" in by_file.protocol["time"]
    assert "timestamps" in with_time.protocol["time"]


# --- through `prepare`: files, manifest, reruns ---------------------------------------------------

def _csv_raw(folder: Path, rows) -> Path:
    folder.mkdir(parents=True)
    pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").write_csv(
        folder / "interactions.csv")
    keys = sorted({i for _, i, _ in rows} | {f"z{j:03d}" for j in range(120)})
    pl.DataFrame({"item": keys, "title": [f"title {k}" for k in keys]}).write_csv(
        folder / "items.csv")
    return folder


@pytest.mark.parametrize(("protocol", "options"), [("loo", {"k": 1, "negatives": 20}),
                                                  ("temporal", {"negatives": 20})])
def test_prepare_writes_the_contract_and_reruns_are_byte_identical(tmp_path, protocol, options):
    raw = _csv_raw(tmp_path / "raw", _sessions_log(n_sessions=80, seed=7))
    runs = [prep.prepare("csv", raw=raw, size="paper", seed=seed, home=tmp_path / name,
                         protocol=protocol, protocol_options=options, show_progress=False)
            for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    a, b, c = runs
    assert a.path.parts[-3:] == ("csv", f"{protocol}-v1", "paper")
    assert a.manifest["files"] == b.manifest["files"]
    for rel in a.manifest["files"]:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes()
    assert c.manifest["files"]["seq/test_negatives.parquet"] != \
        a.manifest["files"]["seq/test_negatives.parquet"]
    assert not (a.path / "ctr").exists()
    manifest = json.loads((a.path / "manifest.json").read_text())
    assert manifest["protocol_version"] == f"{protocol}-v1"
    assert manifest["protocol"]["tasks"] == ["seq"]
    test = manifest["protocol"]["candidates"]["test"]
    assert (test["n"], test["sampler"], test["seed"]) == (options.get("negatives", 100),
                                                          "uniform", 0)
    assert "pessimistic" in manifest["protocol"]["ties"]
    for rel in manifest["files"]:
        assert (a.path / rel).is_file()
    schema = {"user_id": pl.Int32, "history": pl.List(pl.Int32), "target": pl.Int32}
    for split in ("train", "valid", "test"):
        assert pl.read_parquet(a.path / f"seq/{split}.parquet").schema == schema
    extra = {"loo": ["seq/valid_negatives.parquet"],
             "temporal": [f"seq/folds/fold{k}/{s}.parquet" for k in (1, 2, 3)
                          for s in ("train", "valid")]}[protocol]
    assert set(extra) <= set(manifest["files"])


def test_too_few_items_for_the_negatives_is_one_clear_line():
    rows = [(f"u{u}", f"i{j}", j) for u in range(5) for j in range(6)]
    with pytest.raises(DataError, match="unseen ones cannot be sampled"):
        get_protocol("loo").build(_raw(rows), "paper", 0, get_protocol("loo").Config(k=1))


def test_a_ctr_run_on_a_seq_only_protocol_is_one_clear_error(tmp_path):
    from recbench.runner import RunRequest, run

    with pytest.raises(ConfigError, match=r"protocol loo-v1\) has no ctr rows"):
        run(RunRequest(group="A", model="DNN", datasets=["synthetic"], size="tiny",
                       home=tmp_path, protocol="loo"))


def test_runs_on_every_protocol_share_the_evaluator_and_never_a_column(tmp_path):
    from recbench.results.leaderboard import build_table
    from recbench.results.store import ResultStore
    from recbench.runner import RunRequest, run

    for protocol in ("recbench", "loo", "temporal"):
        [outcome] = run(RunRequest(group="baseline", model="MostPopular", datasets=["synthetic"],
                                   size="tiny", home=tmp_path, protocol=protocol, task="seq",
                                   sets={"latency_samples": 5}))
        record = outcome.record
        assert record.protocol_version == f"{protocol}-v1"
        assert {"full", "sampled100"} <= set(record.metrics)
        [note] = [n for n in record.notes if n.startswith(f"protocol {protocol}-v1")]
        assert "uniform negatives" in note and "seed 0" in note and "pessimistic" in note
    table = build_table(ResultStore(tmp_path).records(), "seq")
    assert sorted(c.protocol_version for c in table.columns) == ["loo-v1", "recbench-v1",
                                                                 "temporal-v1"]
