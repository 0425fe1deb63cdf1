"""The `mind` source on generated files in the official MIND layout, and on the real subset."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.protocols.recbench_v1 import MAX_HISTORY
from recbench.data.sources import mind
from tests.conftest import shared_subdir

N_NEWS = 200
N_USERS = 60
START = dt.datetime(2019, 11, 9, 0, 5, 7)


def mind_time(t: dt.datetime) -> str:
    """MIND's `11/12/2019 2:14:46 PM`: no zero padding of month, day and hour."""
    hour = t.hour % 12 or 12
    return (f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} "
            f"{'AM' if t.hour < 12 else 'PM'}")


def news_id(i: int) -> str:
    return f"N{(i % N_NEWS) + 1}"


def title(n: str) -> str:
    return f'Title of {n}: "quoted" words'


def write_mind(folder: Path, labelled: bool = True) -> dict:
    """news.tsv + behaviors.tsv; returns what a test needs to check the result independently."""
    folder.mkdir(parents=True, exist_ok=True)
    news = [
        f"{n}\tcat{i % 5}\tsub{i % 9}\t{title(n)}\tAbstract with \"quotes\"\t"
        f"https://assets.msn.com/labs/mind/AA{i}.html\t"
        f'[{{"Label": "X{i}", "Type": "G", "SurfaceForms": ["x"]}}]\t[]'
        for i in range(N_NEWS) for n in [news_id(i)]
    ]
    (folder / "news.tsv").write_text("\n".join(news) + "\n")

    lines, impressions = [], []  # impressions: (user, time, line, [(item, label)], history)
    impression_id = 1
    for u in range(N_USERS):
        user = f"U{1000 + u * 37}"
        if u % 7 == 0:
            history = []
        else:
            history = [news_id(u * 7 + k) for k in range(4)]
            history.insert(2, f"N{9000 + u % 5}")  # a news id without a news.tsv row
            history.append(history[0])  # a repeated click in the history
        # Written out of time order: the earliest impression is not the first line.
        for j in (2, 0, 1):
            when = START + dt.timedelta(hours=u, minutes=37 * j)
            shown = [(news_id(u * 11 + j * 5 + k * 3), int(k == 0 or (j == 1 and k == 2)))
                     for k in range(5)]
            shown.insert(1, (f"N{9500 + u}", 0))
            if j == 2:
                shown.append((f"N{9600 + u}", 1))  # a click on news without a row
                shown.append((history[-1] if history else news_id(u), 1))  # seen before
            token = (lambda i, lab: f"{i}-{lab}") if labelled else (lambda i, lab: i)
            lines.append(f"{impression_id}\t{user}\t{mind_time(when)}\t{' '.join(history)}\t"
                         f"{' '.join(token(i, lab) for i, lab in shown)}")
            impressions.append((user, when, impression_id, shown, history))
            impression_id += 1
    (folder / "behaviors.tsv").write_text("\n".join(lines) + "\n")
    return {"impressions": impressions}


def expected_positives(impressions, known: set[str]) -> dict[str, list[str]]:
    """Reference: earliest impression's history, then clicks by time, first per item, text only."""
    by_user: dict[str, list] = {}
    for user, when, imp, shown, history in impressions:
        by_user.setdefault(user, []).append((when, imp, shown, history))
    out = {}
    for user, rows in by_user.items():
        rows.sort(key=lambda r: (r[0], r[1]))
        seq = list(rows[0][3])
        for _, _, shown, _ in rows:
            seq += [item for item, label in shown if label == 1]
        seen, dedup = set(), []
        for item in seq:
            if item not in seen:
                seen.add(item)
                dedup.append(item)
        out[user] = [i for i in dedup if i in known]
    return out


def expected_ctr(impressions, known: set[str]) -> dict[str, list]:
    """Reference: every shown item with text, labels as logged, impression time order."""
    out: dict[str, list] = {}
    for user, _, _, shown, history in sorted(impressions, key=lambda r: (r[0], r[1], r[2])):
        hist = [h for h in history if h in known][-MAX_HISTORY:]
        if not hist:
            continue
        out.setdefault(user, []).extend(
            (item, label, tuple(hist)) for item, label in shown if item in known)
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("mind")
    info = write_mind(root / "raw")
    result = prepare("mind", raw=root / "raw", size="tiny", home=root / "home",
                     show_progress=False)
    return root, info, result


def read(result, rel: str) -> pl.DataFrame:
    return pl.read_parquet(result.path / f"{rel}.parquet")


def keyed(result) -> tuple[dict[int, str], dict[int, str]]:
    """item_id -> news id, and user_id -> user key (dense ids over the sorted keys)."""
    items = read(result, "items")
    item_key = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    users = sorted(f"U{1000 + u * 37}" for u in range(N_USERS))
    return item_key, dict(enumerate(users))


def test_items_are_news_rows_with_titles(prepared):
    _, _, result = prepared
    items = read(result, "items")
    assert items.height == N_NEWS
    row = items.filter(pl.col("item_key") == "N17").row(0, named=True)
    assert row["text"] == title("N17")  # the '"' in titles survives (no CSV quoting)
    assert row["category"] == "cat1" and row["subcategory"] == "sub7"
    assert items["item_key"].str.slice(1).cast(pl.Int64).max() == N_NEWS  # no N9xxx


def test_missing_news_are_counted(prepared):
    _, info, result = prepared
    known = {news_id(i) for i in range(N_NEWS)}
    referenced = {i for _, _, _, shown, hist in info["impressions"]
                  for i in [*hist, *(s for s, _ in shown)]}
    missing = len(referenced - known)
    notes = " ".join(result.manifest["notes"])
    assert f"{missing} of the {len(referenced)} news ids in behaviors.tsv have no news.tsv row" \
        in notes
    n_rows = sum(len(shown) for *_, shown, _ in info["impressions"])
    n_missing_rows = sum(s not in known for *_, shown, _ in info["impressions"] for s, _ in shown)
    assert f"dropped {n_missing_rows} of {n_rows} impression rows" in notes


def test_sequences_oldest_first(prepared):
    _, info, result = prepared
    item_key, user_key = keyed(result)
    expected = expected_positives(info["impressions"], set(item_key.values()))
    seen_users = 0
    for split in ("train", "valid", "test"):
        for user_id, history, target in read(result, f"seq/{split}").iter_rows():
            full = expected[user_key[user_id]]
            assert [item_key[i] for i in history] + [item_key[target]] == \
                full[-(len(history) + 1):]
            assert len(history) == min(len(full) - 1, MAX_HISTORY)
            seen_users += 1
    assert seen_users == sum(len(v) >= 2 for v in expected.values())


def test_ctr_rows_are_the_impression_log(prepared):
    _, info, result = prepared
    item_key, user_key = keyed(result)
    expected = expected_ctr(info["impressions"], set(item_key.values()))
    got: dict[str, list] = {}
    for split in ("train", "valid", "test"):
        df = read(result, f"ctr/{split}")
        assert set(df["label"].unique()) == {0, 1}
        for user_id, history, item_id, label in df.iter_rows():
            got.setdefault(user_key[user_id], []).append(
                (item_key[item_id], label, tuple(item_key[h] for h in history)))
    assert got == expected


def test_event_times_and_history_placement(tmp_path):
    info = write_mind(tmp_path)
    tables = mind.load(tmp_path, {})
    events = tables.events.collect()
    user, when, _, _, history = min((r for r in info["impressions"] if r[0] == "U1037"),
                                    key=lambda r: r[1])
    epoch = int(when.replace(tzinfo=dt.timezone.utc).timestamp())
    mine = events.filter(pl.col("user_key") == user)
    dedup = list(dict.fromkeys(history))
    # The history sits just before the earliest impression, in order, strictly earlier.
    assert mine["item_key"].to_list()[:len(dedup)] == dedup
    assert mine["ts"].to_list()[:len(dedup)] == [epoch - len(history) + i
                                                 for i in range(len(dedup))]
    imps = tables.impressions.collect()
    assert imps.schema == pl.Schema({"user_key": pl.Utf8, "impression": pl.Int64,
                                     "ts": pl.Int64, "item_key": pl.Utf8, "label": pl.Int8})
    # The history is given once per impression, not copied onto each shown item.
    hists = tables.impression_histories.collect()
    assert hists.schema == pl.Schema({"impression": pl.Int64, "history": pl.List(pl.Utf8)})
    assert hists["impression"].is_unique().all()
    first = imps.filter(pl.col("ts") == epoch)["impression"][0]
    assert hists.filter(pl.col("impression") == first)["history"][0].to_list() == history


def test_known_time_parses():
    assert mind_time(dt.datetime(2019, 11, 12, 14, 14, 46)) == "11/12/2019 2:14:46 PM"
    df = pl.DataFrame({"t": ["11/12/2019 2:14:46 PM", "11/12/2019 12:00:01 AM"]})
    epoch = df.select(pl.col("t").str.strptime(pl.Datetime("us"), mind.TIME_FORMAT)
                      .dt.epoch("s"))["t"].to_list()
    assert epoch == [1573568086, 1573516801]


def test_same_seed_same_bytes(prepared, tmp_path):
    root, _, first = prepared
    second = prepare("mind", raw=root / "raw", size="tiny", home=tmp_path, show_progress=False)
    for rel in first.manifest["files"]:
        assert (first.path / rel).read_bytes() == (second.path / rel).read_bytes(), rel
    third = prepare("mind", raw=root / "raw", size="tiny", home=tmp_path / "s1", seed=1,
                    show_progress=False)
    assert third.manifest["content_hash"] != first.manifest["content_hash"]


def test_test_split_without_labels_is_refused(tmp_path, home):
    write_mind(tmp_path / "raw", labelled=False)
    with pytest.raises(DataError, match=r"line 1: .*no click label.*test split"):
        prepare("mind", raw=tmp_path / "raw", size="tiny", home=home)


def test_bad_label_names_the_line(tmp_path, home):
    write_mind(tmp_path)
    path = tmp_path / "behaviors.tsv"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace("-0", "-x", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"behaviors.tsv: line 5, column 'impressions'"):
        mind.load(tmp_path, {})


def test_bad_time_names_the_line(tmp_path):
    write_mind(tmp_path)
    path = tmp_path / "behaviors.tsv"
    lines = path.read_text().splitlines()
    fields = lines[6].split("\t")
    fields[2] = "2019-11-12 14:14:46"
    lines[6] = "\t".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 7, column 'time': '2019-11-12 14:14:46'"):
        mind.load(tmp_path, {})


def test_short_and_long_lines_name_the_line(tmp_path):
    write_mind(tmp_path)
    path = tmp_path / "behaviors.tsv"
    good = path.read_text().splitlines()
    short = good.copy()
    short[9] = "\t".join(short[9].split("\t")[:4])  # no impressions column
    path.write_text("\n".join(short) + "\n")
    with pytest.raises(DataError, match=r"line 10"):
        mind.load(tmp_path, {})
    long = good.copy()
    long[11] += "\textra"
    path.write_text("\n".join(long) + "\n")
    with pytest.raises(DataError, match=r"behaviors.tsv: malformed data at line 12"):
        mind.load(tmp_path, {})


def test_cli_one_line_error_without_traceback(tmp_path):
    write_mind(tmp_path / "raw")
    path = tmp_path / "raw" / "behaviors.tsv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("PM", "XM").replace("AM", "XM")
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["prepare", "mind", "--raw", str(tmp_path / "raw"),
                                      "--size", "tiny", "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "behaviors.tsv: line 3, column 'time'" in result.output


def test_missing_files(tmp_path, home):
    with pytest.raises(MissingRawFilesError, match="behaviors.tsv"):
        prepare("mind", raw=tmp_path, size="tiny", home=home)
    write_mind(tmp_path)
    (tmp_path / "news.tsv").unlink()
    with pytest.raises(MissingRawFilesError, match="news.tsv"):
        mind.load(tmp_path, {})


def test_unknown_option(tmp_path):
    with pytest.raises(DataError, match="unknown option.*'colour'.*valid: none"):
        mind.load(tmp_path, {"colour": "red"})


def test_official_folders_below_prefer_train(tmp_path):
    write_mind(tmp_path / "MINDsmall_dev")
    write_mind(tmp_path / "MINDsmall_train")
    (tmp_path / "MINDsmall_dev" / "behaviors.tsv").write_text("garbage\n")
    tables = mind.load(tmp_path, {})
    assert tables.source_files[1] == tmp_path / "MINDsmall_train" / "behaviors.tsv"
    assert any("using MINDsmall_train" in n for n in tables.notes)


@pytest.mark.shared_data
def test_real_subset(shared_data, tmp_path):
    raw = shared_subdir(shared_data, "mind")
    result = prepare("mind", raw=raw, size="tiny", home=tmp_path, show_progress=False)
    stats = result.manifest["stats"]
    print(stats, *result.manifest["notes"], sep="\n")
    assert stats["n_items"] > 122 and stats["n_users"] > 100
    for task in ("ctr", "seq"):
        for split in ("train", "valid", "test"):
            assert stats[task][split]["rows"] > 0, (task, split)
    test = read(result, "ctr/test")
    assert set(test["label"].unique()) == {0, 1}
    assert any("have no news.tsv row" in n for n in result.manifest["notes"])


def test_repeated_impression_id_keeps_its_first_line(tmp_path):
    """Issue 13, class 5: a repeated impression id used to merge two lines into one impression."""
    raw = tmp_path / "raw"
    write_mind(raw)
    path = raw / "behaviors.tsv"
    lines = path.read_text().splitlines()
    first = lines[0].split("\t")
    clone = "\t".join([first[0], "U999999", *first[2:]])  # same id, another user
    path.write_text("\n".join([*lines, clone, lines[1]]) + "\n")
    tables = mind.load(raw, {})
    assert any("2 lines with a repeated impression id dropped" in n for n in tables.notes)
    shown = tables.impressions.collect()
    assert "U999999" not in shown["user_key"].to_list()
    one = shown.filter(pl.col("impression") == int(first[0]))
    assert one["user_key"].unique().to_list() == [first[1]]
    assert one.height == len(first[4].split())
