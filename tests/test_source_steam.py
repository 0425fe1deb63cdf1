"""steam: the shared Parquet layout and the official UCSD Python-literal files through `prepare`."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import shared_subdir
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.sources import steam

N_GAMES = 200
GENRES = ["Action", "Adventure", "Casual", "Indie", "RPG", "Strategy"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def game_id(b: int) -> str:
    return str(b)  # small ids, so that item_metadata.csv's ItemId (0..N-1) collides with them


def game_name(b: int) -> str:
    return f"Game {b} & Co: Part {b % 5}"


def genres_of(b: int) -> list[str]:
    return [GENRES[b % 6], GENRES[(b // 6) % 6]] if b % 6 != (b // 6) % 6 else [GENRES[b % 6]]


def tags_of(b: int) -> str:
    return f"Tag{b % 9}_Female Protagonist_Tag{b % 4}"


def py2_repr(value) -> str:
    """Python 2 repr, as in the UCSD dumps: u'...' strings."""
    if isinstance(value, str):
        return "u" + repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{py2_repr(k)}: {py2_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(py2_repr(v) for v in value) + "]"
    return repr(value)


def write_text(path: Path, text: str) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def make_reviews(seed: int, n_users: int = 80) -> pl.DataFrame:
    """Reviews in chronological order per user: user, game, recommend, year, month, day."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(5, 13))
        games = rng.choice(np.arange(1, N_GAMES + 1), k, replace=False)
        recommend = rng.random(k) < 0.7
        recommend[int(rng.integers(0, k))] = False
        years = rng.integers(2010, 2017, k)
        months, days = rng.integers(1, 13, k), rng.integers(1, 29, k)
        years[-1], months[-1], days[-1] = years[0], months[0], days[0]  # a same-day pair
        user = f"user{u}" if u % 3 else f"7656119{u:010d}"
        rows += [(user, game_id(int(g)), bool(r), int(y), int(m), int(d))
                 for g, r, y, m, d in zip(games, recommend, years, months, days, strict=True)]
    df = pl.DataFrame(rows, schema=["user", "game", "recommend", "year", "month", "day"],
                      orient="row")
    # Rows are the chronological order; same-day reviews count as ordered as drawn.
    return df.with_row_index("i").sort("user", "year", "month", "day", "i").drop("i")


def write_games(raw: Path, fmt: str, metadata: bool = True) -> None:
    ids = list(range(1, N_GAMES + 1)) + [9001, 9002]  # two games nobody reviewed
    if fmt == "parquet":
        pl.DataFrame({
            "app_name": [None if b % 17 == 0 else game_name(b) for b in ids],
            "title": [game_name(b).replace("&", "&amp;") for b in ids],
            "price": [4.99] * len(ids),
            "item_id": [game_id(b) for b in ids],
            "developer": ["Dev"] * len(ids),
            "release_year": pl.Series([2015] * len(ids), dtype=pl.Int32),
            **{g: pl.Series([int(g in genres_of(b)) for b in ids], dtype=pl.Int32)
               for g in GENRES},
            "__index_level_0__": list(range(len(ids))),
        }).write_parquet(raw / "steam_games.parquet")
    else:
        lines = [py2_repr({"publisher": "Pub", "genres": genres_of(b), "app_name": game_name(b),
                           "title": game_name(b).replace("&", "&amp;"),
                           "url": f"http://store.steampowered.com/app/{b}/",
                           "release_date": "2018-01-04", "tags": ["Indie"],
                           "discount_price": 4.49, "specs": ["Single-player"], "price": 4.99,
                           "early_access": False, "id": game_id(b), "developer": "Dev"})
                 for b in ids]
        lines.insert(3, py2_repr({"url": "http://store.steampowered.com/", "tags": ["x"],
                                  "early_access": False, "app_name": "No id"}))
        write_text(raw / fmt, "\n".join(lines) + "\n")
    if metadata:
        order = np.random.default_rng(7).permutation(ids[:150])
        pl.DataFrame({
            "ItemId": [str(i) for i in range(len(order))],
            "Name": [game_name(int(b)).replace("&", "&amp;") for b in order],
            "Category": ["_".join(genres_of(int(b))) for b in order],
            "Tag": [tags_of(int(b)) for b in order],
            "class": [str(i % 7) for i in range(len(order))],
        }).write_csv(raw / "item_metadata.csv")


def write_parquet_reviews(raw: Path, reviews: pl.DataFrame, recommend_dtype=pl.Int32) -> None:
    # The shared file is grouped by game: row order carries no time within a year.
    reviews.with_row_index("i").sort("game", "i").select(
        pl.col("user").alias("user_id"), pl.col("game").alias("item_id"),
        pl.col("recommend").cast(recommend_dtype), pl.col("year").cast(pl.Int32)
        .alias("posted_year"), pl.lit(1, pl.Int64).alias("sentiment_analysis"),
    ).write_parquet(raw / "user_reviews.parquet")


def write_australian(raw: Path, reviews: pl.DataFrame, name: str, undated_year: int) -> None:
    lines = []
    for (user,), group in reviews.group_by("user", maintain_order=True):
        items = []
        for _, game, rec, year, month, day in reversed(group.rows()):  # newest first
            when = f"{MONTHS[month - 1]} {day}" + ("" if year == undated_year else f", {year}")
            items.append({"funny": "", "posted": f"Posted {when}.", "last_edited": "",
                          "item_id": game, "helpful": "No ratings yet", "recommend": rec,
                          "review": "Great game, isn't it? \"Yes\"."})
        lines.append(repr({"user_id": user, "user_url": f"http://steamcommunity.com/id/{user}",
                           "reviews": items}))
    write_text(raw / name, "\n".join(lines) + "\n")


def write_steam_reviews(raw: Path, reviews: pl.DataFrame, name: str) -> None:
    lines = []
    for i, (user, game, _, year, month, day) in enumerate(
            reviews.sample(fraction=1.0, shuffle=True, seed=1).iter_rows()):
        record = {"username": user.replace("user1", "O'Neil 1"), "hours": 0.1, "products": 41,
                  "product_id": game, "page_order": i % 10,
                  "date": f"{year}-{month:02d}-{day:02d}", "text": "fun", "early_access": False,
                  "page": 1}
        lines.append(py2_repr(record))
    write_text(raw / name, "\n".join(lines) + "\n")


def expected(reviews: pl.DataFrame, ts: pl.Expr) -> pl.DataFrame:
    return reviews.select(pl.col("user").alias("user_key"), pl.col("game").alias("item_key"),
                          ts.alias("ts"), pl.col("recommend").cast(pl.Int8).alias("label"))


def check_prepared(out: Path, events: pl.DataFrame, titles: dict[str, str],
                   real_negatives: bool = True) -> None:
    """Titles joined, chronological histories, labels and negatives, disjoint users."""
    items = pl.read_parquet(out / "items.parquet")
    key_of = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    assert dict(zip(items["item_key"], items["text"], strict=True)) == {
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
        assert ctr["label"].sum() < ctr.height, "no negatives in CTR rows"
        for user, history, item, label in ctr.iter_rows():
            p = pos[users[user]]
            assert [key_of[i] for i in history] == p[:-2][-20:]
            if label == 1:
                assert key_of[item] in p[-2:]
            elif real_negatives:
                assert key_of[item] in neg[users[user]]
            else:
                assert key_of[item] not in p
        seen["seq"].append(set(seq["user_id"]))
        seen["ctr"].append(set(ctr["user_id"]))
    for train, valid, test in seen.values():  # users are disjoint within each task
        assert not (train & valid) and not (train & test) and not (valid & test)


def parquet_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


TITLES = {game_id(b): game_name(b) for b in range(1, N_GAMES + 1)}


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    path = tmp_path / "raw"
    path.mkdir()
    return path


def test_parquet_layout_prepare_tiny(raw, home):
    reviews = make_reviews(0)
    write_parquet_reviews(raw, reviews)
    write_games(raw, "parquet")
    result = prepare("steam", raw=raw, size="tiny", home=home, show_progress=False)
    notes = result.manifest["notes"]
    assert notes[0].startswith("steam layout parquet")
    # Expected order: year, then the file's row order (grouped by game).
    file_order = reviews.with_row_index("i").sort("game", "i").drop("i")
    check_prepared(result.path, expected(file_order, pl.col("year").cast(pl.Int64)), TITLES)
    items = pl.read_parquet(result.path / "items.parquet")
    row = items.filter(pl.col("item_key") == game_id(34)).row(0, named=True)  # app_name null
    assert row["text"] == game_name(34) and row["genres"] == "|".join(
        g for g in GENRES if g in genres_of(34))
    # item_metadata.csv joins by name, not by its re-numbered ItemId.
    meta = pl.read_csv(raw / "item_metadata.csv", infer_schema=False)
    named = {n.replace("&amp;", "&"): t.replace("_", "|") for n, t in meta.select("Name", "Tag")
             .iter_rows()}
    for text, tags in items.select("text", "tags").iter_rows():
        assert tags == named.get(text)
    assert any("tags joined by game name" in n for n in notes)


def test_parquet_layout_bool_recommend_and_determinism(raw, tmp_path):
    reviews = make_reviews(1)
    write_parquet_reviews(raw, reviews, recommend_dtype=pl.Boolean)
    write_games(raw, "parquet", metadata=False)
    events = steam.load(raw, {}).events.collect()
    assert events["label"].sum() == reviews["recommend"].sum()
    a = prepare("steam", raw=raw, size="tiny", home=tmp_path / "a", seed=5)
    b = prepare("steam", raw=raw, size="tiny", home=tmp_path / "b", seed=5)
    c = prepare("steam", raw=raw, size="tiny", home=tmp_path / "c", seed=6)
    assert parquet_bytes(a.path) == parquet_bytes(b.path)
    assert parquet_bytes(a.path) != parquet_bytes(c.path)


@pytest.mark.parametrize("name", ["australian_user_reviews.json",
                                  "australian_user_reviews.json.gz"])
def test_australian_layout_prepare_tiny(raw, home, name):
    reviews = make_reviews(2)
    latest = int(reviews["year"].max())
    write_australian(raw, reviews, name, undated_year=latest)
    write_games(raw, "steam_games.json.gz" if name.endswith(".gz") else "steam_games.json")
    result = prepare("steam", raw=raw, size="tiny", home=home, show_progress=False)
    notes = result.manifest["notes"]
    assert notes[0].startswith(f"steam layout australian ({name}")
    undated = reviews.filter(pl.col("year") == latest).height
    assert any(f"{undated} reviews posted without a year" in n and f"dated {latest}" in n
               for n in notes)  # the latest dated year is latest - 1, so the fill is latest
    assert any("1 games without an id skipped" in n for n in notes)
    ts = pl.col("year") * 10_000 + pl.col("month") * 100 + pl.col("day")
    check_prepared(result.path, expected(reviews, ts.cast(pl.Int64)), TITLES)
    items = pl.read_parquet(result.path / "items.parquet")
    assert items.filter(pl.col("item_key") == "34")["genres"][0] == "|".join(genres_of(34))


def test_steam_reviews_layout_all_positive_sampled_negatives(raw, home):
    reviews = make_reviews(3)
    write_steam_reviews(raw, reviews, "steam_reviews.json")
    write_games(raw, "steam_games.json", metadata=False)
    tables = steam.load(raw, {})
    events = tables.events.collect()
    assert tables.negatives == "sampled" and (events["label"] == 1).all()
    assert events["user_key"].str.starts_with("O'Neil 1").any()
    result = prepare("steam", raw=raw, size="tiny", home=home)
    assert any("no recommend flag" in n for n in result.manifest["notes"])
    # Same-day reviews keep file order, which is shuffled here: check dates never decrease.
    dated = reviews.select(
        pl.col("user").str.replace("user1", "O'Neil 1", literal=True), "game",
        pl.col("year") * 10_000 + pl.col("month") * 100 + pl.col("day"))
    date_of = {(u, g): d for u, g, d in dated.iter_rows()}
    items = pl.read_parquet(result.path / "items.parquet")
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))
    users = sorted(events["user_key"].unique().to_list())
    seen = {u: set(g) for u, g in events.group_by("user_key").agg("item_key").iter_rows()}
    checked = 0
    for split in ("train", "valid", "test"):
        seq = pl.read_parquet(result.path / f"seq/{split}.parquet")
        for user, history, target in seq.iter_rows():
            dates = [date_of[users[user], key_of[i]] for i in [*history, target]]
            assert dates == sorted(dates)
            assert dates[-1] == max(d for (u, _), d in date_of.items() if u == users[user])
            checked += 1
        ctr = pl.read_parquet(result.path / f"ctr/{split}.parquet")
        assert (ctr["label"] == 0).any()
        for user, _, item, label in ctr.iter_rows():
            assert (key_of[item] in seen[users[user]]) == (label == 1)
    assert checked > 10


def test_layout_detection_and_options(raw):
    with pytest.raises(MissingRawFilesError, match="no Steam reviews"):
        steam.load(raw, {})
    reviews = make_reviews(0, n_users=10)
    write_parquet_reviews(raw, reviews)
    write_steam_reviews(raw, reviews, "steam_reviews.json.gz")
    write_games(raw, "parquet")
    with pytest.raises(DataError, match="several Steam review files.*--option layout"):
        steam.load(raw, {})
    assert steam.load(raw, {"layout": "reviews"}).negatives == "sampled"
    assert steam.load(raw, {"layout": "parquet"}).negatives == "real"
    with pytest.raises(DataError, match="unknown option.*valid: layout"):
        steam.load(raw, {"format": "parquet"})
    with pytest.raises(DataError, match="layout='json'"):
        steam.load(raw, {"layout": "json"})


def test_missing_files_and_columns(raw):
    reviews = make_reviews(0, n_users=10)
    write_parquet_reviews(raw, reviews)
    pl.DataFrame({"ItemId": ["0"], "Name": ["x"], "Category": ["a"], "Tag": ["b"],
                  "class": ["0"]}).write_csv(raw / "item_metadata.csv")
    with pytest.raises(MissingRawFilesError, match="steam_games.parquet.*ItemId is a "
                                                   "re-numbering"):
        steam.load(raw, {})
    write_games(raw, "parquet", metadata=False)
    pl.read_parquet(raw / "user_reviews.parquet").drop("posted_year").write_parquet(
        raw / "user_reviews.parquet")
    with pytest.raises(DataError, match=r"user_reviews.parquet: missing column\(s\) "
                                        r"\['posted_year'\]"):
        steam.load(raw, {})
    write_parquet_reviews(raw, reviews)
    pl.read_parquet(raw / "steam_games.parquet").drop("app_name", "title").write_parquet(
        raw / "steam_games.parquet")
    with pytest.raises(DataError, match="steam_games.parquet: missing column 'app_name'"):
        steam.load(raw, {})
    write_games(raw, "parquet", metadata=False)
    (raw / "user_reviews.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="user_reviews.parquet: not a readable Parquet file"):
        steam.load(raw, {})


def test_bad_recommend_value(raw):
    reviews = make_reviews(0, n_users=10).with_columns(pl.col("recommend").cast(pl.Utf8))
    reviews = reviews.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("maybe"))
                                   .otherwise(pl.col("recommend")).alias("recommend"))
    write_parquet_reviews(raw, reviews, recommend_dtype=pl.Utf8)
    write_games(raw, "parquet", metadata=False)
    with pytest.raises(DataError, match="recommend 'maybe' is not True or False"):
        steam.load(raw, {})


def test_literal_files_bad_middle_line_and_cut_last_line(raw):
    reviews = make_reviews(4, n_users=20)
    write_australian(raw, reviews, "australian_user_reviews.json", undated_year=0)
    write_games(raw, "steam_games.json", metadata=False)
    path = raw / "australian_user_reviews.json"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:7] + ["{'user_id': 'x', 'reviews': [{'item_id': \n"]
                            + lines[7:]))
    with pytest.raises(DataError, match="australian_user_reviews.json: line 8 is neither JSON "
                                        "nor a Python literal"):
        steam.load(raw, {})
    path.write_text("".join(lines) + "{'user_id': 'cut', 'reviews': [{'funny': '', 'pos")
    tables = steam.load(raw, {})
    assert any(f"line {len(lines) + 1} is cut off" in n for n in tables.notes)
    assert tables.events.collect().filter(pl.col("user_key") == "cut").height == 0

    path.unlink()
    write_steam_reviews(raw, reviews, "steam_reviews.json")
    path = raw / "steam_reviews.json"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:9] + ["{u'username': u'x', u'date': u'2015-01-01'}\n"]
                            + lines[9:]))
    with pytest.raises(DataError, match="steam_reviews.json: line 10: expected username, "
                                        "product_id and date"):
        steam.load(raw, {})
    path.write_text("".join(lines) + "{u'username': u'cut', u'hours': 0.1, u'prod")
    tables = steam.load(raw, {})
    assert any(f"line {len(lines) + 1} is cut off" in n for n in tables.notes)
    assert tables.events.collect().filter(pl.col("user_key") == "cut").height == 0


def test_cli_bad_input_is_one_line_without_traceback(raw, home):
    reviews = make_reviews(0)
    write_australian(raw, reviews, "australian_user_reviews.json", undated_year=0)
    write_games(raw, "steam_games.json", metadata=False)
    path = raw / "australian_user_reviews.json"
    text = path.read_text().replace("Posted ", "Posted on ", 1)
    path.write_text(text)
    result = CliRunner().invoke(app, ["prepare", "steam", "--raw", str(raw), "--size", "tiny",
                                      "--home", str(home)])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    message = [line for line in result.output.splitlines() if line.strip()]
    assert len(message) == 1 and "australian_user_reviews.json: line 1: posted" in message[0]


@pytest.mark.shared_data
@pytest.mark.parametrize("size", ["tiny", "small"])
def test_shared_steam(shared_data, home, size):
    raw = shared_subdir(shared_data, "steam")
    result = prepare("steam", raw=raw, size=size, home=home, show_progress=False)
    stats = result.manifest["stats"]
    assert stats["n_items"] == 2892 and stats["n_events"] == 48_339
    for task in ("ctr", "seq"):
        for split in ("train", "valid", "test"):
            assert stats[task][split]["rows"] > 0
    ctr = pl.read_parquet(result.path / "ctr/test.parquet")
    assert 0 < ctr["label"].mean() < 1
    items = pl.read_parquet(result.path / "items.parquet")
    assert not items["text"].str.contains("&amp;", literal=True).any()
    assert items["tags"].is_not_null().sum() > 2500
