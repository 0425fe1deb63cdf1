"""`p5`: the P5 / OpenP5 preprocessed layout of an Amazon (or other) dataset.

Layout:
- `sequential_data.txt`: one line per user, `user item item ...` separated by spaces, items in
  chronological order; the ids are P5's integers (from 1).
- `datamaps.json`: `user2id`, `item2id`, `id2user`, `id2item` (P5 id -> ASIN), and attribute
  maps. Only `id2item` is needed (`item2id` is inverted when `id2item` is absent).
- item names, which P5 itself does not ship (the text attribute is required), from the first of:
  1. `item_id_to_int.json` (ASIN -> global_product_id) + `products_lookup.csv` (a leading unnamed
     index column, `global_product_id`, `name`), as in LLM-Sequential-Recommendation's beauty
     folder;
  2. a `meta*.json[l][.gz]` file with `asin` and `title` (the 2014 Amazon metadata, whose
     Python-literal lines are parsed with `ast.literal_eval`).

Decisions: items are keyed by ASIN (so keys agree with the raw Amazon layouts); users by their
P5 id. There are no timestamps, so `ts` is the position in the file (chronological within a
user, as P5 writes it). There are no ratings: every interaction is a positive and CTR negatives
are sampled. Interactions on P5 item ids that `datamaps.json` does not map are dropped and
counted; items without a name are dropped (and counted) by the protocol.

Options: none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError, MissingRawFilesError
from recbench.data.keys import repeated_rows
from recbench.data.raw import RawTables
from recbench.data.rawfiles import find_file, read_csv_checked, shown

LOOKUP_FILES = ("item_id_to_int.json", "products_lookup.csv")
META_PATTERNS = ("meta*.json", "meta*.json.gz", "meta*.jsonl", "meta*.jsonl.gz")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    """Read sequential_data.txt + datamaps.json + item names into `RawTables`."""
    if options:
        raise DataError(f"unknown option(s) {sorted(options)} for the p5 layout; it takes none")
    found = {n: find_file(raw_dir, n, required=False)
             for n in ("sequential_data.txt", "datamaps.json")}
    missing = [n for n, p in found.items() if p is None]
    if missing:
        raise MissingRawFilesError(
            f"{raw_dir}: the p5 layout needs {' and '.join(missing)} (expected "
            "sequential_data.txt, datamaps.json and item names: item_id_to_int.json + "
            "products_lookup.csv, or meta*.json with asin/title)")
    seq_path, maps_path = found["sequential_data.txt"], found["datamaps.json"]
    notes: list[str] = []
    id2item = _id2item(maps_path)
    events = _sequences(seq_path, id2item, notes)
    names, name_files = _names(raw_dir, notes)
    items = id2item.join(names, on="item_key", how="left").select("item_key", "text", "p5_id")
    n_named = items.filter(pl.col("text").str.strip_chars().str.len_chars() > 0).height
    notes.append(f"names for {n_named} of {items.height} P5 items (from "
                 f"{' + '.join(p.name for p in name_files)})")
    notes.append("p5 layout: no timestamps (ts = position in sequential_data.txt), no ratings "
                 "(all positives; CTR negatives sampled)")
    return RawTables(items=items, events=events.lazy(), negatives="sampled",
                     source_files=[seq_path, maps_path, *name_files], notes=notes,
                     text_attribute="title", timestamps=False)


def _id2item(path: Path) -> pl.DataFrame:
    """p5_id (str), item_key (ASIN)."""
    try:
        maps = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg})") from None
    if not isinstance(maps, dict):
        raise DataError(f"{path}: expected a JSON object with id2item")
    if isinstance(maps.get("id2item"), dict):
        pairs = {str(k): str(v) for k, v in maps["id2item"].items()}
    elif isinstance(maps.get("item2id"), dict):
        pairs = {str(v): str(k) for k, v in maps["item2id"].items()}
    else:
        raise DataError(f"{path}: no field 'id2item' (or 'item2id') mapping P5 item ids to "
                        f"ASINs; found {sorted(maps)[:20]}")
    return pl.DataFrame({"p5_id": list(pairs), "item_key": list(pairs.values())},
                        schema={"p5_id": pl.Utf8, "item_key": pl.Utf8})


def _sequences(path: Path, id2item: pl.DataFrame, notes: list[str]) -> pl.DataFrame:
    """user_key, item_key, ts (file position), label (1) from `user item item ...` lines.

    Damaged lines follow `recbench.data.rawfiles`: bytes that are not UTF-8 and a line starting
    with a space (an empty user field: the first item would be taken for the user) are errors;
    a last line without a newline is dropped (a cut id is still an id, so a cut cannot be told
    apart); a repeated user line and a repeated item of a user keep their first occurrence.
    """
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        bad = data[start:start + 240].split(b"\n")[0]
        raise DataError(f"{path}: line {line} is not valid UTF-8 text ({shown(bad)}); expected "
                        "`user item item ...` lines of integer ids") from None
    lines = text.split("\n")
    if lines and lines[-1].strip():
        notes.append(f"{path.name}: line {len(lines)} has no newline, so it may be cut off (a "
                     f"cut id is still an id: {shown(lines[-1])}); dropped")
        lines[-1] = ""
    tokens = (
        pl.DataFrame({"line": lines}, schema={"line": pl.Utf8})
        .with_row_index("lineno", offset=1)
        .with_columns(pl.col("line").str.strip_chars_end("\r"))
    )
    empty_user = tokens.filter(pl.col("line").str.contains(r"^\s+\S"))
    if empty_user.height:
        row = empty_user.row(0, named=True)
        raise DataError(f"{path}: line {row['lineno']}: the user field is empty (the line starts "
                        f"with whitespace: {shown(row['line'])}); expected `user item item ...`")
    tokens = (
        tokens.with_columns(pl.col("line").str.replace_all(r"\s+", " ").str.strip_chars())
        .filter(pl.col("line") != "")
        .with_columns(pl.col("line").str.split(" ").alias("token"))
    )
    if tokens.height == 0:
        raise DataError(f"{path}: empty file (expected lines `user item item ...`)")
    short = tokens.filter(pl.col("token").list.len() < 2)
    if short.height:
        row = short.row(0, named=True)
        raise DataError(f"{path}: line {row['lineno']}: {shown(row['line'])} has no item; "
                        "expected `user item item ...`")
    tokens = tokens.select("lineno", "token").explode("token").with_columns(
        pl.int_range(pl.len()).over("lineno").alias("pos"))
    bad = tokens.filter(~pl.col("token").str.contains(r"^\d+$"))
    if bad.height:
        row = bad.row(0, named=True)
        raise DataError(f"{path}: line {row['lineno']}: {shown(row['token'])} is not an integer "
                        "id (expected `user item item ...`)")
    users = tokens.filter(pl.col("pos") == 0).select("lineno", pl.col("token").alias("user_key"))
    again = ~users["user_key"].is_first_distinct()
    if again.any():
        notes.append(f"{path.name}: {int(again.sum())} repeated user lines dropped (the "
                     "first line of each user is kept)")
        tokens = tokens.join(users.filter(again).select("lineno"), on="lineno", how="anti",
                             maintain_order="left")
        users = users.filter(~again)
    events = (
        tokens.filter(pl.col("pos") > 0)
        .join(users, on="lineno", how="left", maintain_order="left")
        .with_row_index("ts")
        .join(id2item, left_on="token", right_on="p5_id", how="left", maintain_order="left")
    )
    unmapped = events.filter(pl.col("item_key").is_null())
    if unmapped.height:
        n_ids = unmapped["token"].n_unique()
        notes.append(f"{path.name}: {unmapped.height} interactions on {n_ids} P5 item ids "
                     "absent from datamaps.json's id2item dropped")
    events = events.filter(pl.col("item_key").is_not_null())
    repeated = repeated_rows(events, ["user_key", "item_key"])
    if repeated is not None:
        notes.append(f"{path.name}: {int(repeated.sum())} repeated (user, item) interactions "
                     "dropped (the first is kept), so a target never sits in its own history")
        events = events.filter(~repeated)
    notes.append(f"{path.name}: {users.height} user lines, {events.height} interactions")
    return events.select(
        "user_key", "item_key", pl.col("ts").cast(pl.Int64), pl.lit(1, pl.Int8).alias("label"))


def _names(raw_dir: Path, notes: list[str]) -> tuple[pl.DataFrame, list[Path]]:
    """item_key (ASIN), text, and the files read."""
    id_path = find_file(raw_dir, LOOKUP_FILES[0], required=False)
    lookup_path = find_file(raw_dir, LOOKUP_FILES[1], required=False)
    if id_path is not None and lookup_path is not None:
        return _names_from_lookup(id_path, lookup_path, notes), [id_path, lookup_path]
    meta_path = find_file(raw_dir, *META_PATTERNS, required=False)
    if meta_path is not None:
        from recbench.data.sources.amazon import read_meta

        meta = read_meta(meta_path, key="asin", loose=True, notes=notes).select("item_key", "text")
        return meta.unique("item_key", keep="first", maintain_order=True), [meta_path]
    half = next((p for p in (id_path, lookup_path) if p is not None), None)
    partner = ""
    if half is not None:
        other = LOOKUP_FILES[1] if half.name == LOOKUP_FILES[0] else LOOKUP_FILES[0]
        partner = f" (found {half.name} but not {other}, which it needs)"
    raise MissingRawFilesError(
        f"{raw_dir}: the p5 layout has no item names{partner}; text is required: add "
        "item_id_to_int.json (ASIN -> global_product_id) + products_lookup.csv "
        "(global_product_id, name), or a meta*.json with asin and title")


def _names_from_lookup(id_path: Path, lookup_path: Path, notes: list[str]) -> pl.DataFrame:
    try:
        asin_to_gid = json.loads(id_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{id_path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg})") from None
    if not isinstance(asin_to_gid, dict):
        raise DataError(f"{id_path}: expected a JSON object ASIN -> global_product_id")
    bad = next((k for k, v in asin_to_gid.items()
                if isinstance(v, bool) or not isinstance(v, int)), None)
    if bad is not None:
        raise DataError(f"{id_path}: ASIN {shown(bad)} maps to {shown(asin_to_gid[bad])}; "
                        "expected an integer global_product_id")
    ids = pl.DataFrame(
        {"item_key": list(asin_to_gid), "global_product_id": list(asin_to_gid.values())},
        schema={"item_key": pl.Utf8, "global_product_id": pl.Int64},
    )
    lookup = read_csv_checked(lookup_path, {"global_product_id": pl.Int64, "name": pl.Utf8},
                              notes=notes)
    lookup = lookup.unique("global_product_id", keep="first", maintain_order=True)
    return ids.join(lookup, on="global_product_id", how="left").select(
        "item_key", pl.col("name").alias("text"))
