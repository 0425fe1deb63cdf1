"""Reproduce the committed leaderboards in `leaderboards/`: every registered conventional model
(groups A, B, C, G) and the baselines on the real subsets of `../shared/data`, then the tables.

    python scripts/leaderboards.py prepare          # the six real subsets, --size small
    python scripts/leaderboards.py run [--groups A,G] [--datasets mind] [--models SASRec-3L]
                                       [--overwrite always]   # re-run finished runs
    python scripts/leaderboards.py tables           # leaderboards/*.md from the results store

`run` calls `recbench run` once per (group, model) over all prepared datasets; finished runs are
skipped (`--overwrite never`), so an interrupted `run` resumes where it stopped. Every command
it executes is appended to `leaderboards/COMMANDS.md` so the tables can be traced to them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "leaderboards"
SHARED = Path(os.environ.get("RECBENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
RECBENCH = [sys.executable, "-m", "recbench"]

# recbench dataset name -> folder in ../shared/data (microlens and steam lack interactions /
# are not in the list)
DATASETS = {"goodbooks-10k": "goodbooks-10k", "mind": "mind", "hm": "hm",
             "amazon-beauty": "amazon-beauty", "amazon-games": "amazon-games",
             "ml-latest-small": "movielens-latest-small"}
SIZE = "small"
NINE = ["DNN", "PNN", "DeepFM", "DCN", "DCNv2", "MaskNet", "FinalMLP", "AutoInt", "GDCN"]
PLAN: dict[str, list[tuple[str, list[str]]]] = {
    "baseline": [("MostPopular", []), ("Random", [])],
    "A": [(m, []) for m in NINE],
    "B": [(f"{m}_text", []) for m in NINE],
    "C": [(f"{m}_emb", ["encoder=minilm-l6"]) for m in NINE],
    # cheapest first, so an interrupted pass still fills most of the table
    "G": [(m, []) for m in ["SASRec-3L", "GRU4Rec", "BERT4Rec", "SKNN", "V-SKNN", "S-SKNN",
                            "SF-SKNN"]]
         + [(m, ["encoder=minilm-l6"]) for m in ["LLM2SASRec", "SKNNEmb"]]
         + [(m, []) for m in ["SASRec-6L", "SASRec-12L"]]
         + [(m, ["encoder=minilm-l6"]) for m in ["LLM2BERT4Rec", "LLM2GRU4Rec"]]
         + [("SASRec-24L", [])],
    "H": [(m, []) for m in ["SID-SASRec-3L", "SID-SASRec-3L-CBS", "SID-SASRec-6L-CBS"]],
}


def sh(cmd: list[str], log: Path | None = None) -> int:
    line = shlex.join(["recbench", *cmd[len(RECBENCH):]])
    print(f"$ {line}", flush=True)
    if log is not None:
        with log.open("a") as f:
            f.write(f"    {line}\n")
    return subprocess.call(cmd, cwd=ROOT)


def prepare() -> None:
    for name, folder in DATASETS.items():
        sh([*RECBENCH, "prepare", name, "--raw", str(SHARED / folder), "--size", SIZE],
           OUT / "COMMANDS.md")


def run(groups: list[str], datasets: list[str], models: list[str] | None = None,
        overwrite: str = "never") -> int:
    failed = []
    for group in groups:
        for model, settings in PLAN[group]:
            if models is not None and model not in models:
                continue
            cmd = [*RECBENCH, "run", "--group", group, "--model", model, "--size", SIZE]
            if overwrite != "never":
                cmd += ["--overwrite", overwrite]
            for d in datasets:
                cmd += ["--dataset", d]
            for s in settings:
                cmd += ["--set", s]
            if sh(cmd, OUT / "COMMANDS.md") != 0:
                failed.append(f"{group}/{model}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def tables() -> None:
    cols = ",".join(DATASETS)
    for task, metric, protocol in [("ctr", "gauc", None), ("ctr", "auc", None),
                                   ("seq", "ndcg@10", "full"), ("seq", "ndcg@10", "sampled100"),
                                   ("seq", "hr@10", "full"), ("seq", "mrr@10", "full")]:
        name = f"{task}-{metric.replace('@', '')}" + (f"-{protocol}" if protocol else "")
        cmd = [*RECBENCH, "leaderboard", "--task", task, "--metric", metric, "--datasets", cols,
               "--format", "md", "--output", str(OUT / f"{name}.md")]
        if protocol:
            cmd += ["--protocol", protocol]
        sh(cmd)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["prepare", "run", "tables"])
    parser.add_argument("--groups", default="baseline,A,B,C,G")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=None, help="only these models of the plan (a,b,..)")
    parser.add_argument("--overwrite", default="never", choices=["never", "always"])
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.what == "prepare":
        prepare()
    elif args.what == "run":
        return run(args.groups.split(","), args.datasets.split(","),
                   args.models.split(",") if args.models else None, args.overwrite)
    else:
        tables()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
