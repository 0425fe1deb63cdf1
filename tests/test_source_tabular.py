"""The csv importer (`prepare csv`, source `tabular`): damaged rows and options (issue 13, 5/14)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from recbench.core.errors import ConfigError, DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.sources import tabular

N_ITEMS, N_USERS = 200, 40


def write(raw: Path, rows: list[str] | None = None, header: str = "user,item,timestamp,rating"
          ) -> list[str]:
    """interactions.csv (8 rated items per user, in time order) + items.csv; returns the rows."""
    raw.mkdir(parents=True, exist_ok=True)
    if rows is None:
        rows = [f"u{u},i{(u * 7 + k * 13) % N_ITEMS},{1000 * u + k},{[5, 4, 1, 5][k % 4]}"
                for u in range(N_USERS) for k in range(8)]
    (raw / "interactions.csv").write_text("\n".join([header, *rows]) + "\n")
    (raw / "items.csv").write_text("item,title\n" + "".join(
        f'i{i},"Item {i}, a title"\n' for i in range(N_ITEMS)))
    return rows


def test_valid_file_loads(tmp_path):
    rows = write(tmp_path)
    tables = tabular.load(tmp_path, {})
    events = tables.events.collect()
    assert events.height == len(rows)  # ratings 5, 4 positive, 1 a real negative: none dropped
    assert events.filter(pl.col("label") == 0).height == N_USERS * 2
    assert events["ts"].dtype == pl.Int64


@pytest.mark.parametrize("column, value, expected", [
    ("timestamp", "yesterday", r"line 12, column 'timestamp': 'yesterday' is not a number"),
    ("rating", "five", r"line 12, column 'rating': 'five' is not a number"),
    ("rating", "", r"line 12, column 'rating': an empty value is not a number"),
    ("user", "", r"line 12, column 'user': empty id"),
    ("item", "  ", r"line 12, column 'item': empty id"),
])
def test_bad_value_is_an_error_naming_line_and_column(tmp_path, column, value, expected):
    """The old importer turned a text time into null and dropped a text rating or an empty id
    without a word."""
    rows = write(tmp_path)
    fields = dict(zip(["user", "item", "timestamp", "rating"], rows[10].split(","), strict=True))
    fields[column] = value
    rows[10] = ",".join(fields.values())
    write(tmp_path, rows)
    with pytest.raises(DataError, match=expected):
        tabular.load(tmp_path, {})


def test_label_must_be_zero_or_one(tmp_path):
    rows = [f"u{u},i{u + k},{k},{2 if (u, k) == (3, 2) else k % 2}" for u in range(5)
            for k in range(4)]
    write(tmp_path, rows, header="user,item,timestamp,label")
    with pytest.raises(DataError, match=r"line 16, column 'label': '2' is not a label 0 or 1"):
        tabular.load(tmp_path, {})


def test_repeated_pair_keeps_earliest_so_target_is_not_in_its_history(tmp_path, home):
    """A duplicated last row used to make the test target appear in its own history."""
    rows = write(tmp_path)
    rows += rows[-3:]  # user 39's last three rows again (same times)
    rows.append(rows[5].replace(",5,", ",9999,", 1))  # user 0's item again, later
    write(tmp_path, rows)
    tables = tabular.load(tmp_path, {})
    assert any("4 repeated (user, item) interactions dropped; the earliest is kept" in n
               for n in tables.notes), tables.notes
    events = tables.events.collect()
    assert events.select(pl.struct("user_key", "item_key").is_duplicated().any()).item() is False
    result = prepare("csv", raw=tmp_path, size="tiny", home=home)
    seq = pl.concat([pl.read_parquet(p) for p in result.path.glob("seq/t*.parquet")
                     if "negatives" not in p.name] + [pl.read_parquet(result.path /
                                                                      "seq/valid.parquet")])
    assert not seq.select(pl.col("history").list.contains(pl.col("target")).any()).item()
    assert any("repeated (user, item)" in n for n in result.manifest["notes"])


@pytest.mark.parametrize("options, expected", [
    ({"separator": ",,"}, "separator must be one ASCII character"),
    ({"separator": "\n"}, "separator must be one ASCII character"),
    ({"separator": '"'}, "separator must be one ASCII character"),
    ({"pos_threshold": "high"}, "pos_threshold must be a finite number"),
    ({"neg_threshold": float("nan")}, "neg_threshold must be a finite number"),
    ({"pos_threshold": True}, "pos_threshold must be a finite number"),
    ({"pos_threshold": 2, "neg_threshold": 3}, "must be below pos_threshold"),
    ({"user_col": ""}, "user_col must be a column name"),
    ({"interactions": "../outside.csv"}, "expected a file inside the raw folder"),
    ({"interactions": "/etc/passwd"}, "expected a file inside the raw folder"),
    ({"items": 5}, "items must be a file name"),
    ({"colour": "red"}, "unknown option"),
])
def test_options_are_validated_before_reading(tmp_path, options, expected):
    raw = tmp_path / "raw"
    write(raw)
    (tmp_path / "outside.csv").write_text("user,item\nu1,i1\n")
    with pytest.raises(ConfigError, match=expected):
        tabular.load(raw, options)


def test_tab_separator_and_named_files(tmp_path):
    raw = tmp_path / "raw"
    rows = write(raw)
    (raw / "sub").mkdir()
    (raw / "sub" / "clicks.tsv").write_text(
        "user\titem\ttimestamp\trating\n" + "".join(r.replace(",", "\t") + "\n" for r in rows))
    (raw / "sub" / "items.tsv").write_text("item\ttitle\n" + "".join(
        f"i{i}\tItem {i}, a title\n" for i in range(N_ITEMS)))
    tables = tabular.load(raw, {"separator": "\\t", "interactions": "sub/clicks.tsv",
                                "items": "sub/items.tsv"})
    assert tables.events.collect().height == len(rows)
    with pytest.raises(MissingRawFilesError, match="file not found"):
        tabular.load(raw, {"interactions": "sub/nope.csv"})
