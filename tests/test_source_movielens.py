"""MovieLens: ml-100k, ml-1m and ml-latest fixtures in the official formats through `prepare`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import shared_subdir
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.sources import movielens

GENRES_100K = movielens.ML100K_GENRES
CATALOG_NAME = {"ml-100k": "ml-100k", "ml-1m": "ml-1m", "ml-latest": "ml-latest-small"}


def title_of(movie: int) -> str:
    if movie == 5:
        return "Misérables, Les (1995)"  # latin-1 in the old releases, quoted in movies.csv
    if movie == 9:
        return 'City of Lost Children, The (Cité des enfants perdus, La) (1995)'
    return f"Movie {movie}, The ({1950 + movie % 60})"


def genres_of(movie: int) -> list[str]:
    return [] if movie == 11 else [GENRES_100K[1 + movie % 18], GENRES_100K[1 + (movie * 7) % 18]]


def make_ratings(seed: int, n_items: int, n_users: int, half_stars: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    scale = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0] if half_stars else [1, 2, 3, 4, 5]
    for user in range(1, n_users + 1):
        k = int(rng.integers(5, 13))
        items = rng.choice(np.arange(1, n_items + 1), k, replace=False)
        ratings = rng.choice(scale, k)
        ratings[rng.integers(0, k)] = 2
        ratings[rng.integers(0, k)] = 3
        times = 880_000_000 + rng.choice(10**7, k, replace=False)
        rows += [(user, int(i), float(r), int(t))
                 for i, r, t in zip(items, ratings, times, strict=True)]
    df = pl.DataFrame(rows, schema=["user", "movie", "rating", "timestamp"], orient="row")
    return df.sample(fraction=1.0, shuffle=True, seed=seed)  # files need not be sorted


def make_raw(raw: Path, layout: str, seed: int = 0, n_items: int = 200,
             n_users: int = 80) -> pl.DataFrame:
    """Write one official layout into raw/<layout>/ (as the zips unpack); return the ratings."""
    folder = raw / layout
    folder.mkdir(parents=True, exist_ok=True)
    ratings = make_ratings(seed, n_items, n_users, half_stars=layout == "ml-latest")
    movies = range(1, n_items + 1)
    if layout == "ml-100k":
        (folder / "u.data").write_text("".join(
            f"{u}\t{m}\t{int(r)}\t{t}\n" for u, m, r, t in ratings.iter_rows()))
        lines = []
        for m in movies:
            title = "unknown" if m == 7 else title_of(m)
            flags = [("1" if g in genres_of(m) else "0") for g in GENRES_100K]
            lines.append(f"{m}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|"
                         + "|".join(flags) + "\n")
        (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
        (folder / "u.genre").write_text(
            "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES_100K)) + "\n")
    elif layout == "ml-1m":
        (folder / "ratings.dat").write_text("".join(
            f"{u}::{m}::{int(r)}::{t}\n" for u, m, r, t in ratings.sort("user").iter_rows()))
        (folder / "movies.dat").write_bytes("".join(
            f"{m}::{title_of(m)}::{'|'.join(genres_of(m))}\n" for m in movies).encode("latin-1"))
    else:
        ratings.sort("user", "movie").rename({"user": "userId", "movie": "movieId"}).write_csv(
            folder / "ratings.csv")
        pl.DataFrame({"movieId": list(movies), "title": [title_of(m) for m in movies],
                      "genres": ["|".join(genres_of(m)) or "(no genres listed)" for m in movies]}
                     ).write_csv(folder / "movies.csv")
    return ratings


def expected_events(ratings: pl.DataFrame) -> pl.DataFrame:
    """The documented rules, applied independently: >=4 positive, <=2 negative, between dropped."""
    return ratings.filter((pl.col("rating") >= 4) | (pl.col("rating") <= 2)).select(
        pl.col("user").cast(pl.Utf8).alias("user_key"),
        pl.col("movie").cast(pl.Utf8).alias("item_key"),
        pl.col("timestamp").alias("ts"), (pl.col("rating") >= 4).cast(pl.Int8).alias("label"))


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


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "raw"


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "ml-latest"])
def test_layouts_prepare_tiny(raw, home, layout):
    ratings = make_raw(raw, layout)
    result = prepare(CATALOG_NAME[layout], raw=raw, size="tiny", home=home, show_progress=False)
    notes = result.manifest["notes"]
    assert any(f"MovieLens layout {layout}" in n for n in notes)
    assert any("between 2 and 4 (exclusive) dropped" in n for n in notes)
    titles = {str(m): title_of(m) for m in range(1, 201)}
    check_prepared(result.path, expected_events(ratings), titles)
    items = pl.read_parquet(result.path / "items.parquet")
    by_key = {k: (t, g) for k, t, g in items.select("item_key", "text", "genres").iter_rows()}
    if "5" in by_key:
        assert by_key["5"][0] == "Misérables, Les (1995)"
    if "11" in by_key:
        assert by_key["11"][1] is None  # no genres
    some = next(k for k in by_key if k not in ("7", "11"))
    assert by_key[some][1] == "|".join(genres_of(int(some)))
    if layout == "ml-100k":
        assert "7" not in by_key  # titled "unknown"
        assert any("titled 'unknown' get no text" in n for n in notes)


def test_same_seed_same_bytes(raw, tmp_path):
    make_raw(raw, "ml-1m")
    a = prepare("ml-1m", raw=raw, size="tiny", home=tmp_path / "a", seed=1)
    b = prepare("ml-1m", raw=raw, size="tiny", home=tmp_path / "b", seed=1)
    c = prepare("ml-1m", raw=raw, size="tiny", home=tmp_path / "c", seed=2)
    assert parquet_bytes(a.path) == parquet_bytes(b.path)
    assert parquet_bytes(a.path) != parquet_bytes(c.path)


def test_layout_detection_and_option(raw):
    with pytest.raises(MissingRawFilesError, match="no MovieLens ratings file"):
        raw.mkdir()
        movielens.load(raw, {})
    make_raw(raw, "ml-100k")
    make_raw(raw, "ml-latest")
    with pytest.raises(DataError, match="several MovieLens layouts.*--option layout"):
        movielens.load(raw, {})
    tables = movielens.load(raw, {"layout": "ml-100k"})
    assert tables.source_files[0].name == "u.data"
    with pytest.raises(DataError, match="layout='ml-2m'.*ml-100k, ml-1m, ml-latest"):
        movielens.load(raw, {"layout": "ml-2m"})
    with pytest.raises(DataError, match="unknown option.*valid: layout"):
        movielens.load(raw, {"layuot": "ml-1m"})


def test_dat_malformed_lines_name_line_numbers(raw):
    make_raw(raw, "ml-1m")
    path = raw / "ml-1m" / "ratings.dat"
    lines = path.read_text().splitlines()
    for bad, match in (("3::17::x::978300760", r"line 21, field 'rating': 'x'"),
                       ("3::17::4", r"line 21: expected 4 fields separated by '::'"),
                       ("3,17,4,978300760", r"line 21: expected 4 fields")):
        path.write_text("\n".join(lines[:20] + [bad] + lines[20:]) + "\n")
        with pytest.raises(DataError, match=match):
            movielens.load(raw, {})


def test_cut_last_line_dropped_with_note(raw):
    ratings = make_raw(raw, "ml-100k")
    path = raw / "ml-100k" / "u.data"
    path.write_bytes(path.read_bytes() + b"999\t12")
    tables = movielens.load(raw, {})
    assert any(f"line {ratings.height + 1} is cut off" in n for n in tables.notes)
    assert tables.events.collect().filter(pl.col("user_key") == "999").height == 0
    path.write_bytes(path.read_bytes()[:-len(b"999\t12")] + b"999\t12\t5\t881250949")
    assert tables_with_user(raw, "999") == 1  # a complete last line without newline is kept


def tables_with_user(raw: Path, user: str) -> int:
    return movielens.load(raw, {}).events.collect().filter(pl.col("user_key") == user).height


def test_csv_missing_column_and_missing_file(raw):
    make_raw(raw, "ml-latest")
    ratings_path = raw / "ml-latest" / "ratings.csv"
    pl.read_csv(ratings_path).rename({"timestamp": "time"}).write_csv(ratings_path)
    with pytest.raises(DataError, match=r"ratings.csv: missing column\(s\) \['timestamp'\]"):
        movielens.load(raw, {})
    (raw / "ml-latest" / "movies.csv").unlink()
    with pytest.raises(MissingRawFilesError, match="movies.csv"):
        movielens.load(raw, {})


def test_csv_short_middle_line_is_an_error(raw):
    make_raw(raw, "ml-latest")
    path = raw / "ml-latest" / "ratings.csv"
    lines = path.read_text().splitlines()
    lines[30] = "4,12,3.5"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings.csv: .*line 31"):
        movielens.load(raw, {})


def test_cli_bad_input_is_one_line_without_traceback(raw, home):
    make_raw(raw, "ml-1m")
    path = raw / "ml-1m" / "movies.dat"
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"4::No genres field"
    path.write_bytes(b"\n".join(lines))
    result = CliRunner().invoke(app, ["prepare", "ml-1m", "--raw", str(raw), "--size", "tiny",
                                      "--home", str(home)])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.strip()]
    assert len(message) == 1 and "movies.dat: line 4" in message[0]


@pytest.mark.shared_data
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_shared_ml_latest_small(shared_data, home, size):
    raw = shared_subdir(shared_data, "movielens-latest-small")
    result = prepare("ml-latest-small", raw=raw, size=size, home=home, show_progress=False)
    stats = result.manifest["stats"]
    assert stats["n_users"] == 610 and stats["n_items"] > 5000
    assert stats["n_events"] == 62_103  # 100,836 ratings less the 38,733 in (2, 4)
    for task in ("ctr", "seq"):
        for split in ("train", "valid", "test"):
            assert stats[task][split]["rows"] > 0
    items = pl.read_parquet(result.path / "items.parquet")
    assert items.filter(pl.col("item_key") == "1")["text"].to_list() == ["Toy Story (1995)"]
    ctr = pl.read_parquet(result.path / "ctr/test.parquet")
    assert 0 < ctr["label"].mean() < 1
