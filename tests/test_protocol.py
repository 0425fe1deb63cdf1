"""The shared protocol on the synthetic source: contract, invariants, determinism, atomicity."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recbench.core.errors import AlreadyExistsError, DataError, UnknownNameError
from recbench.data import prepare as prep
from recbench.data.protocol import MAX_HISTORY, N_SAMPLED_NEGATIVES, build_splits
from recbench.data.raw import RawTables


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    result = prep.prepare("synthetic", size="tiny", seed=0, home=home, show_progress=False)
    return home, result


def read(result, rel):
    return pl.read_parquet(result.path / f"{rel}.parquet")


def test_contract_columns_and_types(tiny):
    _, result = tiny
    items = read(result, "items")
    assert items["item_id"].dtype == pl.Int32
    assert items["item_id"].to_list() == list(range(items.height))
    for split in ("train", "valid", "test"):
        ctr = read(result, f"ctr/{split}")
        assert ctr.schema == {"user_id": pl.Int32, "history": pl.List(pl.Int32),
                              "item_id": pl.Int32, "label": pl.Int8}
        seq = read(result, f"seq/{split}")
        assert seq.schema == {"user_id": pl.Int32, "history": pl.List(pl.Int32),
                              "target": pl.Int32}
        assert seq["history"].list.len().max() <= MAX_HISTORY
        assert seq["history"].list.len().min() >= 1


def test_splits_are_user_disjoint(tiny):
    _, result = tiny
    for task in ("ctr", "seq"):
        users = [set(read(result, f"{task}/{s}")["user_id"]) for s in ("train", "valid", "test")]
        assert not (users[0] & users[1]) and not (users[0] & users[2]) and not (users[1] & users[2])


def test_ctr_rows_last_two_positives_and_real_negatives(tiny):
    _, result = tiny
    test = read(result, "ctr/test")
    per_user = test.group_by("user_id").agg(pl.col("label").sum().alias("pos"), pl.len())
    assert (per_user["pos"] == 2).all()
    assert (per_user["len"] > 2).all()  # every user has real negatives (both labels for GAUC)
    # all rows of one user share the history
    assert (test.group_by("user_id").agg(pl.col("history").n_unique())["history"] == 1).all()


def test_seq_history_is_oldest_first_and_precedes_target(tmp_path):
    # Hand-made tiny source: user u has items 0..k in time order, given shuffled.
    n_items = 200
    items = pl.DataFrame({"item_key": [f"i{j:03d}" for j in range(n_items)],
                          "text": [f"item {j}" for j in range(n_items)]})
    rows = []
    for u in range(8):
        seq = [(u * 20 + j) % n_items for j in range(25)]
        rows += [(f"u{u}", f"i{i:03d}", 1000 + t, 1) for t, i in enumerate(seq)]
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.permutation(len(rows))]
    events = pl.DataFrame(rows, schema=["user_key", "item_key", "ts", "label"], orient="row")
    raw = RawTables(items=items, events=events.lazy(), negatives="sampled")
    out = build_splits(raw, size="tiny", seed=0)
    seq = pl.concat(out.seq.values())
    for user_id, history, target in seq.iter_rows():
        u = user_id  # user keys u0..u7 sort to ids 0..7
        expected = [(u * 20 + j) % n_items for j in range(25)]
        assert target == expected[-1]
        assert history == expected[-21:-1]


def test_sampled_negatives_are_unseen(tiny):
    home, result = tiny
    test = read(result, "seq/test")
    negs = read(result, "seq/test_negatives")
    assert negs.height == test.height
    for (hist, target), row_negs in zip(test.select("history", "target").iter_rows(),
                                        negs["negatives"].to_list(), strict=True):
        assert len(row_negs) == N_SAMPLED_NEGATIVES == len(set(row_negs))
        assert target not in row_negs and not set(hist) & set(row_negs)


def test_deterministic_bytes(tmp_path):
    a = prep.prepare("synthetic", size="tiny", seed=3, home=tmp_path / "a", show_progress=False)
    b = prep.prepare("synthetic", size="tiny", seed=3, home=tmp_path / "b", show_progress=False)
    assert a.manifest["files"] == b.manifest["files"]
    for rel in a.manifest["files"]:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes()
    c = prep.prepare("synthetic", size="tiny", seed=4, home=tmp_path / "c", show_progress=False)
    assert c.manifest["content_hash"] != a.manifest["content_hash"]


def test_manifest_records_sources_and_counts(tiny):
    _, result = tiny
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert {f["file"] for f in manifest["raw_files"]} == {"interactions.csv", "items.csv"}
    assert all(len(f["sha256"]) == 64 for f in manifest["raw_files"])
    assert manifest["stats"]["ctr"]["test"]["rows"] == read(result, "ctr/test").height
    assert manifest["parameters"]["size"] == "tiny"


def test_no_silent_overwrite_and_force(tiny):
    home, result = tiny
    with pytest.raises(AlreadyExistsError, match="--force"):
        prep.prepare("synthetic", size="tiny", home=home, show_progress=False)
    again = prep.prepare("synthetic", size="tiny", home=home, force=True, show_progress=False)
    assert again.manifest["content_hash"] == result.manifest["content_hash"]


def test_interrupted_prepare_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prep, "_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare("synthetic", size="tiny", home=tmp_path, show_progress=False)
    ds = tmp_path / "datasets" / "synthetic"
    assert not (ds / "tiny").exists()
    assert not any(ds.iterdir())  # no temp folder left behind


def test_scaled_down_is_reported(tiny):
    _, result = tiny
    # tiny synthetic has fewer users than finetune+test sequences requested? either way the
    # manifest states whether sizes were scaled down.
    assert isinstance(result.manifest["scaled_down"], bool)


def test_unknown_dataset_suggests():
    with pytest.raises(UnknownNameError, match="mind"):
        prep.prepare("minds", size="tiny")


def test_unknown_size():
    with pytest.raises(DataError, match="tiny"):
        prep.prepare("synthetic", size="huge")


def test_too_few_items_is_a_clear_error():
    items = pl.DataFrame({"item_key": ["a", "b"], "text": ["x", "y"]})
    events = pl.DataFrame({"user_key": ["u"] * 2, "item_key": ["a", "b"], "ts": [1, 2],
                           "label": [1, 1]})
    with pytest.raises(DataError, match="items with text"):
        build_splits(RawTables(items, events.lazy(), "sampled"), size="tiny", seed=0)
