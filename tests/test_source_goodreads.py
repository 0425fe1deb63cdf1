"""goodreads: UCSD Goodreads JSON-lines fixtures (plain and .gz) through `prepare`."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.sources import goodreads

N_BOOKS = 200
ZONES = [dt.timezone(dt.timedelta(hours=-7)), dt.timezone(dt.timedelta(hours=-8)),
         dt.timezone(dt.timedelta(hours=1))]


def book_id(b: int) -> str:
    return str(5_333_000 + 17 * b)


def user_id(u: int) -> str:
    return hashlib.md5(f"user{u}".encode()).hexdigest()


def expected_title(b: int) -> str:
    """Books 1-150 are in goodreads_books.json (book 3's title is empty there); 3 and 40-200 are
    the best edition of a work in goodreads_book_works.json. The book record wins."""
    if b <= 150 and b != 3:
        return f"Book {b}: A Novel (Series, #{b % 4 + 1})"
    return f"Work {b} original"


def interaction(u: int, b: int, rating: int, when: int, zone: dt.timezone) -> dict:
    stamp = dt.datetime.fromtimestamp(when, zone).strftime("%a %b %d %H:%M:%S %z %Y")
    return {"user_id": user_id(u), "book_id": book_id(b),
            "review_id": hashlib.md5(f"{u}-{b}".encode()).hexdigest(), "is_read": rating > 0,
            "rating": rating, "review_text_incomplete": "", "date_added": stamp,
            "date_updated": stamp, "read_at": "", "started_at": ""}


def write_lines(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def make_raw(raw: Path, seed: int = 0, gz: bool = False, books: bool = True,
             works: bool = True, n_users: int = 80) -> pl.DataFrame:
    """Write the dump's files; return the interactions (user, book, rating, epoch seconds)."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    ext = ".json.gz" if gz else ".json"
    rows, records = [], []
    for u in range(1, n_users + 1):
        k = int(rng.integers(6, 15))
        items = rng.choice(np.arange(1, N_BOOKS + 1), k, replace=False)
        ratings = rng.choice([0, 1, 2, 3, 4, 5], k, p=[0.2, 0.08, 0.1, 0.12, 0.25, 0.25])
        ratings[0] = 2
        when = 1_300_000_000 + rng.choice(10**8, k, replace=False)
        user_rows = [(u, int(b), int(r), int(t)) for b, r, t in zip(items, ratings, when,
                                                                      strict=True)]
        rows += user_rows
        # The dump lists a user's shelf newest first (by date_updated): not time order.
        for i in np.argsort(-when):
            records.append(interaction(*user_rows[i], ZONES[int(rng.integers(0, 3))]))
    write_lines(raw / f"goodreads_interactions_dedup{ext}", records)
    if books:
        write_lines(raw / f"goodreads_books{ext}", [
            {"isbn": "", "text_reviews_count": "1", "series": [], "country_code": "US",
             "popular_shelves": [{"count": "3", "name": "to-read"}], "authors": [
                 {"author_id": str(b), "role": ""}], "book_id": book_id(b),
             "work_id": str(9_000 + b),
             "title": "" if b == 3 else f"Book {b}: A Novel (Series, #{b % 4 + 1})",
             "title_without_series": f"Book {b}: A Novel"} for b in range(1, 151)])
    if works:
        write_lines(raw / f"goodreads_book_works{ext}", [
            {"books_count": "2", "best_book_id": book_id(b), "original_publication_year": "",
             "original_title": f"Work {b} original", "rating_dist": "5:1|total:1",
             "work_id": str(9_000 + b)} for b in [3, *range(40, N_BOOKS + 1)]])
    return pl.DataFrame(rows, schema=["user", "book", "rating", "ts"], orient="row")


def expected_events(rows: pl.DataFrame) -> pl.DataFrame:
    """The documented rules: rating 0 and 3 dropped, >=4 positive, <=2 negative."""
    return rows.filter(pl.col("rating").is_in([1, 2, 4, 5])).select(
        pl.col("user").map_elements(user_id, return_dtype=pl.Utf8).alias("user_key"),
        pl.col("book").map_elements(book_id, return_dtype=pl.Utf8).alias("item_key"),
        "ts", (pl.col("rating") >= 4).cast(pl.Int8).alias("label"))


def check_prepared(out: Path, events: pl.DataFrame, titles: dict[str, str]) -> None:
    """Titles joined, chronological histories, labels and real negatives, disjoint users."""
    items = pl.read_parquet(out / "items.parquet")
    key_of = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    assert dict(zip(items["item_key"], items["text"], strict=True)) == {
        k: titles[k] for k in items["item_key"]}
    events = events.filter(pl.col("item_key").is_in(items["item_key"].implode()))
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


TITLES = {book_id(b): expected_title(b) for b in range(1, N_BOOKS + 1)}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "raw"


def test_prepare_tiny_titles_order_labels(raw, home):
    rows = make_raw(raw)
    result = prepare("goodreads", raw=raw, size="tiny", home=home, show_progress=False)
    notes = result.manifest["notes"]
    unrated = rows.filter(pl.col("rating") == 0).height
    assert any(f"{unrated} of {rows.height} shelf events without a rating" in n for n in notes)
    threes = rows.filter(pl.col("rating") == 3).height
    assert any(f"{threes} ratings between 2 and 4" in n for n in notes)
    assert any("books titled by their work's original_title" in n for n in notes)
    assert {f["file"] for f in result.manifest["raw_files"]} == {
        "goodreads_interactions_dedup.json", "goodreads_books.json",
        "goodreads_book_works.json"}
    check_prepared(result.path, expected_events(rows), TITLES)
    items = pl.read_parquet(result.path / "items.parquet")
    assert items.filter(pl.col("item_key") == book_id(120))["text"][0] == expected_title(120)


def test_gz_equals_plain_and_seed_determinism(tmp_path):
    make_raw(tmp_path / "plain")
    make_raw(tmp_path / "gz", gz=True)
    a = prepare("goodreads", raw=tmp_path / "plain", size="tiny", home=tmp_path / "a")
    b = prepare("goodreads", raw=tmp_path / "gz", size="tiny", home=tmp_path / "b")
    c = prepare("goodreads", raw=tmp_path / "plain", size="tiny", home=tmp_path / "c", seed=9)
    assert parquet_bytes(a.path) == parquet_bytes(b.path)
    assert parquet_bytes(a.path) != parquet_bytes(c.path)
    assert {f["file"] for f in b.manifest["raw_files"]} >= {"goodreads_books.json.gz"}


def test_works_only_titles_best_editions(raw, home):
    rows = make_raw(raw, books=False)
    tables = goodreads.load(raw, {})
    titled = set(tables.items.filter(pl.col("text").is_not_null())["item_key"])
    assert titled == {book_id(b) for b in [3, *range(40, N_BOOKS + 1)]}
    result = prepare("goodreads", raw=raw, size="tiny", home=home)
    assert any("interactions on items without text" in n for n in result.manifest["notes"])
    titles = {book_id(b): f"Work {b} original" for b in range(1, N_BOOKS + 1)}
    check_prepared(result.path, expected_events(rows), titles)


def test_missing_files(raw):
    make_raw(raw, books=False, works=False)
    with pytest.raises(MissingRawFilesError, match="goodreads_book_works.json"):
        goodreads.load(raw, {})
    (raw / "goodreads_interactions_dedup.json").unlink()
    (raw / "goodreads_interactions.csv").write_text("user_id,book_id,is_read,rating,"
                                                    "is_reviewed\n0,1,1,5,0\n")
    with pytest.raises(MissingRawFilesError, match="no dates"):
        goodreads.load(raw, {})


def test_genre_subset_and_interactions_option(raw):
    make_raw(raw)
    dedup = raw / "goodreads_interactions_dedup.json"
    dedup.rename(raw / "goodreads_interactions_poetry.json")
    assert goodreads.load(raw, {}).source_files[0].name == "goodreads_interactions_poetry.json"
    (raw / "goodreads_interactions_comics.json").write_bytes(
        (raw / "goodreads_interactions_poetry.json").read_bytes())
    with pytest.raises(DataError, match="several interaction files"):
        goodreads.load(raw, {})
    chosen = goodreads.load(raw, {"interactions": "goodreads_interactions_comics.json"})
    assert chosen.source_files[0].name == "goodreads_interactions_comics.json"
    with pytest.raises(DataError, match="unknown option.*valid: interactions"):
        goodreads.load(raw, {"interaction": "x"})


def test_malformed_middle_line_and_cut_last_line(raw):
    make_raw(raw)
    path = raw / "goodreads_interactions_dedup.json"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:40] + ['{"user_id": "abc", "book_id": \n'] + lines[40:]))
    with pytest.raises(DataError, match=r"goodreads_interactions_dedup.json: line 41 is not "
                                        "valid JSON"):
        goodreads.load(raw, {})
    path.write_text("".join(lines) + '{"user_id": "zzz", "book_id": "12", "rat')
    tables = goodreads.load(raw, {})
    assert any(f"line {len(lines) + 1} is cut off" in n for n in tables.notes)
    assert tables.events.collect().filter(pl.col("user_key") == "zzz").height == 0


def test_bad_values_name_line_and_field(raw):
    make_raw(raw)
    path = raw / "goodreads_interactions_dedup.json"
    lines = path.read_text().splitlines(keepends=True)
    bad = json.loads(lines[12])
    bad["date_added"] = "2017-10-17 23:39:37"
    path.write_text("".join(lines[:12] + ["\n", json.dumps(bad) + "\n"] + lines[13:]))
    with pytest.raises(DataError, match=r"line 14, field 'date_added': '2017-10-17 23:39:37'"):
        goodreads.load(raw, {})
    bad = json.loads(lines[12])
    bad["rating"] = "five"
    path.write_text("".join(lines[:12] + [json.dumps(bad) + "\n"] + lines[13:]))
    with pytest.raises(DataError, match=r"line 13, field 'rating': 'five' is not a number"):
        goodreads.load(raw, {})
    path.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items()
                                        if k != "date_added"}) + "\n" for line in lines))
    with pytest.raises(DataError, match=r"dedup.json: no record has the field\(s\) "
                                        r"\['date_added'\]"):
        goodreads.load(raw, {})


def test_cli_bad_input_is_one_line_without_traceback(raw, home):
    make_raw(raw)
    path = raw / "goodreads_book_works.json"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:5] + ["{'best_book_id': '1'}\n"] + lines[5:]))
    result = CliRunner().invoke(app, ["prepare", "goodreads", "--raw", str(raw), "--size",
                                      "tiny", "--home", str(home)])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.strip()]
    assert len(message) == 1 and "goodreads_book_works.json: line 6 is not valid JSON" in \
        message[0]
