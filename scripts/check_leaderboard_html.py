"""Render the html leaderboard and screenshot it in headless Chromium, to look at the layout.

The page must be one self-contained file (no script, no external CSS/fonts/images). This script
renders it either from the records under a recbench home or from generated demo records shaped
like RecBench Tables 4-5 (five datasets, groups A-F for CTR and G-J for SeqRec, a row missing a
dataset, a dataset prepared in two versions, rows with three seeds), checks that it references
nothing external and draws an error bar (the CI of Overall) for every plotted row that has one,
and saves `leaderboard.html` and `leaderboard.png` in the output folder.

Usage:
    python scripts/check_leaderboard_html.py --demo --out-dir /tmp/lb
    python scripts/check_leaderboard_html.py --home ~/.recbench --out-dir /tmp/lb

Chromium: `apt-get install -y chromium` (or pass --chromium PATH). The browser runs with
networking features off and a throwaway profile; the page itself has a CSP of default-src 'none'.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from recbench.results.leaderboard import build_table, render_html
from recbench.results.record import Hardware, LatencyStats, Record
from recbench.results.store import ResultStore

DATASETS = ("mind", "microlens", "goodreads", "amazon-cds", "hm")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# (group, model, mode, per-dataset value, latency ms), values loosely after RecBench Tables 4-5.
CTR_ROWS = [
    ("baseline", "Random", "none", (0.50, 0.50, 0.50, 0.50, 0.50), 0.01),
    ("A", "DNN", "train", (0.6692, 0.7421, 0.5831, 0.5757, 0.7952), 0.43),
    ("A", "DCNv2", "train", (0.6707, 0.7578, 0.5778, 0.5664, 0.7950), 4.43),
    ("A", "GDCN", "train", (0.6704, 0.7571, 0.5948, 0.5784, 0.8120), 0.69),
    ("B", "DNN_text", "train", (0.6867, 0.7741, 0.5857, 0.5655, 0.8475), 1.05),
    ("B", "GDCN_text", "train", (0.6783, 0.7842, 0.5796, 0.5641, 0.8555), 1.21),
    ("C", "DNN_emb", "train", (0.7154, 0.8141, 0.5997, 0.5848, 0.8717), 1.32),
    ("C", "DCNv2_emb", "train", (0.7167, 0.8061, 0.5999, 0.5944, 0.8626), 4.81),
    ("D", "P5-BERT-base", "finetune", (0.5507, 0.5850, 0.5038, 0.5162, 0.5402), 38.01),
    ("D", "P5-OPT-350m", "finetune", (0.6512, 0.6984, 0.5110, 0.5281, None), 950.89),
    ("E", "Qwen2-0.5B", "zero-shot", (0.4868, 0.5717, 0.5148, 0.5043, 0.6287), 543.73),
    ("E", "Mistral-7B", "zero-shot", (0.6300, 0.6579, 0.5718, 0.5230, 0.7166), 7680.0),
    ("E", "Llama-3-8B", "finetune", (0.7345, 0.8328, 0.6826, 0.6268, 0.8771), 6800.0),
    ("E", "Mistral-7B", "finetune", (0.7353, 0.8295, 0.6680, 0.6754, 0.8810), 7680.0),
    ("F", "SID-BERT-base", "finetune", (0.5704, 0.5860, 0.4914, 0.5042, 0.5401), 36.40),
]
SEQ_ROWS = [
    ("baseline", "MostPopular", "none", (0.0021, 0.0034, 0.0102, 0.0008, 0.0065), 0.02),
    ("G", "SASRec-3L", "train", (0.0090, 0.0000, 0.0165, 0.0016, 0.0209), 23.30),
    ("G", "SASRec-12L", "train", (0.0241, 0.0297, 0.0548, 0.1041, 0.1235), 51.77),
    ("H", "SID-SASRec-3L", "train", (0.0266, 0.0028, 0.0029, 0.0000, 0.0084), 36.12),
    ("H", "SID-SASRec-3L-CBS", "train", (0.0849, 0.0123, 0.0127, 0.0007, 0.0422), 66.67),
    ("I", "BERT-base", "finetune", (0.0430, 0.1867, 0.0557, 0.1198, 0.1075), 41.54),
    ("I", "Qwen2-1.5B", "finetune", (0.0506, 0.0254, 0.0316, 0.0015, None), 1120.0),
    ("J", "SID-BERT-base-CBS", "finetune", (0.1682, 0.1195, 0.0059, 0.4616, 0.1834), 1900.0),
    ("J", "SID-Llama-3-8B", "finetune", (0.0456, 0.0255, 0.0221, 0.2443, 0.0337), 167250.0),
]


def demo_records() -> list[Record]:
    """Plausible records for both tasks, plus a second `mind` version and a superseded rerun."""
    rng = random.Random(0)
    hardware = Hardware(cpu="demo-cpu", cores=16, threads_used=1, memory_gb=64.0,
                        platform="linux", python=sys.version.split()[0])
    records: list[Record] = []

    def add(group: str, model: str, mode: str, task: str, dataset: str, value: float,
            latency: float, version: str = "", day: int = 2, seed: int = 0) -> None:
        metric, protocol = ("gauc", "ctr") if task == "ctr" else ("ndcg@10", "full")
        version = version or hashlib.sha256(dataset.encode()).hexdigest()[:16]
        jitter = latency * rng.uniform(0.9, 1.1)
        key = f"demo{len(records):04d}"
        records.append(Record(
            key=key, group=group, model=model, model_id=model, dataset=dataset,
            dataset_size="small", dataset_version=version, protocol_version="v1", task=task,
            mode=mode, metrics={protocol: {metric: value}},
            latency=LatencyStats(mean_ms=jitter, p50_ms=jitter, p95_ms=jitter * 1.4, n=1000,
                                 warmup=50, threads=1),
            seed=seed, config={"demo": True}, config_hash="demo", hardware=hardware,
            recbench_version="demo", started_at=f"2025-01-{day:02d}T00:00:00+00:00",
            finished_at=f"2025-01-{day:02d}T01:00:00+00:00"))

    for task, rows in (("ctr", CTR_ROWS), ("seq", SEQ_ROWS)):
        for group, model, mode, values, latency in rows:
            for dataset, value in zip(DATASETS, values, strict=True):
                if value is not None:
                    add(group, model, mode, task, dataset, value, latency)
    # The same dataset prepared again (new manifest hash) must get its own column.
    add("A", "DNN", "train", "ctr", "mind", 0.6811, 0.45, version="3f2a9c0000000000", day=5)
    add("C", "DNN_emb", "train", "ctr", "mind", 0.7209, 1.30, version="3f2a9c0000000000", day=5)
    # Two more seeds of a few rows (same config): their cells show mean ± std, a t-interval
    # over seeds, and Overall an error bar in the plot.
    for task, rows in (("ctr", CTR_ROWS), ("seq", SEQ_ROWS)):
        for group, model, mode, values, latency in rows[1:4]:
            for seed in (1, 2):
                for dataset, value in zip(DATASETS, values, strict=True):
                    if value is not None:
                        add(group, model, mode, task, dataset,
                            value * rng.uniform(0.97, 1.03), latency, seed=seed)
    return records


def external_references(page: str) -> list[str]:
    """src=/href= values that would leave the file (in-page #anchors are fine)."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    bad = [r for r in refs if not r.startswith("#")]
    bad += re.findall(r"url\(|@import|<script|<link", page, flags=re.IGNORECASE)
    return bad


def find_browser(explicit: str | None) -> str:
    for name in ([explicit] if explicit else BROWSERS):
        path = shutil.which(name) if name else None
        if path:
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium, or pass --chromium PATH")


def screenshot(browser: str, page: Path, png: Path, window: str) -> None:
    with tempfile.TemporaryDirectory(prefix="recbench-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={png}", f"--window-size={window}", page.resolve().as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not png.exists():
        raise SystemExit(f"chromium failed ({done.returncode}):\n{done.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--home", type=Path, help="render the records under this recbench home")
    source.add_argument("--demo", action="store_true", help="render generated demo records")
    parser.add_argument("--out-dir", type=Path, default=Path("leaderboard-check"))
    parser.add_argument("--chromium", help="browser executable (default: first found on PATH)")
    parser.add_argument("--window-size", default="1400,1800", help="WIDTH,HEIGHT in pixels")
    parser.add_argument("--no-screenshot", action="store_true", help="only render and check")
    args = parser.parse_args(argv)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.demo:
        # Through the store, so the page is built from records on disk as `leaderboard` does.
        with tempfile.TemporaryDirectory(prefix="recbench-demo-home-") as tmp:
            home = Path(tmp)
            for record in demo_records():
                ResultStore(home).write(record, predictions=None)
            records = list(ResultStore(home).records())
    else:
        home = args.home
        records = list(ResultStore(home).records())
    store = None if args.demo else ResultStore(home)  # predictions: markers, bootstrap CIs
    tables = [t for t in (build_table(records, task, store=store) for task in ("ctr", "seq"))
              if t.rows]
    if not tables:
        raise SystemExit(f"no records under {home}")
    page = render_html(tables)
    bad = external_references(page)
    if bad:
        raise SystemExit(f"the page references external resources: {bad}")
    with_ci = sum(r.overall_ci is not None and r.latency_ms is not None
                  for t in tables for r in t.rows)
    bars = page.count('class="errorbar"')
    if bars != with_ci:
        raise SystemExit(f"{with_ci} plotted rows have a CI of Overall but the page draws "
                         f"{bars} error bars")
    html_path = args.out_dir / "leaderboard.html"
    html_path.write_text(page)
    print(f"{html_path}: {len(page):,} bytes, {sum(len(t.rows) for t in tables)} rows, "
          f"{bars} error bars, no external references")
    if not args.no_screenshot:
        png = args.out_dir / "leaderboard.png"
        screenshot(find_browser(args.chromium), html_path, png, args.window_size)
        print(f"{png}: {png.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
