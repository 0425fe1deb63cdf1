"""Throughput and overhead of `recbench sweep`: a 16-run grid, 1 vs 2 workers, local and Ray.

    python benchmarks/sweep_bench.py [--runs 16] [--epochs 5] [--executors local,ray]
                                     [--workers 1,2] [--start forkserver,spawn]

The grid is SASRec-3L on the synthetic tiny set, one seed per run (16 different keys), each
run short but real (train `--epochs` epochs, evaluate, time latency) and pinned to one thread.
Each configuration gets a fresh results store (the prepared dataset is copied in, so no run is
skipped). Printed per configuration:

- wall: the sweep's wall time (planning excluded); speedup = wall(1 worker) / wall(2 workers);
- in-run: the mean time a run spends inside the worker entry `run_spec` (imports, data,
  training, evaluation, latency, publishing), and of that the run's own train + eval seconds;
- overhead/run = (workers x wall - sum of in-run times) / runs: what a run costs outside
  `run_spec` (process start, unpickling, scheduling, result transfer), also as a share of the
  in-run time;
- the local executor with both start methods: `forkserver` (the default: each run forked from
  a server that imported torch, polars and the runner once; the server's one start-up is
  timed separately, before the first configuration) and `spawn` (a bare interpreter per run);
- Ray: `ray.init` time and the resident memory of Ray's own processes (gcs, raylet, workers'
  core processes at idle) right after start-up.

Nothing is asserted: the numbers depend on the machine and on what else runs on it (say so
when you quote them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from recbench.distributed.executors import LocalExecutor, make_executor
from recbench.distributed.grid import expand, grid_from_dict
from recbench.distributed.sweep import plan_sweep, run_sweep
from recbench.results.store import ResultStore


def grid(runs: int, epochs: int):
    return grid_from_dict({
        "name": "bench", "groups": ["G"], "models": ["SASRec-3L"], "datasets": ["synthetic"],
        "seeds": list(range(runs)), "size": "tiny",
        "settings": {"epochs": epochs, "patience": 100, "latency_samples": 100,
                     "train_threads": 1, "latency_threads": 1},
        "resources": {"default": {"cpus": 1}}})


def ray_footprint() -> float:
    """Resident MiB of Ray's processes (gcs_server, raylet, dashboard/agents, idle workers)."""
    import psutil

    total = 0
    for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if any(s in cmd for s in ("gcs_server", "raylet", "ray::", "ray/_private",
                                  "ray/dashboard")):
            total += p.info["memory_info"].rss if p.info["memory_info"] else 0
    return total / 2**20


def one(executor: str, workers: int, base: Path, seed_home: Path, runs: int, epochs: int,
        start: str = "") -> dict:
    home = base / f"{executor}-{start}-{workers}"
    shutil.copytree(seed_home / "datasets", home / "datasets")
    plan = plan_sweep(expand(grid(runs, epochs), home=home), "bench", home, executor)
    assert len(plan.specs) == runs, "every run must be fresh"
    extra = {}
    if executor == "ray":
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        extra["ray_init_s"] = time.perf_counter() - t0
        time.sleep(2)
        extra["ray_rss_mib"] = ray_footprint()
    try:
        ex = (LocalExecutor(workers, max_retries=0, start=start) if executor == "local"
              else make_executor(executor, workers=workers, max_retries=0))
        t0 = time.perf_counter()
        result = run_sweep(plan, ex)
        wall = time.perf_counter() - t0
    finally:
        if executor == "ray":
            import ray

            ray.shutdown()
    statuses = [o.status for o in result.outcomes]
    records = {r.key: r for r in ResultStore(home).records()}
    in_run = sum(o.seconds for o in result.outcomes)
    own = sum(r.train_seconds + r.eval_seconds for r in records.values())
    overhead = (workers * wall - in_run) / runs
    return {"executor": executor, "workers": workers, "runs": runs,
            "done": statuses.count("done"), "wall_s": wall, "in_run_mean_s": in_run / runs,
            "train_eval_mean_s": own / max(len(records), 1), "overhead_per_run_s": overhead,
            "overhead_share": overhead / (in_run / runs), **extra}


def start_fork_server() -> float:
    """Start the local executor's fork server (its preload imports) and time it."""
    ctx = LocalExecutor(1, start="forkserver").ctx  # sets the preload list
    t0 = time.perf_counter()
    proc = ctx.Process(target=time.sleep, args=(0,))  # forked once the server has imported
    proc.start()
    proc.join()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--executors", default="local,ray")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--start", default="forkserver,spawn",
                    help="the local executor's start methods to measure")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    seed_home = base / "seed"
    plan_sweep(expand(grid(1, args.epochs), home=seed_home), "prepare", seed_home, "local")
    configs = [(ex, start) for ex in args.executors.split(",")
               for start in (args.start.split(",") if ex == "local" else [""])]
    if ("local", "forkserver") in configs:
        print(f"fork server start-up (preload imports, once per driver): "
              f"{start_fork_server():.1f} s", flush=True)
    rows = []
    try:
        for executor, start in configs:
            for workers in (int(w) for w in args.workers.split(",")):
                row = one(executor, workers, base, seed_home, args.runs, args.epochs, start)
                row["start"] = start
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print(f"\n{'executor':18} {'workers':>7} {'wall s':>8} {'speedup':>7} {'in-run s':>8} "
          f"{'train+eval s':>12} {'overhead/run s':>14} {'share':>6}")
    for row in rows:
        ref = next((r for r in rows if (r["executor"], r["start"]) ==
                    (row["executor"], row["start"]) and r["workers"] == 1), row)
        name = row["executor"] + (f" ({row['start']})" if row["start"] else "")
        print(f"{name:18} {row['workers']:>7} {row['wall_s']:>8.1f} "
              f"{ref['wall_s'] / row['wall_s']:>7.2f} {row['in_run_mean_s']:>8.1f} "
              f"{row['train_eval_mean_s']:>12.1f} {row['overhead_per_run_s']:>14.2f} "
              f"{row['overhead_share']:>6.1%}"
              + (f"  ray.init {row['ray_init_s']:.1f} s, {row['ray_rss_mib']:.0f} MiB"
                 if "ray_init_s" in row else ""))


if __name__ == "__main__":
    main()
