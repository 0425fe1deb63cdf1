"""goodbooks-10k: official ratings.csv / books.csv / to_read.csv fixtures through `prepare`."""

from __future__ import annotations

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
from recbench.data.sources import goodbooks

BOOKS_HEADER = ("book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,"
                "original_publication_year,original_title,title,language_code,average_rating,"
                "ratings_count,work_ratings_count,work_text_reviews_count,ratings_1,ratings_2,"
                "ratings_3,ratings_4,ratings_5,image_url,small_image_url")


def title_of(book: int) -> str:
    # Commas and quotes exercise the CSV quoting of the official file.
    return f'The "Book" {book} (Series {book % 7}, #{book % 3 + 1})'


def make_raw(raw: Path, seed: int = 0, n_items: int = 200, n_users: int = 80,
             to_read: bool = True) -> pl.DataFrame:
    """Write the official files; return the ratings in file (= time) order."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    books = [BOOKS_HEADER] + [
        f'{b},{b + 1000},{b + 1000},{b + 5000},3,isbn{b},9.78e+12,"Author {b}, Co-Author",'
        f'{1990 + b % 30}.0,Original {b},"{title_of(b).replace(chr(34), chr(34) * 2)}",eng,4.1,'
        f"100,120,10,1,2,3,4,5,https://img/{b}m.jpg,https://img/{b}s.jpg"
        for b in range(1, n_items + 1)
    ]
    (raw / "books.csv").write_text("\n".join(books) + "\n")
    rows = []
    for user in range(1, n_users + 1):
        k = int(rng.integers(5, 13))
        items = rng.choice(np.arange(1, n_items + 1), k, replace=False)
        ratings = rng.choice([1, 2, 3, 4, 5], k, p=[0.1, 0.1, 0.15, 0.3, 0.35])
        ratings[1] = 2  # every user has a real negative
        times = np.sort(rng.integers(0, 10**6, k))
        rows += [(user, int(i), int(r), int(t)) for i, r, t in zip(items, ratings, times,
                                                                    strict=True)]
    ratings = pl.DataFrame(rows, schema=["user_id", "book_id", "rating", "t"], orient="row")
    ratings = ratings.sort("t", maintain_order=True).drop("t")
    ratings.write_csv(raw / "ratings.csv")
    if to_read:
        pairs = pl.DataFrame({"user_id": rng.integers(1, n_users + 1, 300),
                              "book_id": rng.integers(1, n_items + 1, 300)})
        pairs.write_csv(raw / "to_read.csv")
    return ratings


def expected_events(ratings: pl.DataFrame) -> pl.DataFrame:
    """The documented rules, applied independently: >=4 positive, <=2 negative, 3 dropped."""
    return ratings.with_row_index("ts").filter(pl.col("rating") != 3).select(
        pl.col("user_id").cast(pl.Utf8).alias("user_key"),
        pl.col("book_id").cast(pl.Utf8).alias("item_key"),
        "ts", (pl.col("rating") >= 4).cast(pl.Int8).alias("label"))


def check_prepared(out: Path, events: pl.DataFrame, titles: dict[str, str]) -> None:
    """Titles joined, chronological histories, labels and real negatives, disjoint users."""
    items = pl.read_parquet(out / "items.parquet")
    key_of = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    assert {k: t for k, t in zip(items["item_key"], items["text"], strict=True)} == {
        k: titles[k] for k in items["item_key"]}
    users = sorted(events["user_key"].unique().to_list())
    ordered = events.sort("ts", maintain_order=True)
    pos = {u: g["item_key"].to_list()
           for (u,), g in ordered.filter(pl.col("label") == 1).group_by("user_key",
                                                                         maintain_order=True)}
    neg = {u: set(g["item_key"].to_list())
           for (u,), g in ordered.filter(pl.col("label") == 0).group_by("user_key")}
    seen: dict[str, list[set]] = {"seq": [], "ctr": []}
    for split in ("train", "valid", "test"):
        seq = pl.read_parquet(out / f"seq/{split}.parquet")
        for user, history, target in seq.iter_rows():
            p = pos[users[user]]
            assert key_of[target] == p[-1]
            assert [key_of[i] for i in history] == p[:-1][-20:]
        ctr = pl.read_parquet(out / f"ctr/{split}.parquet")
        assert ctr["label"].sum() < ctr.height, "no real negatives in CTR rows"
        for user, history, item, label in ctr.iter_rows():
            p = pos[users[user]]
            assert [key_of[i] for i in history] == p[:-2][-20:]
            assert (key_of[item] in p[-2:]) if label == 1 else (key_of[item] in neg[users[user]])
        seen["seq"].append(set(seq["user_id"]))
        seen["ctr"].append(set(ctr["user_id"]))
    for train, valid, test in seen.values():  # users are disjoint within each task
        assert not (train & valid) and not (train & test) and not (valid & test)


def parquet_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "raw"


def test_prepare_tiny_titles_order_labels(raw, home):
    ratings = make_raw(raw)
    result = prepare("goodbooks-10k", raw=raw, size="tiny", home=home, show_progress=False)
    manifest = result.manifest
    assert manifest["source"] == "goodbooks"
    assert {f["file"] for f in manifest["raw_files"]} == {"ratings.csv", "books.csv"}
    n3 = ratings.filter(pl.col("rating") == 3).height
    assert any(f"{n3} ratings between 2 and 4" in n for n in manifest["notes"])
    titles = {str(b): title_of(b) for b in range(1, 201)}
    check_prepared(result.path, expected_events(ratings), titles)
    items = pl.read_parquet(result.path / "items.parquet")
    assert {"authors", "original_title", "year", "language_code"} <= set(items.columns)
    assert items.filter(pl.col("item_key") == "7")["authors"][0] == "Author 7, Co-Author"


def test_same_seed_same_bytes(raw, tmp_path):
    make_raw(raw)
    a = prepare("goodbooks-10k", raw=raw, size="tiny", home=tmp_path / "a", seed=3)
    b = prepare("goodbooks-10k", raw=raw, size="tiny", home=tmp_path / "b", seed=3)
    c = prepare("goodbooks-10k", raw=raw, size="tiny", home=tmp_path / "c", seed=4)
    assert parquet_bytes(a.path) == parquet_bytes(b.path)
    assert parquet_bytes(a.path) != parquet_bytes(c.path)
    assert a.manifest["content_hash"] == b.manifest["content_hash"]


def test_to_read_as_positive_appends_after_ratings(raw, home):
    ratings = make_raw(raw)
    plain = goodbooks.load(raw, {})
    assert "to_read.csv" not in {p.name for p in plain.source_files}
    tables = goodbooks.load(raw, {"to_read_as_positive": True})
    events = tables.events.collect()
    to_read = pl.read_csv(raw / "to_read.csv")
    rated = set(zip(ratings["user_id"].cast(str), ratings["book_id"].cast(str), strict=True))
    extra = events.filter(pl.col("ts") >= ratings.height)
    assert (extra["label"] == 1).all()
    assert extra.height == len({(str(u), str(b)) for u, b in to_read.iter_rows()} - rated)
    assert extra["ts"].min() >= events.filter(pl.col("ts") < ratings.height)["ts"].max()
    with pytest.raises(DataError, match="to_read_as_positive must be true or false"):
        goodbooks.load(raw, {"to_read_as_positive": "yes"})
    result = prepare("goodbooks-10k", raw=raw, size="tiny", home=home,
                     options={"to_read_as_positive": True})
    assert result.manifest["parameters"]["options"] == {"to_read_as_positive": True}


def test_cut_last_line_dropped_complete_last_line_kept(raw):
    ratings = make_raw(raw, to_read=False)
    body = (raw / "ratings.csv").read_bytes()
    (raw / "ratings.csv").write_bytes(body + b"1686,15")  # cut mid-row, no newline
    cut = goodbooks.load(raw, {})
    assert any("line" in n and "cut off" in n and "'1686,15'" in n for n in cut.notes)
    assert cut.events.collect().filter(pl.col("user_key") == "1686").height == 0
    (raw / "ratings.csv").write_bytes(body + b"1686,150,5")  # complete row, no newline
    whole = goodbooks.load(raw, {})
    assert whole.events.collect().filter(pl.col("user_key") == "1686")["item_key"].to_list() \
        == ["150"]
    assert any("no newline but is a complete row" in n for n in whole.notes)
    assert ratings.height + 1 == whole.events.collect().height + ratings.filter(
        pl.col("rating") == 3).height


def test_malformed_middle_line_names_line(raw):
    make_raw(raw, to_read=False)
    lines = (raw / "ratings.csv").read_text().splitlines()
    lines[10] = "12,abc,4"
    (raw / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings.csv: line 11, column 'book_id'"):
        goodbooks.load(raw, {})
    lines[10] = "12,13"
    (raw / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings.csv: .*line 11"):
        goodbooks.load(raw, {})
    lines[10] = "12,13,4,4"
    (raw / "ratings.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings.csv: malformed data at line 11"):
        goodbooks.load(raw, {})
    lines[10] = ""  # a blank line is harmless
    (raw / "ratings.csv").write_text("\n".join(lines) + "\n")
    assert goodbooks.load(raw, {}).events.collect().height > 0


def test_missing_column_and_file(raw):
    make_raw(raw, to_read=False)
    books = pl.read_csv(raw / "books.csv").drop("title")
    books.write_csv(raw / "books.csv")
    with pytest.raises(DataError, match=r"books.csv: missing column\(s\) \['title'\]"):
        goodbooks.load(raw, {})
    (raw / "books.csv").unlink()
    with pytest.raises(MissingRawFilesError, match="books.csv"):
        goodbooks.load(raw, {})
    make_raw(raw, to_read=False)
    with pytest.raises(MissingRawFilesError, match="to_read.csv"):
        goodbooks.load(raw, {"to_read_as_positive": True})


def test_unknown_option_lists_valid_ones(raw):
    make_raw(raw, to_read=False)
    with pytest.raises(DataError, match="to_read_as_positive"):
        goodbooks.load(raw, {"to_read": True})


def test_cli_bad_input_is_one_line_without_traceback(raw, home):
    make_raw(raw, to_read=False)
    lines = (raw / "ratings.csv").read_text().splitlines()
    lines[5] = "3,x,5"
    (raw / "ratings.csv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["prepare", "goodbooks-10k", "--raw", str(raw),
                                      "--size", "tiny", "--home", str(home)])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.strip()]
    assert len(message) == 1 and "line 6" in message[0] and "ratings.csv" in message[0]


@pytest.mark.shared_data
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_shared_goodbooks(shared_data, home, size):
    raw = shared_subdir(shared_data, "goodbooks-10k")
    result = prepare("goodbooks-10k", raw=raw, size=size, home=home, show_progress=False)
    stats = result.manifest["stats"]
    assert stats["n_items"] > 1000 and stats["n_users"] > 500
    for task in ("ctr", "seq"):
        for split in ("train", "valid", "test"):
            assert stats[task][split]["rows"] > 0
    ctr = pl.read_parquet(result.path / "ctr/test.parquet")
    assert 0 < ctr["label"].mean() < 1
    items = pl.read_parquet(result.path / "items.parquet")
    assert items.filter(pl.col("item_key") == "1")["text"].to_list() in (
        [], ["The Hunger Games (The Hunger Games, #1)"])
    assert json.loads((result.path / "manifest.json").read_text())["notes"]
