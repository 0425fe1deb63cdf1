"""Benchmark of LLMSeqSim's exact top-k (recbench.models.knn.similarity.top_k) on CPU.

    python benchmarks/llmseqsim_bench.py                       # 10k sessions x 12k, 100k, 1M items
    python benchmarks/llmseqsim_bench.py --items 12000 --sessions 2000 --threads 1

Catalogue and sessions are random unit vectors (d = `--dim`, 512), so the inner product is the
cosine; every method scores by inner product and returns the top `--k` (20) per session:

- recbench: `top_k(..., similarity="dot")`: blocks of queries x catalogue chunks of at most
  64 MiB of float32 scores (one BLAS matmul each), a threshold from group maxima that keeps
  ~k candidates per row, a sort of those only, chunk lists merged exactly;
- argsort: the plain baseline, the full score matrix of a block and `np.argsort(-s)[:, :k]`
  (stable); it is timed on `--baseline-rows` sessions and extrapolated linearly;
- faiss: `IndexFlatIP` (exact), when `faiss` is importable (`pip install 'recbench[faiss]'`).

Results are compared id for id (recbench vs argsort on the baseline rows, recbench vs faiss on
all rows); a differing id whose score equals the other's within 1e-5 is a tie, reported apart.
Peak memory: tracemalloc's peak of numpy allocations during the call (numpy reports them; the
catalogue and the queries, made beforehand, are not counted), and for faiss the index's copy of
the catalogue plus its outputs (its own allocations are invisible to tracemalloc). Timings are
the best of `--repeat`; the load average is printed, since other processes share the cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np

from recbench.models.knn.similarity import top_k


def unit_rows(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed(repeat: int, fn):
    """(best seconds, numpy peak bytes of the last call, last result)."""
    best, result, peak = float("inf"), None, 0
    for _ in range(repeat):
        tracemalloc.start()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return best, peak, result


def argsort_top_k(q: np.ndarray, x: np.ndarray, k: int, rows: int = 256) -> np.ndarray:
    out = []
    for lo in range(0, len(q), rows):
        s = q[lo:lo + rows] @ x.T
        out.append(np.argsort(-s, axis=1, kind="stable")[:, :k])
    return np.concatenate(out)


def compare(a: np.ndarray, b: np.ndarray, q: np.ndarray, x: np.ndarray) -> str:
    """'identical', or how many ids differ and how many of those are exact-score ties."""
    diff = np.argwhere(a != b)
    if not len(diff):
        return "identical"
    r, c = diff[:, 0], diff[:, 1]
    sa = np.einsum("ij,ij->i", q[r], x[a[r, c]])
    sb = np.einsum("ij,ij->i", q[r], x[b[r, c]])
    ties = int(np.sum(np.abs(sa - sb) <= 1e-5))
    return f"{len(diff)} ids differ ({ties} score ties)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", default="12000,100000,1000000")
    p.add_argument("--sessions", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--baseline-rows", type=int, default=500)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="faiss threads (0: its default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        import faiss
    except ImportError:
        faiss = None
    if faiss is not None and args.threads:
        faiss.omp_set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; numpy {np.__version__}, faiss "
          f"{faiss.__version__ if faiss else 'not installed'}; {args.sessions} sessions, "
          f"d = {args.dim}, k = {args.k}")
    header = (f"{'items':>9} | {'recbench s':>10} | {'MiB':>6} | {'argsort s (extrap.)':>19} | "
              f"{'MiB':>6} | {'faiss s':>8} | {'MiB':>6} | {'x argsort':>9} | {'x faiss':>7} | "
              "same ids (argsort rows; faiss)")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(args.seed)
    q = unit_rows(args.sessions, args.dim, rng)
    for m in (int(float(v)) for v in args.items.split(",")):
        x = unit_rows(m, args.dim, rng)
        t_rb, mem_rb, (ids, _) = timed(args.repeat, lambda x=x: top_k(q, x, args.k, "dot"))
        nb = min(args.baseline_rows, args.sessions)
        t_as, mem_as, base = timed(args.repeat, lambda x=x, nb=nb: argsort_top_k(q[:nb], x,
                                                                                  args.k))
        t_as *= args.sessions / nb
        same_as = compare(ids[:nb], base, q[:nb], x)
        t_fs, mem_fs, same_fs = float("nan"), 0, "-"
        if faiss is not None:
            def run_faiss(x=x):
                index = faiss.IndexFlatIP(args.dim)
                index.add(x)
                return index.search(q, args.k)[1]
            t_fs, _, fids = timed(args.repeat, run_faiss)
            mem_fs = x.nbytes + args.sessions * args.k * 12
            same_fs = compare(ids, fids.astype(np.int64), q, x)
        mib = 2 ** 20
        print(f"{m:>9,} | {t_rb:>10.2f} | {mem_rb / mib:>6.0f} | {t_as:>19.2f} | "
              f"{mem_as / mib:>6.0f} | {t_fs:>8.2f} | {mem_fs / mib:>6.0f} | "
              f"{t_as / t_rb:>9.1f} | {t_fs / t_rb:>7.2f} | {same_as}; {same_fs}")
        del x


if __name__ == "__main__":
    main()
