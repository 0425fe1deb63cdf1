"""The RecBench protocol written the straightforward pandas way: the baseline of prepare_bench.

It reads the same raw files (MIND news.tsv + behaviors.tsv; Amazon 2018 `{Category}_5.json` +
`meta_{Category}.json`) and does the same work as `recbench.data.sources.{mind,amazon}` followed by
`recbench.data.protocols.recbench_v1.build_splits` and the Parquet writing of
`recbench.data.prepare`, in the
idioms of the papers' own preprocessing scripts: `read_csv` / `read_json(lines=True)`,
`groupby(...).agg(list)`, per-row `apply` over Python lists, `merge`, `explode`, a Python loop
for the sampled negatives.

Same rules, so the same splits: dense ids sorted by raw key, positives oldest first (ties in
file order), histories of the last 20, CTR rows (MIND: impression rows; Amazon: last 2 positives
+ the user's newest 10 real negatives, rating <= 2), SeqRec rows (last positive), user-disjoint
splits drawn with the same seeded permutations (so the split row counts equal recbench's), 100
sampled negatives per SeqRec test row (drawn differently: a per-row rejection loop).

Not a library module: it exists only to be timed against recbench's Polars implementation.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

MAX_HISTORY = 20
N_SAMPLED_NEGATIVES = 100
VALID_FRACTION = 0.1
MAX_REAL_NEGATIVES = 10  # the newest real negatives kept per user
SIZES = {"tiny": (200, 1_000, 100, 500), "small": (2_000, 10_000, 500, 4_000),
         "paper": (20_000, 100_000, 5_000, 40_000)}  # ctr test, ctr finetune, seq test, finetune
CATEGORY = "CDs_and_Vinyl"
NEWS_COLUMNS = ["news_id", "category", "subcategory", "title", "abstract", "url",
                "title_entities", "abstract_entities"]
BEHAVIOR_COLUMNS = ["impression_id", "user_id", "time", "history", "impressions"]


def prepare_pandas(layout: str, raw: Path, out: Path, *, seed: int = 0, size: str = "paper",
                   stage: Callable[[str], None] = lambda _m: None) -> dict:
    """Prepare `raw` (a MIND or Amazon 2018 folder) into `out`; returns rows/users per split."""
    rng = np.random.default_rng(seed)
    ctr_test, ctr_fine, seq_test, seq_fine = SIZES[size]
    stage("reading raw files")
    if layout == "mind":
        items, events, shown, lines = read_mind(raw)
    else:
        items, events = read_amazon(raw)
        shown = lines = None

    stage("building splits")
    items = clean_items(items)
    text_keys = set(items["item_key"])
    events = events[events["item_key"].isin(text_keys)].copy()
    events["order"] = np.arange(len(events))
    if shown is not None:
        shown = shown[shown["item_key"].isin(text_keys)]
        lines = lines[lines["impression"].isin(set(shown["impression"]))].copy()
        # History entries without text are removed, keeping order.
        lines["history"] = lines["history"].apply(lambda h: [k for k in h if k in text_keys])

    used = set(events["item_key"])
    if shown is not None:
        used |= set(shown["item_key"])
        used |= set(lines["history"].explode().dropna())
    items = items[items["item_key"].isin(used)].sort_values("item_key").reset_index(drop=True)
    items.insert(0, "item_id", np.arange(len(items), dtype=np.int32))
    item_id = pd.Series(items["item_id"].values, index=items["item_key"].values)
    user_keys = pd.Index(events["user_key"].unique())
    if shown is not None:
        user_keys = user_keys.union(pd.Index(shown["user_key"].unique()))
    user_keys = user_keys.sort_values()
    user_id = pd.Series(np.arange(len(user_keys), dtype=np.int32), index=user_keys)

    events["item_id"] = events["item_key"].map(item_id)
    events["user_id"] = events["user_key"].map(user_id)
    positives = (events[events["label"] == 1].sort_values(["user_id", "ts", "order"])
                 .groupby("user_id")["item_id"].agg(list))

    if layout == "mind":
        ctr_rows = ctr_rows_from_impressions(shown, lines, item_id, user_id)
    else:
        ctr_rows = ctr_rows_real(positives, events)
    seq_rows = positives[positives.map(len) >= 2].to_frame("items").reset_index()
    seq_rows["history"] = seq_rows["items"].apply(lambda s: s[:-1][-MAX_HISTORY:])
    seq_rows["target"] = seq_rows["items"].apply(lambda s: s[-1])
    seq_rows = seq_rows[["user_id", "history", "target"]]

    ctr = split_by_user(ctr_rows, ctr_test, ctr_fine, rng)
    seq = split_by_user(seq_rows, seq_test, seq_fine, rng)
    negatives = sample_test_negatives(seq["test"], len(items), rng)

    stage("writing")
    (out / "ctr").mkdir(parents=True, exist_ok=True)
    (out / "seq").mkdir(exist_ok=True)
    items.to_parquet(out / "items.parquet", compression="zstd", index=False)
    for task, splits in (("ctr", ctr), ("seq", seq)):
        for name, df in splits.items():
            df.to_parquet(out / task / f"{name}.parquet", compression="zstd", index=False)
    negatives.to_parquet(out / "seq" / "test_negatives.parquet", compression="zstd", index=False)
    counts = {f"{task}/{name}": {"rows": len(df), "users": int(df["user_id"].nunique())}
              for task, splits in (("ctr", ctr), ("seq", seq)) for name, df in splits.items()}
    (out / "counts.json").write_text(json.dumps(counts, indent=1))
    return counts


# --- sources ------------------------------------------------------------------------------------

def read_mind(raw: Path):
    """items, positive events, shown impression rows and behaviour lines (history as lists)."""
    news = pd.read_csv(raw / "news.tsv", sep="\t", header=None, names=NEWS_COLUMNS,
                       usecols=["news_id", "category", "subcategory", "title"],
                       quoting=csv.QUOTE_NONE, dtype=str)
    items = news.rename(columns={"news_id": "item_key", "title": "text"})[
        ["item_key", "text", "category", "subcategory"]]

    lines = pd.read_csv(raw / "behaviors.tsv", sep="\t", header=None, names=BEHAVIOR_COLUMNS,
                        quoting=csv.QUOTE_NONE, dtype={"user_id": str, "history": str})
    lines = lines.rename(columns={"impression_id": "impression", "user_id": "user_key"})
    lines["line"] = np.arange(1, len(lines) + 1)
    lines["ts"] = (pd.to_datetime(lines["time"], format="%m/%d/%Y %I:%M:%S %p")
                   .astype("datetime64[s]").astype("int64"))
    lines["history"] = lines["history"].fillna("").str.split()

    shown = lines[["line", "impression", "user_key", "ts", "impressions"]].copy()
    shown["token"] = shown["impressions"].str.split()
    shown = shown.drop(columns="impressions").explode("token").dropna(subset=["token"])
    parts = shown["token"].str.split("-", n=1, expand=True)
    shown["item_key"] = parts[0]
    shown["label"] = parts[1].astype("int8")
    shown = shown.drop(columns="token").reset_index(drop=True)

    # Positives: the history of the user's earliest impression just before it, then the clicks.
    earliest = lines.sort_values(["ts", "line"], kind="stable").drop_duplicates("user_key")
    history = earliest[["user_key", "ts", "history"]].copy()
    history["length"] = history["history"].map(len)
    history = history.explode("history").dropna(subset=["history"])
    history["position"] = history.groupby(level=0).cumcount()
    history = pd.DataFrame({"user_key": history["user_key"], "item_key": history["history"],
                            "ts": history["ts"] - history["length"] + history["position"]})
    clicks = shown.loc[shown["label"] == 1, ["user_key", "item_key", "ts"]]
    events = (pd.concat([history, clicks], ignore_index=True).sort_values("ts", kind="stable")
              .drop_duplicates(["user_key", "item_key"]))
    events["label"] = np.int8(1)
    return items, events.reset_index(drop=True), shown, lines[["impression", "history"]]


def read_amazon(raw: Path, category: str = CATEGORY):
    """items (reviewed, first titled record) and labelled events (3s dropped, first per pair)."""
    chunks = pd.read_json(raw / f"{category}_5.json", lines=True, chunksize=1_000_000,
                          dtype={"reviewerID": str, "asin": str}, convert_dates=False)
    fields = ["reviewerID", "asin", "overall", "unixReviewTime"]
    reviews = pd.concat([c[fields] for c in chunks], ignore_index=True).dropna()
    reviews = reviews.rename(columns={"reviewerID": "user_key", "asin": "item_key",
                                      "unixReviewTime": "ts"})
    reviews["label"] = np.select([reviews["overall"] >= 4, reviews["overall"] <= 2], [1, 0], -1)
    events = reviews[reviews["label"] >= 0].drop(columns="overall")
    events["label"] = events["label"].astype("int8")
    events = (events.sort_values("ts", kind="stable").drop_duplicates(["user_key", "item_key"])
              .reset_index(drop=True))

    meta = pd.read_json(raw / f"meta_{category}.json", lines=True, dtype={"asin": str},
                        convert_dates=False)
    meta = meta[["asin", "title", "brand"]].rename(columns={"asin": "item_key", "title": "text"})
    meta = meta[meta["item_key"].isin(set(events["item_key"]))]
    untitled = meta["text"].fillna("").str.strip().str.len() == 0
    meta = (meta.assign(_untitled=untitled, _row=np.arange(len(meta)))
            .sort_values(["_untitled", "_row"]).drop_duplicates("item_key")
            .sort_values("_row").drop(columns=["_untitled", "_row"]))
    return meta.reset_index(drop=True), events


# --- protocol -----------------------------------------------------------------------------------

def clean_items(items: pd.DataFrame) -> pd.DataFrame:
    items = items.copy()
    items["text"] = items["text"].str.replace(r"\s+", " ", regex=True).str.strip()
    items = items[items["text"].notna() & (items["text"] != "")]
    return items.drop_duplicates("item_key")


def ctr_rows_real(positives: pd.Series, events: pd.DataFrame) -> pd.DataFrame:
    """The last 2 positives (label 1) and the newest 10 real negatives (0) of eligible users."""
    eligible = positives[positives.map(len) >= 3].to_frame("items").reset_index()
    eligible["history"] = eligible["items"].apply(lambda s: s[:-2][-MAX_HISTORY:])
    eligible["pos"] = eligible["items"].apply(lambda s: s[-2:])
    pos_rows = eligible[["user_id", "history", "pos"]].explode("pos").rename(
        columns={"pos": "item_id"})
    pos_rows["label"] = 1
    neg = (events[events["label"] == 0].sort_values(["user_id", "ts", "order"])
           [["user_id", "item_id"]].groupby("user_id").tail(MAX_REAL_NEGATIVES))
    neg_rows = eligible[["user_id", "history"]].merge(neg, on="user_id")
    neg_rows["label"] = 0
    # A user needs both labels to have a group AUC.
    pos_rows = pos_rows[pos_rows["user_id"].isin(set(neg_rows["user_id"]))]
    rows = pd.concat([pos_rows, neg_rows], ignore_index=True)
    return typed_ctr(rows.sort_values("user_id", kind="stable"))


def ctr_rows_from_impressions(shown, lines, item_id, user_id) -> pd.DataFrame:
    """One row per shown item, with the line's history (last 20 items that have text)."""
    ids = item_id.to_dict()
    hist = lines.drop_duplicates("impression").set_index("impression")["history"].apply(
        lambda h: [ids[k] for k in h][-MAX_HISTORY:])
    rows = shown[["user_key", "impression", "ts", "item_key", "label"]].copy()
    rows["pos"] = np.arange(len(rows))
    rows["item_id"] = rows["item_key"].map(item_id)
    rows["user_id"] = rows["user_key"].map(user_id)
    rows["history"] = rows["impression"].map(hist)
    rows = rows[rows["history"].map(len) > 0]
    rows = rows.sort_values(["user_id", "ts", "impression", "pos"])
    return typed_ctr(rows[["user_id", "history", "item_id", "label"]])


def typed_ctr(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": rows["user_id"].astype("int32").values,
        "history": rows["history"].values,
        "item_id": rows["item_id"].astype("int32").values,
        "label": rows["label"].astype("int8").values,
    })


def split_by_user(rows: pd.DataFrame, test_target: int, finetune_target: int, rng):
    """User-disjoint test / train / valid (the same seeded rule as recbench's protocol)."""
    per_user = rows.groupby("user_id").size().sort_index()
    order = rng.permutation(len(per_user))
    users = per_user.index.to_numpy()[order]
    cum = np.cumsum(per_user.to_numpy()[order])
    total, wanted = int(cum[-1]), test_target + finetune_target
    if total < wanted:
        test_target = max(1, round(total * test_target / wanted))
        finetune_target = total - test_target
    n_test = min(int(np.searchsorted(cum, test_target) + 1), len(users) - 2)
    n_fine = int(np.searchsorted(cum, cum[n_test - 1] + finetune_target) + 1) - n_test
    n_fine = max(2, min(n_fine, len(users) - n_test))
    fine = users[n_test:n_test + n_fine]
    n_valid = max(1, round(len(fine) * VALID_FRACTION))
    picks = {"train": fine[n_valid:], "valid": fine[:n_valid], "test": users[:n_test]}
    return {name: rows[rows["user_id"].isin(set(ids))].reset_index(drop=True)
            for name, ids in picks.items()}


def sample_test_negatives(test: pd.DataFrame, n_items: int, rng) -> pd.DataFrame:
    """100 distinct items per SeqRec test row, never the target nor a history item."""
    negatives = []
    for history, target in zip(test["history"], test["target"], strict=True):
        seen = set(history) | {target}
        picked: list[int] = []
        while len(picked) < N_SAMPLED_NEGATIVES:
            item = int(rng.integers(n_items))
            if item not in seen:
                seen.add(item)
                picked.append(item)
        negatives.append(picked)
    return pd.DataFrame({"row": np.arange(len(test), dtype=np.int32),
                         "user_id": test["user_id"].astype("int32").values,
                         "negatives": negatives})
