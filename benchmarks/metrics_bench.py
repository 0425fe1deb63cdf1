"""Benchmark of recbench.metrics: vectorised GAUC and full-ranking NDCG against per-user loops.

    python benchmarks/metrics_bench.py [--rows 1000000 --users 100000]

1. GAUC over `--rows` rows of `--users` users (scores rounded to 3 decimals, so ties occur):
   `recbench.metrics.ctr.gauc` against (a) a per-user loop calling sklearn's roc_auc_score,
   timed on a random subset of users and extrapolated linearly, and (b) a per-user numpy loop
   over every user. Per-user AUCs are checked to agree.
2. Full-catalogue NDCG@10 for `--rank-users` x `--rank-items` float32 scores (made beforehand,
   not timed) with a 20-item history masked per user: full_ranks + ranking_metrics against a
   per-user np.argsort loop, timed on a subset and extrapolated.

Timings are the best of `--repeat` runs; nothing is asserted, the goals are only printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score

from recbench.metrics.ctr import gauc, per_user_auc
from recbench.metrics.ranking import full_ranks, ranking_metrics, topk_items


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    """Smallest wall time of `repeat` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def make_ctr(rows: int, users: int, rng: np.random.Generator):
    user_ids = rng.integers(0, users, rows)
    labels = (rng.random(rows) < 0.3).astype(np.int8)
    scores = np.round(np.clip(0.25 * labels + 0.75 * rng.random(rows), 0, 1), 3)
    return user_ids, labels, scores


def user_slices(user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row order grouped by user, and each user's [start, stop) in that order."""
    order = np.argsort(user_ids, kind="stable")
    keys, starts = np.unique(user_ids[order], return_index=True)
    stops = np.append(starts[1:], len(order))
    return order, keys, np.stack([starts, stops], axis=1)


def loop_auc_sklearn(order, bounds, labels, scores) -> np.ndarray:
    out = np.full(len(bounds), np.nan)
    for i, (a, b) in enumerate(bounds):
        y = labels[order[a:b]]
        if 0 < y.sum() < b - a:
            out[i] = roc_auc_score(y, scores[order[a:b]])
    return out


def loop_auc_numpy(order, bounds, labels, scores) -> np.ndarray:
    """Per-user pairwise comparison: correct pairs + 0.5 ties, over positives x negatives."""
    out = np.full(len(bounds), np.nan)
    for i, (a, b) in enumerate(bounds):
        rows = order[a:b]
        y = labels[rows] == 1
        if y.any() and not y.all():
            s = scores[rows]
            pos, neg = s[y][:, None], s[~y][None, :]
            out[i] = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
    return out


def bench_gauc(args, rng, table) -> None:
    user_ids, labels, scores = make_ctr(args.rows, args.users, rng)
    t_vec, value = best_of(args.repeat, lambda: gauc(user_ids, labels, scores))
    users_ok, auc_ok, _ = per_user_auc(user_ids, labels, scores)

    order, keys, bounds = user_slices(user_ids)
    both = np.isin(keys, users_ok)
    n_both = int(both.sum())
    subset = rng.choice(np.flatnonzero(both), size=min(args.subset_users, n_both), replace=False)
    subset.sort()
    t_sub, sk_sub = best_of(1, lambda: loop_auc_sklearn(order, bounds[subset], labels, scores))
    # Users with one class cost the loop only a label check, so scale by users with both.
    t_sk = t_sub * n_both / len(subset)
    sk_diff = np.abs(sk_sub - auc_ok[np.searchsorted(users_ok, keys[subset])]).max()

    t_np, np_all = best_of(1, lambda: loop_auc_numpy(order, bounds, labels, scores))
    np_diff = np.abs(np_all[both] - auc_ok).max()
    np_gauc = float(np.nanmean(np_all))

    n_users = len(keys)
    print(f"GAUC: {args.rows:,} rows, {n_users:,} users ({n_both:,} with both labels)")
    print(f"  gauc = {value:.6f} (vectorised), {np_gauc:.6f} (numpy loop)")
    print(f"  max per-user |AUC diff|: {sk_diff:.1e} vs sklearn ({len(subset):,}-user subset),")
    print(f"  {np_diff:.1e} vs numpy loop (all users)")
    print(
        f"  sklearn loop: {t_sub:.2f} s measured on {len(subset):,} random users, "
        f"extrapolated linearly to {n_both:,} users"
    )
    table += [
        ("GAUC", "recbench vectorised gauc", t_vec, 1.0, "measured"),
        ("GAUC", "per-user numpy loop", t_np, t_np / t_vec, "measured, all users"),
        ("GAUC", "per-user sklearn loop", t_sk, t_sk / t_vec, "EXTRAPOLATED from subset"),
    ]
    ratio = t_sk / t_vec
    verdict = "MET" if ratio >= 20 else "MISSED"
    print(f"  goal GAUC >= 20x faster than per-user sklearn loop: {verdict} ({ratio:.0f}x)")


def naive_row_ranks(scores, targets, history, rows) -> np.ndarray:
    ranks = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        s = scores[r].copy()
        h = history[r]
        h = h[(h >= 0) & (h != targets[r])]
        s[h] = -np.inf
        order = np.argsort(-s, kind="stable")
        ranks[i] = np.flatnonzero(order == targets[r])[0] + 1
    return ranks


def bench_full_ranking(args, rng, table) -> None:
    n_rows, n_items = args.rank_users, args.rank_items
    scores = rng.standard_normal((n_rows, n_items), dtype=np.float32)
    targets = rng.integers(0, n_items, n_rows)
    scores[np.arange(n_rows), targets] += 2.5  # a model that is right often enough to measure
    history = rng.integers(0, n_items, (n_rows, args.history))
    lengths = rng.integers(1, args.history + 1, n_rows)
    history[np.arange(args.history)[None, :] >= lengths[:, None]] = -1  # ragged, -1 padded

    def evaluate():
        return ranking_metrics(full_ranks(scores, targets, exclude=history), ks=(10,))

    t_vec, metrics = best_of(args.repeat, evaluate)
    tracemalloc.start()
    evaluate()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    subset = np.sort(rng.choice(n_rows, size=min(args.naive_rows, n_rows), replace=False))
    t_sub, naive = best_of(1, lambda: naive_row_ranks(scores, targets, history, subset))
    t_naive = t_sub * n_rows / len(subset)
    ours = full_ranks(scores[subset], targets[subset], exclude=history[subset])
    agree = int((ours == naive).sum())
    t_topk, _ = best_of(1, lambda: topk_items(scores, 10))

    print(f"\nFull ranking: {n_rows:,} users x {n_items:,} items, float32 scores")
    print(f"  ({scores.nbytes / 2**20:,.0f} MiB, made beforehand, not timed), history <= 20")
    print(f"  ndcg@10 = {metrics['ndcg@10']:.5f}, hr@10 = {metrics['hr@10']:.5f}")
    print(
        f"  peak extra memory of full_ranks + ranking_metrics: {peak / 2**20:.1f} MiB "
        "(tracemalloc peak of traced allocations, numpy buffers included, during one "
        "evaluation; the score matrix itself is excluded)"
    )
    print(
        f"  naive loop: {t_sub:.2f} s measured on {len(subset)} random users, extrapolated "
        f"linearly to {n_rows:,}; ranks agree on {agree}/{len(subset)} subset users"
    )
    table += [
        ("NDCG@10 full", "recbench full_ranks+metrics", t_vec, 1.0, "measured"),
        ("NDCG@10 full", "per-user np.argsort loop", t_naive, t_naive / t_vec, "EXTRAPOLATED"),
        ("top-10 lists", "recbench topk_items", t_topk, float("nan"), "measured (info)"),
    ]
    verdict = "MET" if t_vec < 2.0 else "MISSED"
    print(f"  goal full-ranking eval < 2 s: {verdict} ({t_vec:.3f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--subset-users", type=int, default=5_000)
    parser.add_argument("--rank-users", type=int, default=5_000)
    parser.add_argument("--rank-items", type=int, default=50_000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--naive-rows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(
        f"numpy {np.__version__}, python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    print(f"best of {args.repeat} runs for recbench timings\n")
    rng = np.random.default_rng(args.seed)
    table: list[tuple[str, str, float, float, str]] = []
    bench_gauc(args, rng, table)
    bench_full_ranking(args, rng, table)

    print(f"\n{'task':<14} {'method':<30} {'seconds':>9} {'x ours':>8}  note")
    for task, method, seconds, ratio, note in table:
        shown = "" if np.isnan(ratio) else f"{ratio:.1f}"
        print(f"{task:<14} {method:<30} {seconds:>9.3f} {shown:>8}  {note}")


if __name__ == "__main__":
    main()
