"""The recbole source: atomic files with typed headers, plain and sequence .inter forms."""

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
from recbench.data.sources import recbole

N_ITEMS, N_USERS = 200, 80
SEQ_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def title(i: int) -> str:
    return {0: 'The "Quoted" Game: Part 1', 1: "Baldur's Gate"}.get(i, f"Game {i} Deluxe")


def write_items(raw: Path, stem: str = "Games", text_field: str = "title") -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{stem}.item").write_text(
        f"item_id:token\t{text_field}:token_seq\tsales_type:token\n"
        + "".join(f"{i}\t{'' if i == 199 else title(i)}\tVideo Games\n" for i in range(N_ITEMS)))


def plain_rows(seed: int = 11) -> list[tuple[str, str, float, int]]:
    """(user, item, rating, timestamp), shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS):
        picks = rng.choice(N_ITEMS, int(rng.integers(5, 11)), replace=False)
        for k, i in enumerate(picks):
            rating = {3: 1.0, 5: 3.0}.get(k % 6, 4.0 + k % 2)
            rows.append((f"u{u}", str(i), rating, 1_500_000_000 + 1000 * u + 37 * k))
    return [rows[j] for j in rng.permutation(len(rows))]


def write_plain(raw: Path, rows, *, rating: bool = True, timestamp: bool = True) -> None:
    cols = ["user_id:token", "item_id:token"] + (["rating:float"] if rating else []) + (
        ["timestamp:float"] if timestamp else [])
    lines = ["\t".join(cols)]
    for u, i, r, t in rows:
        lines.append("\t".join([u, i] + ([f"{r}"] if rating else []) + (
            [f"{float(t)}"] if timestamp else [])))
    write_items(raw)
    (raw / "Games.inter").write_text("\n".join(lines) + "\n")


def write_sequences(raw: Path, seed: int = 12) -> dict[str, list[str]]:
    """LLMRank style: valid row = sequence minus its last item, test row = full sequence."""
    rng = np.random.default_rng(seed)
    write_items(raw)
    full, valid, test = {}, [SEQ_HEADER], [SEQ_HEADER]
    for u in range(N_USERS):
        seq = [str(i) for i in rng.choice(N_ITEMS, int(rng.integers(5, 11)), replace=False)]
        full[str(u)] = seq
        valid.append(f"{u}\t{' '.join(seq[:-2])}\t{seq[-2]}\n")
        if u != 5:  # user 5 has only a valid row
            test.append(f"{u}\t{' '.join(seq[:-1])}\t{seq[-1]}\n")
    full["5"] = full["5"][:-1]
    (raw / "Games.valid.inter").write_text("".join(valid))
    (raw / "Games.test.inter").write_text("".join(test))
    return full


def read(path: Path, rel: str) -> pl.DataFrame:
    return pl.read_parquet(path / f"{rel}.parquet")


def test_plain_form_with_ratings(tmp_path, home):
    rows = plain_rows()
    write_plain(tmp_path / "raw", rows)
    result = prepare("recbole", raw=tmp_path / "raw", size="tiny", home=home)
    notes = result.manifest["notes"]
    neutral = sum(r[2] == 3.0 for r in rows)
    assert any(f"{neutral} ratings between 2 and 4" in n for n in notes), notes
    assert any("dropped 1 items with empty text" in n for n in notes), notes
    items = read(result.path, "items")
    text = dict(zip(items["item_key"], items["text"], strict=True))
    used = {r[1] for r in rows}
    for i in ("0", "1"):
        if i in used:
            assert text[i] == title(int(i))
    assert "199" not in text
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))

    kept = [r for r in rows if r[2] != 3.0 and r[1] != "199"]
    users = sorted({r[0] for r in kept})
    rating = {(r[0], r[1]): r[2] for r in rows}
    pos: dict[str, list[str]] = {}
    for u, i, r, _ in sorted(kept, key=lambda r: r[3]):
        if r >= 4:
            pos.setdefault(u, []).append(i)
    ctr = pl.concat([read(result.path, f"ctr/{s}") for s in ("train", "valid", "test")])
    assert set(ctr["label"]) == {0, 1}
    for u, hist, item, label in ctr.iter_rows():
        r = rating[(users[u], key_of[item])]
        assert (r >= 4) if label else (r <= 2)
        assert [key_of[h] for h in hist] == pos[users[u]][:-2][-20:]
    seq = pl.concat([read(result.path, f"seq/{s}") for s in ("train", "valid", "test")])
    for u, hist, target in seq.iter_rows():
        assert [key_of[h] for h in hist] + [key_of[target]] == pos[users[u]][-21:]


def test_plain_split_files_without_rating_or_time(tmp_path):
    raw = tmp_path / "raw"
    write_items(raw)
    header = "user_id:token\titem_id:token\n"
    (raw / "Games.test.inter").write_text(header + "a\t3\nb\t4\n")
    (raw / "Games.train.inter").write_text(header + "a\t1\na\t2\nb\t7\n")
    (raw / "Games.valid.inter").write_text(header + "b\t9\n")
    tables = recbole.load(raw, {})
    assert [p.name for p in tables.source_files] == [
        "Games.item", "Games.train.inter", "Games.valid.inter", "Games.test.inter"]
    ev = tables.events.collect()
    assert ev["item_key"].to_list() == ["1", "2", "7", "9", "3", "4"]
    assert ev["ts"].to_list() == list(range(6))
    assert tables.negatives == "sampled" and set(ev["label"]) == {1}


def test_sequence_form_uses_longest(tmp_path, home):
    full = write_sequences(tmp_path / "raw")
    tables = recbole.load(tmp_path / "raw", {})
    assert tables.negatives == "sampled"
    ev = tables.events.collect()
    got = {u: g.sort("ts")["item_key"].to_list()
           for (u,), g in ev.group_by("user_key", maintain_order=True)}
    assert got == full
    result = prepare("recbole", raw=tmp_path / "raw", size="tiny", home=home)
    assert any("the longest sequence per user is used" in n for n in result.manifest["notes"])
    items = read(result.path, "items")
    key_of = dict(zip(items["item_id"], items["item_key"], strict=True))
    users = sorted(full)
    seq = pl.concat([read(result.path, f"seq/{s}") for s in ("train", "valid", "test")])
    assert seq.height == N_USERS
    for u, hist, target in seq.iter_rows():
        expect = [i for i in full[users[u]] if i != "199"]
        assert [key_of[h] for h in hist] + [key_of[target]] == expect[-21:]


def test_sequence_rows_of_one_file(tmp_path):
    raw = tmp_path / "raw"
    write_items(raw)
    # RecBole's augmented training rows: every prefix of a user's sequence.
    (raw / "Games.train.inter").write_text(
        SEQ_HEADER + "x\t1\t2\nx\t1 2\t3\nx\t1 2 3\t4\ny\t\t8\ny\t8\t9\n")
    ev = recbole.load(raw, {}).events.collect()
    assert ev.filter(pl.col("user_key") == "x")["item_key"].to_list() == ["1", "2", "3", "4"]
    assert ev.filter(pl.col("user_key") == "y")["item_key"].to_list() == ["8", "9"]


def test_text_field_option(tmp_path):
    raw = tmp_path / "raw"
    write_plain(raw, plain_rows())
    write_items(raw, text_field="movie_title")
    with pytest.raises(DataError, match=r"Games\.item: no text field 'title'.*movie_title:"
                                        r"token_seq.*-o text_field=NAME"):
        recbole.load(raw, {})
    tables = recbole.load(raw, {"text_field": "movie_title"})
    assert tables.text_attribute == "movie_title"
    assert tables.items["text"][1] == title(1)


def test_determinism(tmp_path):
    write_plain(tmp_path / "raw", plain_rows())
    a = prepare("recbole", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h1")
    b = prepare("recbole", raw=tmp_path / "raw", size="tiny", home=tmp_path / "h2")
    for rel in a.manifest["files"]:
        assert (a.path / rel).read_bytes() == (b.path / rel).read_bytes()


def test_several_datasets_need_a_name(tmp_path):
    raw = tmp_path / "raw"
    write_plain(raw, plain_rows())
    write_items(raw, stem="Other")
    with pytest.raises(DataError, match=r"several RecBole datasets \(Games\.item, Other\.item\)"
                                        r".*-o name=NAME"):
        recbole.load(raw, {})
    assert recbole.load(raw, {"name": "Games"}).source_files[0].name == "Games.item"
    with pytest.raises(MissingRawFilesError, match="found Other.item but no interactions"):
        recbole.load(raw, {"name": "Other"})


def test_missing_files_and_options(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(MissingRawFilesError, match=r"expected RecBole atomic files NAME\.item"):
        recbole.load(tmp_path / "raw", {})
    with pytest.raises(DataError, match=r"unknown option\(s\) \['txt'\].*valid: name"):
        recbole.load(tmp_path / "raw", {"txt": "title"})


def test_bad_inputs_name_file_line_and_field(tmp_path):
    raw = tmp_path / "raw"
    write_plain(raw, plain_rows())
    path = raw / "Games.inter"
    lines = path.read_text().splitlines()
    good = list(lines)
    fields = lines[4].split("\t")
    lines[4] = "\t".join(fields[:2] + ["four"] + fields[3:])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"Games\.inter: line 5, field 'rating': 'four' is not a "
                                        "number"):
        recbole.load(raw, {})
    path.write_text("\n".join(good[:6] + ["u1\t3"] + good[6:]) + "\n")
    with pytest.raises(DataError, match=r"Games\.inter: malformed data at line 7: 2 fields, "
                                        r"expected 4"):
        recbole.load(raw, {})
    path.write_text("\n".join(good[:6] + ["u1\t3\t4.0\t1.0\textra"] + good[6:]) + "\n")
    with pytest.raises(DataError, match=r"Games\.inter: malformed data at line 7"):
        recbole.load(raw, {})
    path.write_text("user_id:token\titem:token\n" + "u\t1\n")
    with pytest.raises(DataError, match=r"Games\.inter: no field\(s\) \['item_id'\]"):
        recbole.load(raw, {})
    path.write_text("user_id:token\titem_id:tokn\n" + "u\t1\n")
    with pytest.raises(DataError, match=r"header column 'item_id:tokn' has an unknown type"):
        recbole.load(raw, {})


def test_mixed_forms_rejected(tmp_path):
    raw = tmp_path / "raw"
    write_sequences(raw)
    (raw / "Games.train.inter").write_text("user_id:token\titem_id:token\nu\t1\n")
    with pytest.raises(DataError, match="mix the plain and sequence forms"):
        recbole.load(raw, {})


def test_cli_error_is_one_line(tmp_path, home):
    raw = tmp_path / "raw"
    write_plain(raw, plain_rows())
    write_items(raw, text_field="name")
    result = CliRunner().invoke(app, ["prepare", "recbole", "--raw", str(raw), "--size", "tiny",
                                      "--home", str(home)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "no text field 'title'" in lines[0]


@pytest.mark.shared_data
def test_real_games_6k(shared_data, home):
    raw = shared_subdir(shared_data, "amazon-games")
    result = prepare("recbole", raw=raw, size="tiny", home=home)
    stats = result.manifest["stats"]
    assert stats["n_items"] == 16_859 and stats["n_users"] == 50_546
    assert stats["n_events"] == 440_264
    seq = read(result.path, "seq/test")
    assert seq.height == 100 and seq["history"].list.len().max() == 20
