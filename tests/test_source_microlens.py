"""The `microlens` source on generated files in the official layouts, and on the real folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.protocols.recbench_v1 import MAX_HISTORY
from recbench.data.sources import microlens
from tests.conftest import shared_subdir

N_ITEMS = 200
N_USERS = 60
T0 = 1_583_079_640_948  # epoch milliseconds, as in the official pairs file


def title(i: int) -> str:
    return f'Video {i}, funny cats # comic # "Two Yuan"'


def write_microlens(folder: Path, variant: str = "50k", pairs: str = "csv") -> list[tuple]:
    """Titles + pairs of one release; returns the clicks (user, item, ms) in file order."""
    folder.mkdir(parents=True, exist_ok=True)
    if variant == "50k":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")  # the official file ends lines in CRLF
        writer.writerow(["item", "title"])
        writer.writerows([i, title(i)] for i in range(1, N_ITEMS + 1))
        (folder / "MicroLens-50k_titles.csv").write_text(buf.getvalue(), newline="")
    else:
        # No header, `item, title`, titles unquoted (commas inside).
        (folder / "MicroLens-100k_title_en.csv").write_text(
            "".join(f"{i}, {title(i).replace(chr(34), '')}\n" for i in range(1, N_ITEMS + 1)))
    clicks = []
    for u in range(1, N_USERS + 1):
        n = 4 + u % 6
        for k in range(n):
            # Every third user clicks twice in the same millisecond: file order breaks the tie.
            ms = T0 + u * 10_000_000 + (k - (k % 2 if u % 3 == 0 else 0)) * 60_000
            clicks.append((u, (u * 17 + k * 5) % N_ITEMS + 1, ms))
        clicks.append((u, (u * 17) % N_ITEMS + 1, T0 + u * 10_000_000 + n * 60_000))  # repeat
        if u % 5 == 0:
            clicks.append((u, 9000 + u, T0 + u * 10_000_000 + 1))  # no title
    # Written in a shuffled order that keeps each user's same-time pairs in order.
    clicks.sort(key=lambda c: ((c[2] // 60_000) * 7919 % 104729, c[0]))
    stem = f"MicroLens-{variant}_pairs"
    if pairs == "csv":
        (folder / f"{stem}.csv").write_text(
            "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in clicks))
    else:
        seqs: dict[int, list[int]] = {}
        for u, i, _ in sorted(clicks, key=lambda c: c[2]):
            seqs.setdefault(u, []).append(i)
        (folder / f"{stem}.tsv").write_text(
            "".join(f"{u}\t{' '.join(map(str, s))}\n" for u, s in seqs.items()))
    return clicks


def expected_sequences(clicks, known: set[str]) -> dict[str, list[str]]:
    """Reference: by timestamp (ties: file order), first click per item, titled items only."""
    out: dict[str, list[str]] = {}
    for u, i, _ in sorted(clicks, key=lambda c: c[2]):
        seq = out.setdefault(str(u), [])
        if str(i) in known and str(i) not in seq:
            seq.append(str(i))
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("microlens")
    clicks = write_microlens(root / "raw")
    result = prepare("microlens", raw=root / "raw", size="tiny", home=root / "home",
                     show_progress=False)
    return root, clicks, result


def read(result, rel: str) -> pl.DataFrame:
    return pl.read_parquet(result.path / f"{rel}.parquet")


def keyed(result) -> tuple[dict[int, str], dict[int, str]]:
    items = read(result, "items")
    item_key = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    return item_key, dict(enumerate(sorted(str(u) for u in range(1, N_USERS + 1))))


def check_sequences(result, clicks) -> None:
    item_key, user_key = keyed(result)
    expected = expected_sequences(clicks, set(item_key.values()))
    n = 0
    for split in ("train", "valid", "test"):
        for user_id, history, target in read(result, f"seq/{split}").iter_rows():
            full = expected[user_key[user_id]]
            assert [item_key[i] for i in history] + [item_key[target]] == \
                full[-(len(history) + 1):][-MAX_HISTORY - 1:]
            n += 1
    assert n == sum(len(v) >= 2 for v in expected.values())


def test_titles_with_commas_are_the_text(prepared):
    _, _, result = prepared
    items = read(result, "items")
    texts = dict(zip(items["item_key"].to_list(), items["text"].to_list(), strict=True))
    assert texts["7"] == title(7)
    # Items that occur in a click (the protocol keeps those), never the untitled ids.
    assert len(texts) > 122 and set(texts) <= {str(i) for i in range(1, N_ITEMS + 1)}


def test_clicks_without_title_are_counted(prepared):
    _, clicks, result = prepared
    dedup = len({(u, i) for u, i, _ in clicks})
    untitled = sum(i > N_ITEMS for _, i, _ in clicks)
    notes = result.manifest["notes"]
    assert f"dropped {untitled} of {dedup} interactions on items without text" in notes
    assert any(f"{len(clicks) - dedup} repeated (user, item) clicks dropped" in n for n in notes)


def test_sequences_by_timestamp(prepared):
    _, clicks, result = prepared
    check_sequences(result, clicks)


def test_ctr_two_positives_two_unseen_negatives(prepared):
    _, clicks, result = prepared
    item_key, user_key = keyed(result)
    expected = expected_sequences(clicks, set(item_key.values()))
    for split in ("train", "valid", "test"):
        df = read(result, f"ctr/{split}")
        assert df.height > 0
        for (user_id,), rows in df.group_by(["user_id"]):
            user = user_key[user_id]
            pos = [item_key[i] for i in rows.filter(pl.col("label") == 1)["item_id"]]
            neg = {item_key[i] for i in rows.filter(pl.col("label") == 0)["item_id"]}
            assert pos == expected[user][-2:]
            assert len(neg) == 2 and not neg & {str(i) for u, i, _ in clicks if str(u) == user}


def test_same_seed_same_bytes(prepared, tmp_path):
    root, _, first = prepared
    second = prepare("microlens", raw=root / "raw", size="tiny", home=tmp_path,
                     show_progress=False)
    for rel in first.manifest["files"]:
        assert (first.path / rel).read_bytes() == (second.path / rel).read_bytes(), rel


def test_100k_naming_headerless_titles(tmp_path, home):
    clicks = write_microlens(tmp_path, variant="100k")
    result = prepare("microlens", raw=tmp_path, size="tiny", home=home, show_progress=False)
    texts = dict(read(result, "items").select("item_key", "text").iter_rows())
    assert texts["12"] == title(12).replace('"', "")  # split on the first comma only
    check_sequences(result, clicks)
    assert {f["file"] for f in result.manifest["raw_files"]} == {
        "MicroLens-100k_pairs.csv", "MicroLens-100k_title_en.csv"}


def test_tsv_sequences(tmp_path, home):
    clicks = write_microlens(tmp_path, pairs="tsv")
    result = prepare("microlens", raw=tmp_path, size="tiny", home=home, show_progress=False)
    check_sequences(result, clicks)
    assert any("ts is the position" in n for n in result.manifest["notes"])


def test_variant_option(tmp_path):
    write_microlens(tmp_path)
    with pytest.raises(MissingRawFilesError, match="MicroLens-100k_pairs.csv"):
        microlens.load(tmp_path, {"variant": "100k"})
    with pytest.raises(DataError, match="variant must be one of auto, 50k, 100k"):
        microlens.load(tmp_path, {"variant": "1m"})
    with pytest.raises(DataError, match=r"unknown option.*'size'.*valid: variant"):
        microlens.load(tmp_path, {"size": "50k"})


def test_bad_input(tmp_path, home):
    write_microlens(tmp_path)
    pairs = tmp_path / "MicroLens-50k_pairs.csv"
    good = pairs.read_text()
    pairs.write_text(good.replace("user,item,timestamp", "user,item,time", 1))
    with pytest.raises(DataError, match=r"MicroLens-50k_pairs.csv: missing column\(s\) "
                                        r"\['timestamp'\]"):
        prepare("microlens", raw=tmp_path, size="tiny", home=home)
    lines = good.splitlines()
    lines[5] = lines[5].replace(",", ",v", 1)
    pairs.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 6, column 'item'"):
        microlens.load(tmp_path, {})
    pairs.write_text(good)
    titles = tmp_path / "MicroLens-50k_titles.csv"
    titles.unlink()
    with pytest.raises(MissingRawFilesError, match="MicroLens-50k_titles.csv"):
        microlens.load(tmp_path, {})


def test_headerless_title_without_comma_names_the_line(tmp_path):
    write_microlens(tmp_path, variant="100k")
    path = tmp_path / "MicroLens-100k_title_en.csv"
    lines = path.read_text().splitlines()
    lines[8] = "9 no comma here"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"MicroLens-100k_title_en.csv: line 9: '9 no comma"):
        microlens.load(tmp_path, {})


def test_cli_titles_only_is_one_line_error(tmp_path):
    write_microlens(tmp_path / "raw")
    (tmp_path / "raw" / "MicroLens-50k_pairs.csv").unlink()
    result = CliRunner().invoke(app, ["prepare", "microlens", "--raw", str(tmp_path / "raw"),
                                      "--size", "tiny", "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "MicroLens-50k_pairs.csv" in result.output


@pytest.mark.shared_data
def test_real_folder_has_titles_only(shared_data, home):
    raw = shared_subdir(shared_data, "microlens")
    with pytest.raises(MissingRawFilesError) as info:
        prepare("microlens", raw=raw, size="tiny", home=home)
    message = str(info.value)
    print(message)
    assert "MicroLens-50k_pairs.csv" in message and "titles alone" in message
    # The titles themselves are readable in both namings.
    for name, n in (("MicroLens-50k_titles.csv", 19_000), ("MicroLens-100k_title_en.csv", 19_000)):
        titles = microlens._titles(raw / name, [])
        assert titles.height > n and titles["item_key"].is_unique().all()
