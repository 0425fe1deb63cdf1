"""The p5 source: P5/OpenP5 sequential_data.txt + datamaps.json + item names."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import shared_subdir
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.sources import p5

N_ITEMS, N_USERS = 200, 80
UNNAMED = 200  # P5 id whose product has an empty name
UNMAPPED = 201  # P5 id that datamaps.json does not know


def asin(i: int) -> str:
    return f"B{i:09d}"


def name(i: int) -> str:
    return {1: "L'Oreal Mascara, Black", 2: 'Say "Hello" Lipstick'}.get(i, f"Product {i}")


def sequences(seed: int = 5) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    out = {}
    for u in range(1, N_USERS + 1):
        seq = [int(i) for i in rng.choice(np.arange(1, N_ITEMS + 1), int(rng.integers(5, 11)),
                                          replace=False)]
        if u == 1:  # the specially named items are used
            seq = [1, 2] + [i for i in seq if i not in (1, 2)]
        if u % 20 == 0:
            seq.insert(2, UNMAPPED)
        out[str(u)] = seq
    return out


def write_p5(raw: Path, *, names: str = "lookup", seqs: dict[str, list[int]] | None = None,
             maps_key: str = "id2item") -> dict[str, list[int]]:
    raw.mkdir(parents=True, exist_ok=True)
    seqs = seqs or sequences()
    (raw / "sequential_data.txt").write_text(
        "".join(f"{u} {' '.join(map(str, s))}\n" for u, s in seqs.items()))
    id2item = {str(i): asin(i) for i in range(1, N_ITEMS + 1)}
    maps = {"user2id": {f"A{u}": u for u in seqs}, "id2user": {u: f"A{u}" for u in seqs},
            "attribute2id": {"Makeup": 1}, "id2attribute": {"1": "Makeup"}}
    if maps_key == "id2item":
        maps["id2item"] = id2item
    if maps_key in ("id2item", "item2id"):
        maps["item2id"] = {v: k for k, v in id2item.items()}
    (raw / "datamaps.json").write_text(json.dumps(maps))
    ids = range(1, N_ITEMS + 1)
    if names == "lookup":
        # Global ids are a permutation, so a join on the wrong key would mismatch names.
        (raw / "item_id_to_int.json").write_text(json.dumps({asin(i): 5000 - i for i in ids}))
        pl.DataFrame({"": range(N_ITEMS), "global_product_id": [5000 - i for i in ids],
                      "name": ["" if i == UNNAMED else name(i) for i in ids]}
                     ).write_csv(raw / "products_lookup.csv")
    elif names == "meta":
        with gzip.open(raw / "meta_Beauty.json.gz", "wt") as fh:
            for i in ids:
                rec = {"asin": asin(i), "categories": [["Beauty"]], "price": 1.5}
                if i != UNNAMED:
                    rec["title"] = name(i)
                fh.write(repr(rec) + "\n")
    return seqs


def read(path: Path, rel: str) -> pl.DataFrame:
    return pl.read_parquet(path / f"{rel}.parquet")


def test_p5_layout(tmp_path, home):
    seqs = write_p5(tmp_path / "raw")
    result = prepare("p5", raw=tmp_path / "raw", size="tiny", home=home)
    notes = result.manifest["notes"]
    assert any("4 interactions on 1 P5 item ids absent" in n for n in notes), notes
    assert any(f"names for {N_ITEMS - 1} of {N_ITEMS} P5 items" in n for n in notes), notes
    assert any("dropped 1 items with empty text" in n for n in notes), notes

    items = read(result.path, "items")
    text = dict(zip(items["item_key"], items["text"], strict=True))
    assert text[asin(1)] == name(1) and text[asin(2)] == name(2) and text[asin(77)] == name(77)
    assert asin(UNNAMED) not in text
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))

    kept = {u: [asin(i) for i in s if i not in (UNNAMED, UNMAPPED)] for u, s in seqs.items()}
    users = sorted(kept)  # P5 user ids as strings
    seq = pl.concat([read(result.path, f"seq/{s}") for s in ("train", "valid", "test")])
    assert seq.height == N_USERS
    for u, hist, target in seq.iter_rows():
        assert [key_of[h] for h in hist] + [key_of[target]] == kept[users[u]][-21:]

    ctr = pl.concat([read(result.path, f"ctr/{s}") for s in ("train", "valid", "test")])
    assert ctr.group_by("user_id").agg(pl.col("label").sum())["label"].unique().to_list() == [2]
    for u, hist, item, label in ctr.iter_rows():
        assert [key_of[h] for h in hist] == kept[users[u]][:-2][-20:]
        assert (key_of[item] in kept[users[u]][-2:]) if label else (key_of[item] not in
                                                                     kept[users[u]])


def test_meta_names_python_literal_gz(tmp_path):
    write_p5(tmp_path / "raw", names="meta")
    tables = p5.load(tmp_path / "raw", {})
    assert [p.name for p in tables.source_files][-1] == "meta_Beauty.json.gz"
    text = dict(zip(tables.items["item_key"], tables.items["text"], strict=True))
    assert text[asin(1)] == name(1) and text[asin(2)] == name(2)
    assert text[asin(UNNAMED)] is None
    assert tables.negatives == "sampled"


def test_ts_is_file_position(tmp_path):
    write_p5(tmp_path / "raw", seqs={"7": [3, 1, 2], "2": [9, 8, 5, 4]})
    ev = p5.load(tmp_path / "raw", {}).events.collect()
    assert ev["user_key"].to_list() == ["7"] * 3 + ["2"] * 4
    assert ev["item_key"].to_list() == [asin(i) for i in (3, 1, 2, 9, 8, 5, 4)]
    assert ev["ts"].to_list() == list(range(7))
    assert set(ev["label"]) == {1}


def test_item2id_is_inverted_when_id2item_is_absent(tmp_path):
    write_p5(tmp_path / "raw", seqs={"1": [3, 1, 2]}, maps_key="item2id")
    ev = p5.load(tmp_path / "raw", {}).events.collect()
    assert ev["item_key"].to_list() == [asin(3), asin(1), asin(2)]


def test_determinism(tmp_path):
    write_p5(tmp_path / "raw")
    a = prepare("p5", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h1")
    b = prepare("p5", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h2")
    for rel in a.manifest["files"]:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes()


def test_no_names_is_an_error(tmp_path):
    write_p5(tmp_path / "raw", names="none")
    with pytest.raises(MissingRawFilesError, match="no item names.*text is required"):
        p5.load(tmp_path / "raw", {})
    (tmp_path / "raw" / "item_id_to_int.json").write_text("{}")
    with pytest.raises(MissingRawFilesError, match="found item_id_to_int.json but not "
                                                   "products_lookup.csv"):
        p5.load(tmp_path / "raw", {})


def test_missing_files(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(MissingRawFilesError, match="needs sequential_data.txt and datamaps.json"):
        p5.load(tmp_path / "raw", {})


@pytest.mark.parametrize(("line", "message"), [
    ("12 4 x7 9", r"line 3: 'x7' is not an integer id"),
    ("12", r"line 3: '12' has no item"),
])
def test_bad_sequence_line(tmp_path, line, message):
    raw = tmp_path / "raw"
    write_p5(raw)
    path = raw / "sequential_data.txt"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"sequential_data\.txt: {message}"):
        p5.load(raw, {})


def test_bad_datamaps(tmp_path):
    raw = tmp_path / "raw"
    write_p5(raw, maps_key="none")
    with pytest.raises(DataError, match=r"datamaps\.json: no field 'id2item'"):
        p5.load(raw, {})
    (raw / "datamaps.json").write_text('{"id2item": {"1": "B1"},\n "user2id": }')
    with pytest.raises(DataError, match=r"datamaps\.json: not valid JSON \(line 2"):
        p5.load(raw, {})


def test_bad_lookup(tmp_path):
    raw = tmp_path / "raw"
    write_p5(raw)
    (raw / "item_id_to_int.json").write_text(json.dumps({"B1": "one"}))
    with pytest.raises(DataError, match=r"item_id_to_int\.json: ASIN 'B1' maps to 'one'"):
        p5.load(raw, {})
    write_p5(raw)
    (raw / "products_lookup.csv").write_text(",global_product_id,title\n0,1,x\n")
    with pytest.raises(DataError, match=r"products_lookup\.csv: missing column\(s\) \['name'\]"):
        p5.load(raw, {})


def test_options_rejected(tmp_path):
    write_p5(tmp_path / "raw")
    with pytest.raises(DataError, match="for the p5 layout; it takes none"):
        p5.load(tmp_path / "raw", {"text_field": "title"})


def test_cli_error_is_one_line(tmp_path, home):
    raw = tmp_path / "raw"
    write_p5(raw, names="none")
    result = CliRunner().invoke(app, ["prepare", "p5", "--raw", str(raw), "--size", "tiny",
                                      "--home", str(home)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no item names" in lines[0]


@pytest.mark.shared_data
def test_real_beauty_sequences_keep_file_order(shared_data, home):
    raw = shared_subdir(shared_data, "amazon-beauty")
    result = prepare("p5", raw=raw, size="tiny", home=home)
    items = read(result.path, "items")
    assert items.height == 12_094
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))
    id2item = json.loads((raw / "datamaps.json").read_text())["id2item"]
    named = set(items["item_key"])
    lines = {}
    for line in (raw / "sequential_data.txt").read_text().splitlines():
        user, *seq = line.split()
        lines[user] = [id2item[i] for i in seq if id2item[i] in named]
    users = sorted(lines)
    seq = read(result.path, "seq/test")
    assert seq.height == 100
    for u, hist, target in seq.iter_rows():
        assert [key_of[h] for h in hist] + [key_of[target]] == lines[users[u]][-21:]


def test_damaged_lines_follow_the_raw_file_policy(tmp_path):
    """Issue 13, class 5: the old loader took a cut-off last line's shortened id for another
    item, appended a repeated user line and took an item for the user of a line with an empty
    user field."""
    raw = tmp_path / "raw"
    write_p5(raw)
    path = raw / "sequential_data.txt"
    path.write_text("1 3 1 2 1\n2 9 8 5 4\n1 7 6\n3 4 5 6 12"[:-1])  # "12" cut to "1"
    tables = p5.load(raw, {})
    events = tables.events.collect()
    assert events.filter(pl.col("user_key") == "3").height == 0  # the unterminated line
    assert events.filter(pl.col("user_key") == "1")["item_key"].to_list() == [
        asin(3), asin(1), asin(2)]  # first line only, its repeated item once
    notes = " | ".join(tables.notes)
    assert "line 4 has no newline" in notes and "'3 4 5 6 1'" in notes
    assert "1 repeated user lines dropped" in notes
    assert "1 repeated (user, item) interactions dropped" in notes
    path.write_text("1 3 1 2\n 9 8 5 4\n")
    with pytest.raises(DataError, match=r"line 2: the user field is empty"):
        p5.load(raw, {})
    path.write_bytes(b"1 3 1 2\n2 9 8\xff 5\n")
    with pytest.raises(DataError, match=r"line 2 is not valid UTF-8"):
        p5.load(raw, {})
