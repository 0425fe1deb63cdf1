"""The amazon source: layout detection, the 2014/2018/2023/ratings dumps, delegation to p5 and
recbole, and user-facing errors. Fixtures are written in the official formats by the tests."""

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
from recbench.data.sources import amazon

N_ITEMS, N_USERS = 200, 80
SPECIAL_TITLES = {0: "L'Oreal Paris Voluminous Mascara", 1: 'Say "Hello" Lipstick, 3 Pack'}
UNTITLED = {197: "no meta record", 198: "no title field", 199: "empty title"}


def asin(i: int) -> str:
    return f"B{i:09d}"


def title(i: int) -> str:
    return SPECIAL_TITLES.get(i, f"Product {i} shade {i % 7}")


def reviews(seed: int = 7) -> list[dict]:
    """(user, item, rating, ts) rows, shuffled: file order is not time order."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        picks = rng.choice(N_ITEMS, int(rng.integers(5, 11)), replace=False)
        if u == 0:  # the specially titled items are reviewed (positively: k = 0, 1, 2)
            picks = [0, 1, 5] + [i for i in picks if i not in (0, 1, 5)]
        start = 1_300_000_000 + int(rng.integers(0, 10**7))
        for k, i in enumerate(picks):
            rating = {3: 2.0, 5: 3.0, 6: 1.0}.get(k % 7, 5.0 if k % 2 else 4.0)
            rows.append({"user": f"A{u:04d}X", "item": int(i), "rating": rating,
                         "ts": start + 86_400 * (int(rng.integers(1, 4)) + 4 * k)})
    order = rng.permutation(len(rows))
    return [rows[j] for j in order]


def _open(path: Path, gz: bool):
    return gzip.open(path, "wt", encoding="utf-8") if gz else open(path, "w", encoding="utf-8")


def _meta_records(key: str) -> list[dict]:
    out = []
    for i in range(N_ITEMS):
        if i == 197:
            continue
        rec = {key: asin(i), "brand": f"Brand{i % 5}", "price": 9.99,
               "categories": [["Beauty", "Makeup"]], "salesRank": {"Beauty": 1000 + i}}
        if i != 198:
            rec["title"] = "" if i == 199 else title(i)
        out.append(rec)
    return out


def write_layout(raw: Path, layout: str, *, gz: bool = False, lower: bool = False,
                 rows: list[dict] | None = None) -> list[dict]:
    """Write one official layout for category Beauty; returns the review rows."""
    raw.mkdir(parents=True, exist_ok=True)
    rows = rows if rows is not None else reviews()
    z = ".gz" if gz else ""
    cat = "beauty" if lower else "Beauty"
    if layout == "2014":
        with _open(raw / f"reviews_{cat}_5.json{z}", gz) as fh:
            for r in rows:
                fh.write(json.dumps({
                    "reviewerID": r["user"], "asin": asin(r["item"]), "reviewerName": "J. Doe",
                    "helpful": [0, 0], "reviewText": "Nice.", "overall": r["rating"],
                    "summary": "ok", "unixReviewTime": r["ts"], "reviewTime": "01 1, 2012",
                }) + "\n")
        with _open(raw / f"meta_{cat}.json{z}", gz) as fh:
            for rec in _meta_records("asin"):
                fh.write(repr(rec) + "\n")  # the 2014 dumps are Python literals, one per line
    elif layout == "2018":
        with _open(raw / f"{cat}_5.json{z}", gz) as fh:
            for r in rows:
                fh.write(json.dumps({
                    "overall": r["rating"], "verified": True, "reviewTime": "01 1, 2012",
                    "reviewerID": r["user"], "asin": asin(r["item"]), "style": {"Size:": " 1"},
                    "reviewerName": "J. Doe", "reviewText": "Nice.", "summary": "ok",
                    "unixReviewTime": r["ts"], "vote": "2",
                }) + "\n")
        with _open(raw / f"meta_{cat}.json{z}", gz) as fh:
            for rec in _meta_records("asin"):
                fh.write(json.dumps(rec) + "\n")
    elif layout == "2023":
        with _open(raw / f"{cat}.jsonl{z}", gz) as fh:
            for r in rows:
                fh.write(json.dumps({
                    "rating": r["rating"], "title": "review title", "text": "Nice.",
                    "images": [], "asin": asin(r["item"]) + "V", "parent_asin": asin(r["item"]),
                    "user_id": r["user"], "timestamp": r["ts"] * 1000, "helpful_vote": 0,
                    "verified_purchase": True,
                }) + "\n")
        with _open(raw / f"meta_{cat}.jsonl{z}", gz) as fh:
            for rec in _meta_records("parent_asin"):
                rec = {"main_category": "All Beauty", "average_rating": 4.2, "features": [],
                       "store": rec.pop("brand"), "details": {}, **rec}
                fh.write(json.dumps(rec) + "\n")
    elif layout == "ratings":
        lines = [f"{r['user']},{asin(r['item'])},{r['rating']},{r['ts']}\n" for r in rows]
        (raw / f"ratings_{cat}.csv").write_text("".join(lines))
        with _open(raw / f"meta_{cat}.json{z}", gz) as fh:
            for rec in _meta_records("asin"):
                fh.write(repr(rec) + "\n")
    else:
        raise ValueError(layout)
    return rows


def read(path: Path, rel: str) -> pl.DataFrame:
    return pl.read_parquet(path / f"{rel}.parquet")


def check_prepared(path: Path, rows: list[dict]) -> None:
    """Titles joined, labels from ratings (3 dropped), histories in time order."""
    items = read(path, "items")
    texts = dict(zip(items["item_key"], items["text"], strict=True))
    assert texts[asin(0)] == SPECIAL_TITLES[0] and texts[asin(1)] == SPECIAL_TITLES[1]
    assert texts[asin(5)] == title(5)
    assert not {asin(i) for i in UNTITLED} & set(texts)
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))

    kept = [r for r in rows if r["rating"] != 3.0 and r["item"] not in UNTITLED]
    users = sorted({r["user"] for r in kept})
    rating = {(r["user"], asin(r["item"])): r["rating"] for r in rows}
    positives: dict[str, list[str]] = {}
    for r in sorted(kept, key=lambda r: r["ts"]):
        if r["rating"] >= 4:
            positives.setdefault(r["user"], []).append(asin(r["item"]))

    ctr = pl.concat([read(path, f"ctr/{s}") for s in ("train", "valid", "test")])
    assert set(ctr["label"].unique()) == {0, 1}
    for u, hist, item, label in ctr.iter_rows():
        r = rating[(users[u], key_of[item])]
        assert (r >= 4) if label == 1 else (r <= 2), (users[u], key_of[item], r, label)
        assert [key_of[h] for h in hist] == positives[users[u]][:-2][-20:]
    seq = pl.concat([read(path, f"seq/{s}") for s in ("train", "valid", "test")])
    assert seq.height > 0
    for u, hist, target in seq.iter_rows():
        assert [key_of[h] for h in hist] + [key_of[target]] == positives[users[u]][-21:]


LAYOUT_CASES = [("2014", False, False), ("2014", True, False), ("2018", False, False),
                ("2018", True, True), ("2023", False, True), ("2023", True, False),
                ("ratings", False, False)]


@pytest.mark.parametrize(("layout", "gz", "lower"), LAYOUT_CASES)
def test_review_layouts(tmp_path, home, layout, gz, lower):
    rows = write_layout(tmp_path / "raw", layout, gz=gz, lower=lower)
    result = prepare("amazon-beauty", raw=tmp_path / "raw", size="tiny", home=home)
    notes = result.manifest["notes"]
    assert notes[0].startswith(f"amazon layout {layout} (detected")
    assert result.manifest["parameters"]["options"] == {"category": "Beauty"}
    neutral = sum(r["rating"] == 3.0 for r in rows)
    assert any(f"{neutral} ratings between 2 and 4" in n for n in notes), notes
    reviewed = {r["item"] for r in rows if r["rating"] != 3.0}
    no_meta, no_title = len(reviewed & {197}), len(reviewed & {198, 199})
    assert any(f"titles for {len(reviewed) - no_meta - no_title} of {len(reviewed)} reviewed "
               f"items ({no_meta} without a metadata record, {no_title} with a missing or empty "
               "title)" in n for n in notes), notes
    assert len(result.manifest["raw_files"]) == 2
    check_prepared(result.path, rows)


def test_python_literal_meta_lines(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2014")
    lines = (raw / "meta_Beauty.json").read_text().splitlines()
    assert lines[0].startswith("{'asin': 'B000000000'") and "\"L'Oreal" in lines[0]
    meta = amazon.read_meta(raw / "meta_Beauty.json", key="asin", loose=True,
                            extra={"brand": "brand"})
    texts = dict(zip(meta["item_key"], meta["text"], strict=True))
    assert texts["B000000000"] == SPECIAL_TITLES[0]
    assert texts["B000000001"] == SPECIAL_TITLES[1]
    assert texts["B000000198"] is None and texts["B000000199"] == ""
    assert set(meta["brand"].unique()) == {f"Brand{i}" for i in range(5)}


def test_gz_matches_plain(tmp_path):
    write_layout(tmp_path / "plain", "2018")
    write_layout(tmp_path / "gz", "2018", gz=True)
    plain = amazon.load(tmp_path / "plain", {"category": "Beauty"})
    packed = amazon.load(tmp_path / "gz", {"category": "Beauty"})
    assert packed.source_files[0].name == "Beauty_5.json.gz"
    assert packed.events.collect().equals(plain.events.collect())
    assert packed.items.equals(plain.items)


def test_events_from_loader(tmp_path):
    rows = write_layout(tmp_path / "raw", "2023")
    ev = amazon.load(tmp_path / "raw", {"category": "Beauty"}).events.collect()
    assert ev.height == sum(r["rating"] != 3.0 for r in rows)
    first = next(r for r in rows if r["rating"] != 3.0)
    hit = ev.filter((pl.col("user_key") == first["user"])
                    & (pl.col("item_key") == asin(first["item"])))
    assert hit["ts"].to_list() == [first["ts"] * 1000]  # milliseconds kept
    assert hit["label"].to_list() == [int(first["rating"] >= 4)]


def test_determinism(tmp_path):
    write_layout(tmp_path / "raw", "2018")
    a = prepare("amazon-beauty", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h1")
    b = prepare("amazon-beauty", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h2")
    c = prepare("amazon-beauty", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h3", seed=1)
    assert a.manifest["files"] == b.manifest["files"]
    for rel in a.manifest["files"]:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes()
    assert a.manifest["content_hash"] != c.manifest["content_hash"]


def test_repeated_review_keeps_earliest(tmp_path):
    rows = reviews()
    first = next(r for r in rows if r["rating"] >= 4)
    rows.append({**first, "rating": 1.0, "ts": first["ts"] + 10})
    write_layout(tmp_path / "raw", "2018", rows=rows)
    tables = amazon.load(tmp_path / "raw", {"category": "Beauty"})
    ev = tables.events.collect().filter((pl.col("user_key") == first["user"])
                                        & (pl.col("item_key") == asin(first["item"])))
    assert ev["label"].to_list() == [1]
    assert any("1 repeated (user, item) reviews dropped" in n for n in tables.notes)


# --- detection and delegation -----------------------------------------------------------------

def test_newest_layout_wins_and_others_are_noted(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2014")
    write_layout(raw, "2018")
    tables = amazon.load(raw, {"category": "Beauty"})
    assert tables.notes[0].startswith("amazon layout 2018 (detected")
    assert "also present: 2014" in tables.notes[0]
    forced = amazon.load(raw, {"category": "Beauty", "layout": 2014})  # YAML gives an int
    assert forced.notes[0].startswith("amazon layout 2014 (forced")
    assert forced.source_files[0].name == "reviews_Beauty_5.json"


def test_five_core_preferred_and_subfolder(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw / "unpacked", "2018")
    (raw / "unpacked" / "Beauty.json").write_text("{}\n")  # the full dump: not read
    tables = amazon.load(raw, {"category": "Beauty"})
    assert tables.source_files[0].name == "Beauty_5.json"


def _p5_files(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    lines = [" ".join([str(u)] + [str(i) for i in rng.choice(np.arange(1, N_ITEMS + 1),
                                                               int(rng.integers(5, 11)),
                                                               replace=False)])
             for u in range(1, N_USERS + 1)]
    (raw / "sequential_data.txt").write_text("\n".join(lines) + "\n")
    id2item = {str(i): asin(i) for i in range(1, N_ITEMS + 1)}
    (raw / "datamaps.json").write_text(json.dumps(
        {"user2id": {}, "item2id": {v: k for k, v in id2item.items()}, "id2item": id2item}))
    (raw / "item_id_to_int.json").write_text(json.dumps(
        {asin(i): 1000 + i for i in range(1, N_ITEMS + 1)}))
    ids = range(1, N_ITEMS + 1)
    pl.DataFrame({"": range(N_ITEMS), "global_product_id": [1000 + i for i in ids],
                  "name": [title(i) for i in ids]}).write_csv(raw / "products_lookup.csv")


def _recbole_files(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "Games-6k.item").write_text("item_id:token\ttitle:token_seq\n" + "".join(
        f"{i}\tGame {i}\n" for i in range(N_ITEMS)))
    rng = np.random.default_rng(4)
    valid, test = ["user_id:token\titem_id_list:token_seq\titem_id:token\n"], []
    test.append(valid[0])
    for u in range(N_USERS):
        seq = [str(i) for i in rng.choice(N_ITEMS, int(rng.integers(5, 11)), replace=False)]
        valid.append(f"{u}\t{' '.join(seq[:-2])}\t{seq[-2]}\n")
        test.append(f"{u}\t{' '.join(seq[:-1])}\t{seq[-1]}\n")
    (raw / "Games-6k.valid.inter").write_text("".join(valid))
    (raw / "Games-6k.test.inter").write_text("".join(test))


def test_delegates_to_p5(tmp_path, home):
    _p5_files(tmp_path / "raw")
    result = prepare("amazon-beauty", raw=tmp_path / "raw", size="tiny", home=home)
    assert result.manifest["notes"][0].startswith("amazon layout p5 (detected")
    assert {f["file"] for f in result.manifest["raw_files"]} == {
        "sequential_data.txt", "datamaps.json", "item_id_to_int.json", "products_lookup.csv"}


def test_delegates_to_recbole(tmp_path, home):
    _recbole_files(tmp_path / "raw")
    result = prepare("amazon-games", raw=tmp_path / "raw", size="tiny", home=home,
                     options={"text_field": "title"})
    assert result.manifest["notes"][0].startswith("amazon layout recbole (detected")
    assert read(result.path, "items")["text"][0].startswith("Game ")


def test_reviews_win_over_p5(tmp_path):
    raw = tmp_path / "raw"
    _p5_files(raw)
    write_layout(raw, "2014")
    tables = amazon.load(raw, {"category": "Beauty"})
    assert tables.notes[0].startswith("amazon layout 2014")
    assert "also present: p5" in tables.notes[0]
    assert amazon.load(raw, {"category": "Beauty", "layout": "p5"}).negatives == "sampled"


# --- errors -------------------------------------------------------------------------------------

def test_missing_files_lists_every_layout(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(MissingRawFilesError) as err:
        amazon.load(tmp_path / "raw", {"category": "Beauty"})
    msg = str(err.value)
    for name in ("Beauty.jsonl", "Beauty_5.json", "reviews_Beauty_5.json", "ratings_Beauty.csv",
                 "meta_Beauty.json", "sequential_data.txt", "NAME.inter + NAME.item"):
        assert name in msg, (name, msg)


@pytest.mark.parametrize("layout", ["2014", "ratings"])
def test_reviews_without_meta(tmp_path, layout):
    raw = tmp_path / "raw"
    write_layout(raw, layout)
    (raw / "meta_Beauty.json").unlink()
    with pytest.raises(MissingRawFilesError, match=r"no item metadata; expected meta_Beauty\.json"):
        amazon.load(raw, {"category": "Beauty"})


def test_forced_layout_missing(tmp_path):
    write_layout(tmp_path / "raw", "2018")
    with pytest.raises(MissingRawFilesError, match=r"amazon 2023 layout.*Beauty\.jsonl"):
        amazon.load(tmp_path / "raw", {"category": "Beauty", "layout": "2023"})


def test_bad_options(tmp_path):
    write_layout(tmp_path / "raw", "2018")
    with pytest.raises(DataError,
                       match=r"unknown option\(s\) \['colour'\].*valid: category, layout"):
        amazon.load(tmp_path / "raw", {"category": "Beauty", "colour": "red"})
    with pytest.raises(DataError, match=r"unknown amazon layout '2019'; choose one of 2023"):
        amazon.load(tmp_path / "raw", {"category": "Beauty", "layout": "2019"})


def test_missing_field_names_file_and_field(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2018")
    path = raw / "Beauty_5.json"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "overall"}) + "\n"
                            for r in records))
    with pytest.raises(DataError) as err:
        amazon.load(raw, {"category": "Beauty"})
    assert str(path) in str(err.value) and "'overall'" in str(err.value)
    assert "reviewerID" in str(err.value)  # what the first record has


def test_meta_without_titles(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2018")
    meta = raw / "meta_Beauty.json"
    meta.write_text("".join(json.dumps({"asin": asin(i), "brand": "x"}) + "\n"
                            for i in range(N_ITEMS)))
    with pytest.raises(DataError, match=r"meta_Beauty\.json: no record has the field\(s\) "
                                        r"\['title'\]"):
        amazon.load(raw, {"category": "Beauty"})


@pytest.mark.parametrize("gz", [False, True])
def test_malformed_json_line_is_named(tmp_path, gz):
    raw = tmp_path / "raw"
    write_layout(raw, "2018", gz=gz)
    name = "Beauty_5.json" + (".gz" if gz else "")
    with gzip.open(raw / name, "rt") if gz else open(raw / name) as fh:
        lines = fh.read().splitlines()
    lines[6] = '{"overall": 5.0, "reviewerID": "A1", "asin": '  # cut mid-record
    with _open(raw / name, gz) as fh:
        fh.write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"{name}: line 7 is not valid JSON"):
        amazon.load(raw, {"category": "Beauty"})


def test_malformed_literal_meta_line_is_named(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2014")
    meta = raw / "meta_Beauty.json"
    lines = meta.read_text().splitlines()
    lines[3] = "{'asin': 'B000000003', 'title': __import__('os').getcwd()}"  # never evaluated
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"meta_Beauty\.json: line 4 is not valid JSON"):
        amazon.load(raw, {"category": "Beauty"})


def test_bad_value_names_line_and_field(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2018")
    path = raw / "Beauty_5.json"
    lines = path.read_text().splitlines()
    record = json.loads(lines[9])
    record["overall"] = "five stars"
    lines[9] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Beauty_5\.json: line 10, field 'overall': "
                                        r"'five stars' is not a valid Float64"):
        amazon.load(raw, {"category": "Beauty"})


def test_corrupt_gz(tmp_path):
    raw = tmp_path / "raw"
    write_layout(raw, "2018", gz=True)
    data = (raw / "Beauty_5.json.gz").read_bytes()
    (raw / "Beauty_5.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"Beauty_5\.json\.gz"):
        amazon.load(raw, {"category": "Beauty"})


def test_cli_reports_one_line_errors(tmp_path, home):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["prepare", "amazon-beauty", "--raw", str(empty), "--size",
                                 "tiny", "--home", str(home)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "reviews_Beauty_5.json" in lines[0]

    raw = tmp_path / "raw"
    write_layout(raw, "2018")
    (raw / "Beauty_5.json").write_text('{"reviewerID": "A1"}\nnot json\n')
    result = runner.invoke(app, ["prepare", "amazon-beauty", "--raw", str(raw), "--size", "tiny",
                                 "--home", str(home)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Beauty_5.json: line 2 is not valid JSON" in lines[0]


# --- the real subsets ---------------------------------------------------------------------------

@pytest.mark.shared_data
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_real_amazon_beauty_p5(shared_data, home, size):
    raw = shared_subdir(shared_data, "amazon-beauty")
    result = prepare("amazon-beauty", raw=raw, size=size, home=home)
    m = result.manifest
    assert m["notes"][0].startswith("amazon layout p5 (detected")
    assert m["stats"]["n_items"] == 12_094  # 7 of the 12,101 have no name
    assert m["stats"]["n_users"] == 22_363
    _check_real_splits(result.path, size)


@pytest.mark.shared_data
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_real_amazon_games_recbole(shared_data, home, size):
    raw = shared_subdir(shared_data, "amazon-games")
    result = prepare("amazon-games", raw=raw, size=size, home=home)
    m = result.manifest
    assert m["notes"][0].startswith("amazon layout recbole (detected")
    assert m["stats"]["n_items"] == 16_859 and m["stats"]["n_users"] == 50_546
    assert m["stats"]["n_events"] == 440_264
    _check_real_splits(result.path, size)
    # The full sequence is the test row's list + target: a test row's target is the last item.
    test = pl.read_csv(raw / "Games-6k.test.inter", separator="\t", quote_char=None,
                       schema_overrides={"user_id:token": pl.Utf8, "item_id:token": pl.Utf8})
    items = read(result.path, "items")
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))
    target_of = dict(zip(test["user_id:token"], test["item_id:token"], strict=True))
    seq = read(result.path, "seq/test")
    users = sorted(target_of)  # every user has a text-bearing sequence here
    for u, _, target in seq.head(50).iter_rows():
        assert key_of[target] == target_of[users[u]]


def _check_real_splits(path: Path, size: str) -> None:
    want = {"tiny": (200, 1_000, 100, 500), "small": (2_000, 10_000, 500, 4_000)}[size]
    ctr = {s: read(path, f"ctr/{s}") for s in ("train", "valid", "test")}
    seq = {s: read(path, f"seq/{s}") for s in ("train", "valid", "test")}
    assert ctr["test"].height == want[0]
    assert ctr["train"].height + ctr["valid"].height == want[1]
    assert seq["test"].height == want[2]
    assert seq["train"].height + seq["valid"].height == want[3]
    for splits in (ctr, seq):
        users = [set(df["user_id"]) for df in splits.values()]
        assert not users[0] & users[1] and not users[0] & users[2] and not users[1] & users[2]
    assert set(ctr["test"]["label"].unique()) == {0, 1}  # sampled negatives
    assert ctr["test"]["history"].list.len().min() >= 1
    assert seq["test"]["history"].list.len().max() <= 20
    negs = read(path, "seq/test_negatives")
    assert negs.height == want[2] and negs["negatives"].list.len().unique().to_list() == [100]
