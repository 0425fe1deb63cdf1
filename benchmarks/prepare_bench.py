"""prepare_bench: `recbench prepare` (Polars) against a straightforward pandas implementation.

Paper-scale raw files are generated with the synthetic generator in two official layouts and
cached under --root:
- MIND: `news.tsv` (8 tab columns) and `behaviors.tsv` (impression id, user, `11/12/2019 2:14:46
  PM`, history, `Nxxx-1 Nyyy-0` impressions); an impression shows 1-3 clicks and 3-14 non-clicks,
  a user's history is the same on all of the user's lines (as in MIND); lines in random order.
- Amazon 2018: `CDs_and_Vinyl_5.json` (reviewerID, asin, overall, unixReviewTime, ... JSON lines,
  grouped by asin like the official dumps; ~8% neutral 3-star ratings) and
  `meta_CDs_and_Vinyl.json` (asin, title, ...; 1% of titles empty).
"Interactions" means review lines (Amazon) or shown impression entries, clicked or not (MIND).

Then `recbench.data.prepare.prepare(size="paper")` and `benchmarks/pandas_protocol.py` run on the
same files, each in a fresh subprocess (peak RSS from `os.wait4` of that child), and a table of
seconds, peak RSS and ratios is printed. The split row/user counts of the two are compared, and
recbench's `content_hash` (the hash of its Parquet files) is printed, so that a speed change can
be checked to leave the output byte-identical.

    python benchmarks/prepare_bench.py                          # 1M and 10M, mind and amazon
    python benchmarks/prepare_bench.py --scales 1e6 --layouts mind
    python benchmarks/prepare_bench.py --scales 1e7 --profile   # + cProfile of recbench's run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import polars as pl

GENERATOR_VERSION = "1"
DEFAULT_ROOT = Path("/tmp/rb_bench")
LAYOUTS = ("mind", "amazon")
DATASET_NAME = {"mind": "mind", "amazon": "amazon-cds"}
CATEGORY = "CDs_and_Vinyl"
SPLITS = ("ctr/train", "ctr/valid", "ctr/test", "seq/train", "seq/valid", "seq/test")
SEED = 0

MIND_CATEGORIES = ("news sports finance lifestyle travel foodanddrink weather autos health music "
                   "movies tv video entertainment kids games").split()
SENTENCES = [
    "Great sound and a fair price.", "Arrived quickly and well packed.",
    "Not what I expected from this artist.", "A classic that belongs in every collection.",
    "The remaster is much better than the original pressing.", "Some tracks are filler.",
    "My kids love it.", "The vinyl had a scratch on side B.", "Bought it as a gift.",
    "Five stars, would buy again.", "The liner notes are a nice bonus.", "Too short for the price.",
    "Every song is a hit.", "The mix is muddy.", "I listen to it every day.",
    "Officials said on Tuesday that the plan would go ahead.", "Here is what you need to know.",
    "The team bounced back after a slow start.", "Prices rose for the third month in a row.",
]
NAMES = ("Alice Bob Carol Dan Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert "
         "Sybil Trent Victor Walter Yusuf").split()
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_SCRAMBLE = 2_654_435_761  # odd, not a multiple of 3: a bijection modulo 36**k


# --- raw-file writers ---------------------------------------------------------------------------

def _base36(values: np.ndarray, width: int) -> pl.Series:
    """Distinct-looking fixed-width ids (scrambled, so that sorting by id shuffles the rows)."""
    import polars as pl

    v = (values.astype(np.uint64) * np.uint64(_SCRAMBLE)) % np.uint64(36 ** width)
    digits = np.empty((len(v), width), dtype=np.uint8)
    for i in range(width - 1, -1, -1):
        digits[:, i] = _ALPHABET[(v % np.uint64(36)).astype(np.intp)]
        v //= np.uint64(36)
    return pl.Series(digits.view(f"S{width}").ravel()).cast(pl.Utf8)


def _pick(pool: list[str], idx: np.ndarray) -> pl.Series:
    import polars as pl

    return pl.Series(pool)[idx]


def _simulate(n_users: int, n_items: int, length: tuple[int, int], seed: int):
    from recbench.data.sources.synthetic import simulate

    return simulate(n_users, n_items, n_genres=16, length=length, seed=seed)


def write_amazon(out: Path, n: int, seed: int) -> int:
    """Amazon 2018 5-core reviews + metadata with `n` review lines; returns the line count."""
    import polars as pl

    rng = np.random.default_rng(seed + 1)
    n_users = max(100, int(np.ceil(n / 12.5 * 1.03)))  # lengths 5..20, mean 12.5
    n_items = max(400, n_users // 2)
    items, inter = _simulate(n_users, n_items, (5, 20), seed)
    inter = inter.head(n)
    m = inter.height
    users = inter["user"].to_numpy()
    rating = inter["rating"].to_numpy().astype(np.float64)
    rating[rng.random(m) < 0.08] = 3.0
    # Review times are whole days; a user's reviews are weeks apart, in sequence order.
    step = inter.select(pl.int_range(pl.len()).over("user")).to_series().to_numpy()
    day = rng.integers(12_800, 17_500, n_users)[users] + step * 15 + rng.integers(0, 15, m)
    reviewer = "A" + _base36(np.arange(n_users), 12)
    asin = ("B00" + _base36(np.arange(n_items), 7))
    reviews = pl.DataFrame({
        "overall": rating,
        "verified": rng.random(m) < 0.8,
        "reviewTime": pl.from_epoch(pl.Series(day * 86_400), "s").dt.strftime("%m %-d, %Y"),
        "reviewerID": reviewer[users],
        "asin": asin[inter["item"].to_numpy()],
        "reviewerName": _pick(NAMES, users % len(NAMES)) + " " + reviewer[users].str.slice(1, 1),
        "reviewText": _pick(SENTENCES, rng.integers(0, len(SENTENCES), m)) + " "
        + _pick(SENTENCES, rng.integers(0, len(SENTENCES), m)),
        "summary": _pick(SENTENCES, rng.integers(0, len(SENTENCES), m)),
        "unixReviewTime": day * 86_400,
    })
    # The official 5-core files are grouped by product, not by user.
    reviews = reviews.with_row_index("row").sort("asin", "row").drop("row")
    reviews.write_ndjson(out / f"{CATEGORY}_5.json")
    del reviews

    k = items.height
    title = items["title"].to_numpy().astype(object)
    title[rng.random(k) < 0.01] = ""
    genre = items["genre"].to_numpy()
    meta = pl.DataFrame({
        "category": [["CDs & Vinyl", MIND_CATEGORIES[g].title()] for g in genre],
        "description": _pick(SENTENCES, rng.integers(0, len(SENTENCES), k)).to_frame("d")
        .select(pl.concat_list("d")).to_series(),
        "title": pl.Series(title, dtype=pl.Utf8),
        "brand": _pick(NAMES, rng.integers(0, len(NAMES), k)) + " Band",
        "main_cat": pl.Series(["CDs & Vinyl"] * k),
        "price": pl.Series(np.char.mod("$%.2f", rng.integers(299, 4999, k) / 100)),
        "asin": asin,
    })
    meta.write_ndjson(out / f"meta_{CATEGORY}.json")
    return m


def write_mind(out: Path, n: int, seed: int) -> int:
    """MIND news.tsv + behaviors.tsv with about `n` impression entries; returns their count."""
    import polars as pl

    rng = np.random.default_rng(seed + 2)
    n_users = max(100, int(np.ceil(n / 19.0)))  # measured: ~19.7 entries per simulated user
    n_items = max(400, n_users // 2)
    items, inter = _simulate(n_users, n_items, (8, 40), seed)
    pos = inter.filter(pl.col("rating") >= 4)  # in (user, time) order
    pos_user = pos["user"].to_numpy()
    pos_item = pos["item"].to_numpy()
    del inter
    p = np.bincount(pos_user, minlength=n_users)
    rank = np.arange(len(pos_user)) - np.repeat(np.cumsum(p) - p, p)

    # Impressions per user, clicks per impression; the user's last positives are the clicks.
    n_imp = 1 + np.minimum(rng.poisson(1.5, n_users), 5)
    imp_user = np.repeat(np.arange(n_users), n_imp)
    clicks = rng.choice([1, 2, 3], size=len(imp_user), p=[0.65, 0.25, 0.10])
    before = np.cumsum(clicks) - clicks
    before -= np.repeat(before[np.cumsum(n_imp) - n_imp], n_imp)
    budget = np.where(rng.random(n_users) < 0.02, p, np.maximum(p - 1, 0))  # 2%: no history
    clicks = np.clip(budget[imp_user] - before, 0, clicks)
    non_clicks = rng.integers(3, 15, len(imp_user))
    # Whole users up to `n` entries.
    per_user = np.bincount(imp_user, weights=(clicks + non_clicks) * (clicks > 0),
                           minlength=n_users).astype(np.int64)
    keep_user = np.cumsum(per_user) <= n
    keep = (clicks > 0) & keep_user[imp_user]
    imp_user, clicks, non_clicks = imp_user[keep], clicks[keep], non_clicks[keep]
    n_clicks = np.bincount(imp_user, weights=clicks, minlength=n_users).astype(np.int64)
    is_click = rank >= (p - n_clicks)[pos_user]
    hist = keep_user[pos_user] & ~is_click

    imp = np.arange(len(imp_user))
    pop = 1.0 / (1 + rng.permutation(n_items)) ** 0.9
    nc_items = rng.choice(n_items, size=int(non_clicks.sum()), p=pop / pop.sum())
    entries = pl.DataFrame({
        "imp": np.concatenate([np.repeat(imp, clicks), np.repeat(imp, non_clicks)]),
        "item": np.concatenate([pos_item[is_click], nc_items]),
        "label": np.concatenate([np.ones(int(clicks.sum()), np.int8),
                                 np.zeros(len(nc_items), np.int8)]),
    })
    total = entries.height
    news_id = "N" + pl.Series(rng.permutation(n_items) + 1).cast(pl.Utf8)
    # Clicks are shown among the non-clicks in random order.
    entries = entries.with_columns(pl.Series("key", rng.random(total))).sort("imp", "key")
    shown = (entries.select("imp", (news_id[entries["item"].to_numpy()] + "-"
                                    + entries["label"].cast(pl.Utf8)).alias("t"))
             .group_by("imp", maintain_order=True).agg(pl.col("t").str.join(" ")))
    del entries
    history = (pl.DataFrame({"user": pos_user[hist], "n": news_id[pos_item[hist]]})
               .group_by("user", maintain_order=True).agg(pl.col("n").str.join(" ")))
    # A user's impressions are in time order over 11/9/2019..11/14/2019.
    offset = rng.random(len(imp)) * 6 * 86_400
    offset = offset[np.lexsort((offset, imp_user))]
    ts = pl.Series((1_573_257_600 + offset).astype(np.int64))
    lines = pl.DataFrame({
        "user": imp_user,
        "time": pl.from_epoch(ts, "s").dt.strftime("%-m/%-d/%Y %-I:%M:%S %p"),
        "impressions": shown["t"],
    }).join(history, on="user", how="left", maintain_order="left")
    order = rng.permutation(lines.height)
    lines = lines[order].select(
        pl.Series("id", np.arange(1, lines.height + 1)),
        ("U" + (pl.col("user") + 1).cast(pl.Utf8)),
        "time", pl.col("n").fill_null(""), "impressions",
    )
    lines.write_csv(out / "behaviors.tsv", separator="\t", include_header=False,
                    quote_style="never")
    del lines

    # 0.5% of the shown news have no row in news.tsv (as in the MIND samples): dropped by both.
    genre = items["genre"].to_numpy()
    category = _pick(MIND_CATEGORIES, genre)
    entity = ('[{"Label": "' + items["title"].str.split(" ").list.get(1)
              + '", "Type": "U", "WikidataId": "Q' + pl.Series(rng.integers(1, 10**6, n_items))
              .cast(pl.Utf8) + '", "Confidence": 1.0, "OccurrenceOffsets": [0], '
              '"SurfaceForms": ["' + items["title"].str.split(" ").list.get(1) + '"]}]')
    news = pl.DataFrame({
        "id": news_id, "category": category, "subcategory": category + "_more",
        "title": items["title"],
        "abstract": _pick(SENTENCES, rng.integers(0, len(SENTENCES), n_items)),
        "url": "https://assets.msn.com/labs/mind/AA" + _base36(np.arange(n_items), 5) + ".html",
        "title_entities": entity, "abstract_entities": pl.Series(["[]"] * n_items),
    }).filter(pl.Series(rng.random(n_items) >= 0.005))
    news.write_csv(out / "news.tsv", separator="\t", include_header=False, quote_style="never")
    return total


WRITERS = {"mind": write_mind, "amazon": write_amazon}


def raw_files(root: Path, layout: str, n: int, seed: int = SEED) -> tuple[Path, int]:
    """The cached raw folder for (layout, n, seed), generated on first use; and its entry count."""
    path = root / "raw" / f"{layout}-{n}-seed{seed}"
    done = path / "DONE"
    if done.exists():
        info = json.loads(done.read_text())
        if info.get("version") == GENERATOR_VERSION:
            return path, int(info["interactions"])
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    count = WRITERS[layout](tmp, n, seed)
    secs = time.perf_counter() - t0
    (tmp / "DONE").write_text(json.dumps({"version": GENERATOR_VERSION, "interactions": count,
                                          "seconds": round(secs, 1)}))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    print(f"generated {path} ({count:,} interactions, {size:,.0f} MiB) in {secs:.1f} s",
          flush=True)
    return path, count


# --- one timed run per fresh subprocess ---------------------------------------------------------

def child(impl: str, layout: str, raw: Path, out: Path, profile: Path | None) -> dict:
    """Run one implementation in this (fresh) process; return its timings and split counts."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stages: list[tuple[float, str]] = []
    content_hash: list[str] = []
    # (The pandas child never imports polars, so its peak RSS is pandas' alone.)
    if impl == "recbench":
        from recbench.data.prepare import prepare

        def run() -> dict:
            result = prepare(DATASET_NAME[layout], raw=raw, size="paper", seed=SEED, home=out,
                             force=True, show_progress=False,
                             stage=lambda msg: stages.append((time.perf_counter() - t0, msg)))
            counts = {rel: {"rows": v["rows"], "users": v["users"]}
                      for task in ("ctr", "seq")
                      for rel, v in ((f"{task}/{k}", v)
                                     for k, v in result.manifest["stats"][task].items())}
            # The dataset version (hash of the Parquet files): equal runs wrote equal bytes.
            content_hash.append(result.manifest["content_hash"])
            return counts
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from pandas_protocol import prepare_pandas

        def run() -> dict:
            return prepare_pandas(layout, raw, out, seed=SEED, size="paper",
                                  stage=lambda msg: stages.append((time.perf_counter() - t0, msg)))
    t0 = time.perf_counter()
    if profile is not None:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        counts = prof.runcall(run)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(40)
        profile.write_text(text.getvalue())
    else:
        counts = run()
    seconds = time.perf_counter() - t0
    marks = [*stages, (seconds, "end")]
    stage_secs = {msg.split(" from ")[0].split(" /")[0]: round(marks[i + 1][0] - t, 2)
                  for i, (t, msg) in enumerate(marks[:-1])}
    return {"seconds": seconds, "stages": stage_secs, "counts": counts,
            **({"content_hash": content_hash[0]} if content_hash else {})}


def _watch(proc: subprocess.Popen, max_rss: float, timeout: float):
    """Reap `proc`, killing it past `max_rss` bytes or `timeout` seconds (the machine is shared).

    Returns (exit code, its rusage, why it was killed or None, peak sampled anonymous RSS).
    The anonymous part (RSS less file-backed pages) is sampled every 0.1 s: it leaves out input
    files that a reader memory-maps, which count in RSS but are page cache the kernel can drop.
    """
    import psutil

    watched = psutil.Process(proc.pid)
    start, killed, anon = time.monotonic(), None, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage, killed, anon
        if killed is None:
            try:
                mem = watched.memory_info()
                rss, anon = mem.rss, max(anon, mem.rss - mem.shared)
            except psutil.NoSuchProcess:
                rss = 0
            if rss > max_rss:
                killed = f"killed: RSS passed the --max-rss-gib limit ({gib(max_rss)})"
            elif time.monotonic() - start > timeout:
                killed = f"killed: ran past the --timeout of {timeout:.0f} s"
            if killed:
                proc.kill()
        time.sleep(0.1)


def run_child(impl: str, layout: str, raw: Path, root: Path, profile: bool, max_rss: float,
              timeout: float) -> dict:
    """Spawn `child` in a fresh interpreter; its peak RSS comes from the kernel via wait4."""
    out = root / "out" / f"{impl}-{raw.name}"
    log = root / "logs" / f"{impl}-{raw.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, "--layout", layout,
           "--raw", str(raw), "--out", str(out)]
    if profile:
        cmd += ["--profile-to", str(root / f"profile-{impl}-{raw.name}.txt")]
    load = os.getloadavg()[0]  # other work on the machine skews wall times; say how much
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        code, usage, killed, anon = _watch(proc, max_rss, timeout)
    text = log.read_text()
    result_lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if killed or code != 0 or not result_lines:
        tail = "\n".join(text.splitlines()[-15:])
        return {"error": killed or f"exit {code}; log {log}:\n{tail}",
                "peak_rss": usage.ru_maxrss * 1024}
    result = json.loads(result_lines[-1][len("RESULT "):])
    result["peak_rss"] = usage.ru_maxrss * 1024  # Linux reports KiB
    # CPU seconds of the whole child (all threads, start-up included): steadier than wall time
    # on a shared machine.
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["load_before"] = round(load, 1)
    result["peak_anon_rss"] = anon
    shutil.rmtree(out, ignore_errors=True)
    return result


# --- report ---------------------------------------------------------------------------------------

def compare_counts(a: dict, b: dict) -> str:
    diffs = [f"{rel} {a[rel]['rows']}/{b[rel]['rows']} rows"
             for rel in SPLITS if a[rel] != b[rel]]
    return "equal" if not diffs else "; ".join(diffs)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _cells(res: dict | None) -> tuple[str, str]:
    """(seconds, peak RSS) cells of one run: a number, or why there is none."""
    if res is None:
        return "skipped", ""
    if "error" not in res:
        return f"{res['seconds']:.1f}", gib(res["peak_rss"])
    why = ("killed (RSS limit)" if "RSS" in res["error"] else
           "killed (timeout)" if "timeout" in res["error"] else "failed")
    return why, f">={gib(res['peak_rss'])}" if res.get("peak_rss") else ""


def print_table(rows: list[dict]) -> None:
    head = ("layout", "interactions", "recbench s", "pandas s", "speed-up", "CPU s rb/pd",
            "recbench RSS", "pandas RSS", "RSS pandas/recbench", "anon RSS rb/pd", "split counts")
    body = []
    for r in rows:
        rb, pd_ = r["recbench"], r.get("pandas")
        (rb_s, rb_m), (pd_s, pd_m) = _cells(rb), _cells(pd_)
        ok = "error" not in rb and pd_ is not None and "error" not in pd_
        body.append((
            r["layout"], f"{r['interactions']:,}", rb_s, pd_s,
            f"{pd_['seconds'] / rb['seconds']:.1f}x" if ok else "",
            f"{rb['cpu_seconds']:.0f}/{pd_['cpu_seconds']:.0f}" if ok else "", rb_m, pd_m,
            f"{pd_['peak_rss'] / rb['peak_rss']:.2f}x" if ok else "",
            f"{rb['peak_anon_rss'] / 2**30:.1f}/{pd_['peak_anon_rss'] / 2**30:.1f} GiB"
            if ok else "",
            compare_counts(rb["counts"], pd_["counts"]) if ok else "",
        ))
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for b in body:
        print(" | ".join(str(x).ljust(w) for x, w in zip(b, widths, strict=True)))


def _check_constants() -> None:
    """Warn when the pandas baseline's protocol constants drift from recbench's."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pandas_protocol

    from recbench.data.protocols import recbench_v1 as protocol

    for name in ("MAX_HISTORY", "N_SAMPLED_NEGATIVES", "VALID_FRACTION", "MAX_REAL_NEGATIVES"):
        ours, theirs = getattr(protocol, name, None), getattr(pandas_protocol, name)
        if ours != theirs:
            print(f"warning: pandas_protocol.{name} = {theirs} but recbench's protocol has "
                  f"{ours}: split counts will differ", flush=True)


def _default_rss_limit() -> float:
    import psutil

    return round(min(18.0, 0.7 * psutil.virtual_memory().total / 2**30), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", type=float, default=[1e6, 1e7],
                        help="interactions per generated dataset (default 1e6 1e7)")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help="generated raw files (cached), outputs and logs (default %(default)s)")
    parser.add_argument("--skip-pandas", action="store_true", help="time recbench only")
    parser.add_argument("--profile", action="store_true",
                        help="also write a cProfile of each recbench run under --root")
    parser.add_argument("--max-rss-gib", type=float, default=_default_rss_limit(),
                        help="kill a run whose RSS passes this (default: 70%% of RAM, <= 18)")
    parser.add_argument("--timeout", type=float, default=3600,
                        help="kill a run after this many seconds (default %(default)s)")
    parser.add_argument("--tag", default="",
                        help="label for this run's results file (results-TAG.json under --root)")
    parser.add_argument("--child", choices=("recbench", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--layout", choices=LAYOUTS, help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        result = child(args.child, args.layout, args.raw, args.out, args.profile_to)
        print("RESULT " + json.dumps(result), flush=True)
        return 0

    _check_constants()
    rows = []
    for n in sorted(int(s) for s in args.scales):
        for layout in args.layouts:
            raw, count = raw_files(args.root, layout, n)
            row = {"layout": layout, "interactions": count}
            for impl in ("recbench", "pandas"):
                if impl == "pandas" and args.skip_pandas:
                    continue
                res = run_child(impl, layout, raw, args.root, args.profile and impl == "recbench",
                                args.max_rss_gib * 2**30, args.timeout)
                row[impl] = res
                if "error" in res:
                    print(f"{impl} on {raw.name} failed: {res['error']}", flush=True)
                else:
                    print(f"{impl:8s} {raw.name}: {res['seconds']:.1f} s (CPU "
                          f"{res['cpu_seconds']:.1f} s, load {res['load_before']}), peak RSS "
                          f"{gib(res['peak_rss'])} (anonymous {gib(res['peak_anon_rss'])}); "
                          f"stages {res['stages']}"
                          + (f"; content_hash {res['content_hash']}" if "content_hash" in res
                             else ""), flush=True)
            rows.append(row)
            name = f"results-{args.tag}.json" if args.tag else "results.json"
            (args.root / name).write_text(json.dumps(rows, indent=1))
    print()
    print_table(rows)
    big = [r for r in rows if r["interactions"] >= 5_000_000 and "seconds" in r["recbench"]
           and "seconds" in (r.get("pandas") or {})]
    for r in big:
        speed = r["pandas"]["seconds"] / r["recbench"]["seconds"]
        mem = r["pandas"]["peak_rss"] / r["recbench"]["peak_rss"]
        met = "met" if speed >= 5 and mem >= 1 else "NOT met"
        print(f"goal (>=5x faster than pandas, no more peak memory) on {r['layout']} "
              f"{r['interactions']:,}: {met} ({speed:.1f}x, pandas uses {mem:.2f}x the memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
