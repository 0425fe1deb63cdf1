"""The `hm` source on generated files in the official Kaggle layout, and on the real subset."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from recbench.cli.app import app
from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.prepare import prepare
from recbench.data.protocols.recbench_v1 import MAX_HISTORY
from recbench.data.sources import hm
from tests.conftest import shared_subdir

N_ARTICLES = 200
N_USERS = 60
ARTICLE_COLUMNS = (
    "article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,"
    "graphical_appearance_no,graphical_appearance_name,colour_group_code,colour_group_name,"
    "perceived_colour_value_id,perceived_colour_value_name,perceived_colour_master_id,"
    "perceived_colour_master_name,department_no,department_name,index_code,index_name,"
    "index_group_no,index_group_name,section_no,section_name,garment_group_no,"
    "garment_group_name,detail_desc").split(",")
DAY0 = dt.date(2018, 9, 20)


def article(i: int) -> int:
    return 108775015 + i * 1013


def customer(u: int) -> str:
    return hashlib.sha256(str(u).encode()).hexdigest()


def desc(i: int) -> str:
    return "" if i % 25 == 3 else f'Jersey top {i}, with "narrow" straps.'


def write_hm(folder: Path, *, index_col: bool = False, zero_articles: bool = True,
             zero_transactions: bool = True) -> list[tuple[str, int, int]]:
    """articles.csv + transactions_train.csv; returns the purchases (customer, day, article)."""
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(([""] if index_col else []) + ARTICLE_COLUMNS)
    for i in range(N_ARTICLES):
        aid = f"0{article(i)}" if zero_articles else str(article(i))
        values = {c: f"{c}-{i % 4}" for c in ARTICLE_COLUMNS}
        values.update(article_id=aid, product_code=str(article(i) // 1000),
                      prod_name=f"Strap top {i}", detail_desc=desc(i))
        writer.writerow(([str(i * 2)] if index_col else []) + [values[c] for c in ARTICLE_COLUMNS])
    (folder / "articles.csv").write_text(buf.getvalue())

    purchases = []
    for u in range(N_USERS):
        n = 4 + u % 5
        for k in range(n):
            purchases.append((customer(u), k // 2, article((u * 13 + k * 7) % N_ARTICLES)))
        purchases.append((customer(u), n // 2, article(u * 13 % N_ARTICLES)))  # a re-purchase
        if u % 6 == 0:
            purchases.append((customer(u), 0, 999000001 + u))  # not in articles.csv
    # Official order: sorted by day, customers interleaved within a day.
    purchases.sort(key=lambda p: p[1])
    lines = ["t_dat,customer_id,article_id,price,sales_channel_id"]
    for user, day, aid in purchases:
        text_id = f"0{aid}" if zero_transactions else str(aid)
        lines.append(f"{DAY0 + dt.timedelta(days=day)},{user},{text_id},0.0508305084745762,2")
    (folder / "transactions_train.csv").write_text("\n".join(lines) + "\n")
    return purchases


def expected_sequences(purchases, known: set[str]) -> dict[str, list[str]]:
    """Reference: file order within a day, days ascending, first purchase per article."""
    out: dict[str, list[str]] = {}
    for user, _, aid in sorted(purchases, key=lambda p: p[1]):
        seq = out.setdefault(user, [])
        if str(aid) in known and str(aid) not in seq:
            seq.append(str(aid))
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("hm")
    purchases = write_hm(root / "raw")
    result = prepare("hm", raw=root / "raw", size="tiny", home=root / "home",
                     show_progress=False)
    return root, purchases, result


def read(result, rel: str) -> pl.DataFrame:
    return pl.read_parquet(result.path / f"{rel}.parquet")


def keyed(result) -> tuple[dict[int, str], dict[int, str]]:
    items = read(result, "items")
    item_key = dict(zip(items["item_id"].to_list(), items["item_key"].to_list(), strict=True))
    return item_key, dict(enumerate(sorted(customer(u) for u in range(N_USERS))))


def test_items_text_is_detail_desc_with_fallback(prepared):
    _, _, result = prepared
    items = read(result, "items")
    assert items["item_key"].str.starts_with("0").sum() == 0
    texts = dict(zip(items["item_key"].to_list(), items["text"].to_list(), strict=True))
    assert texts[str(article(5))] == desc(5)  # commas and quotes survive CSV quoting
    assert texts[str(article(3))] == "Strap top 3"  # empty detail_desc -> prod_name
    assert {"prod_name", "product_type_name", "garment_group_name"} <= set(items.columns)
    n_empty = sum(desc(i) == "" for i in range(N_ARTICLES))
    assert any(f"{n_empty} of {N_ARTICLES} articles have no detail_desc" in n
               for n in result.manifest["notes"])


def test_dropped_purchases_are_counted(prepared):
    _, purchases, result = prepared
    unknown = sum(aid > 999000000 for _, _, aid in purchases)
    dedup = len({(u, a) for u, _, a in purchases})
    notes = result.manifest["notes"]
    assert f"dropped {unknown} of {dedup} interactions on items without text" in notes
    assert any(f"{len(purchases) - dedup} repeated (customer, article) purchases dropped" in n
               for n in notes)


def test_sequences_oldest_first_ties_in_row_order(prepared):
    _, purchases, result = prepared
    item_key, user_key = keyed(result)
    expected = expected_sequences(purchases, set(item_key.values()))
    n = 0
    for split in ("train", "valid", "test"):
        for user_id, history, target in read(result, f"seq/{split}").iter_rows():
            full = expected[user_key[user_id]]
            assert [item_key[i] for i in history] + [item_key[target]] == \
                full[-(len(history) + 1):][-MAX_HISTORY - 1:]
            n += 1
    assert n == sum(len(v) >= 2 for v in expected.values())


def test_ctr_two_positives_two_unseen_negatives(prepared):
    _, purchases, result = prepared
    item_key, user_key = keyed(result)
    expected = expected_sequences(purchases, set(item_key.values()))
    bought: dict[str, set[str]] = {}
    for user, _, aid in purchases:
        bought.setdefault(user, set()).add(str(aid))
    for split in ("train", "valid", "test"):
        df = read(result, f"ctr/{split}")
        assert df.height > 0
        for (user_id,), rows in df.group_by(["user_id"]):
            user = user_key[user_id]
            pos = [item_key[i] for i in rows.filter(pl.col("label") == 1)["item_id"]]
            neg = [item_key[i] for i in rows.filter(pl.col("label") == 0)["item_id"]]
            assert pos == expected[user][-2:]
            assert len(neg) == 2 and len(set(neg)) == 2
            assert not set(neg) & bought[user]
            assert [item_key[i] for i in rows["history"][0]] == expected[user][:-2][-MAX_HISTORY:]


@pytest.mark.parametrize(("index_col", "zero_articles", "zero_transactions"), [
    (False, True, True),    # official Kaggle files
    (True, False, False),   # re-saved by pandas, as in the shared subset
    (False, True, False),   # mixed: leading zeros on one side only
    (True, False, True),
])
def test_article_ids_join_with_or_without_leading_zero(tmp_path, index_col, zero_articles,
                                                       zero_transactions):
    write_hm(tmp_path, index_col=index_col, zero_articles=zero_articles,
             zero_transactions=zero_transactions)
    tables = hm.load(tmp_path, {})
    events = tables.events.collect()
    joined = events.join(tables.items, on="item_key", how="semi").height
    assert joined == events.filter(~pl.col("item_key").str.starts_with("999")).height
    assert tables.items["item_key"][0] == str(article(0))
    assert any("leading unnamed index column" in n for n in tables.notes) == index_col


def test_same_seed_same_bytes(prepared, tmp_path):
    root, _, first = prepared
    second = prepare("hm", raw=root / "raw", size="tiny", home=tmp_path, show_progress=False)
    for rel in first.manifest["files"]:
        assert (first.path / rel).read_bytes() == (second.path / rel).read_bytes(), rel
    third = prepare("hm", raw=root / "raw", size="tiny", home=tmp_path / "s1", seed=1,
                    show_progress=False)
    assert third.manifest["content_hash"] != first.manifest["content_hash"]


def test_without_fallback_empty_descriptions_are_dropped(tmp_path, home):
    write_hm(tmp_path / "raw")
    result = prepare("hm", raw=tmp_path / "raw", size="tiny", home=home,
                     options={"text_fallback": False}, show_progress=False)
    n_empty = sum(desc(i) == "" for i in range(N_ARTICLES))
    assert f"dropped {n_empty} items with empty text or duplicate ids" in \
        result.manifest["notes"]
    assert str(article(3)) not in read(result, "items")["item_key"].to_list()


def test_missing_column_names_file_and_column(tmp_path, home):
    write_hm(tmp_path)
    path = tmp_path / "articles.csv"
    path.write_text(path.read_text().replace(",detail_desc\n", ",description\n", 1))
    with pytest.raises(DataError, match=r"articles.csv: missing column\(s\) \['detail_desc'\]"):
        prepare("hm", raw=tmp_path, size="tiny", home=home)


def test_malformed_lines_name_the_line(tmp_path):
    write_hm(tmp_path)
    path = tmp_path / "transactions_train.csv"
    good = path.read_text().splitlines()
    bad = good.copy()
    bad[7] = bad[7].replace(",0", ",x0", 1)
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"transactions_train.csv: line 8, column 'article_id'"):
        hm.load(tmp_path, {})
    bad = good.copy()
    bad[9] = bad[9].replace("2018-09-", "2018/09/", 1)
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"line 10, column 't_dat': '2018/09/2.' is not a valid"):
        hm.load(tmp_path, {})
    bad = good.copy()
    bad[11] = bad[11].rsplit(",", 3)[0]  # customer and article only
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"line 12"):
        hm.load(tmp_path, {})


def test_cli_one_line_error_without_traceback(tmp_path):
    write_hm(tmp_path / "raw")
    path = tmp_path / "raw" / "articles.csv"
    lines = path.read_text().splitlines()
    lines[4] = "not-a-number" + lines[4][lines[4].index(","):]
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["prepare", "hm", "--raw", str(tmp_path / "raw"),
                                      "--size", "tiny", "--home", str(tmp_path / "home")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "articles.csv: " in result.output and "line 5" in result.output
    assert "'article_id'" in result.output


def test_missing_file_and_unknown_option(tmp_path, home):
    write_hm(tmp_path)
    with pytest.raises(DataError, match=r"unknown option.*'text'.*valid: text_fallback"):
        hm.load(tmp_path, {"text": "prod_name"})
    with pytest.raises(DataError, match="text_fallback must be true or false"):
        hm.load(tmp_path, {"text_fallback": "maybe"})
    (tmp_path / "transactions_train.csv").unlink()
    with pytest.raises(MissingRawFilesError, match="transactions_train.csv"):
        prepare("hm", raw=tmp_path, size="tiny", home=home)


@pytest.mark.shared_data
def test_real_subset(shared_data, tmp_path):
    raw = shared_subdir(shared_data, "hm")
    result = prepare("hm", raw=raw, size="tiny", home=tmp_path, show_progress=False)
    stats = result.manifest["stats"]
    print(stats, *result.manifest["notes"], sep="\n")
    assert stats["n_items"] > 1000 and stats["n_users"] > 1000
    for task in ("ctr", "seq"):
        for split in ("train", "valid", "test"):
            assert stats[task][split]["rows"] > 0, (task, split)
    test = read(result, "ctr/test")
    assert set(test["label"].unique()) == {0, 1}
    per_user = test.group_by("user_id").agg(pl.col("label").sum().alias("pos"), pl.len())
    assert (per_user["pos"] == 2).all() and (per_user["len"] == 4).all()
