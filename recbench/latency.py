"""The per-sample latency protocol shared by every model (RecBench §4.2, DESIGN "Protocols").

Batch size 1, fixed thread count (default 1, recorded), warm-up rows first, then N test rows,
each timed from the raw test row to its score(s) (tokenisation and feature lookup included).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

import numpy as np
import polars as pl

from recbench.results.record import LatencyStats


@contextlib.contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools (and torch, when loaded) to `threads` for the block."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None and before is not None:
                torch.set_num_threads(before)


def measure(score_one: Callable[[pl.DataFrame], object], rows: pl.DataFrame, *, n: int = 1000,
            warmup: int = 20, threads: int = 1, device: str = "cpu") -> LatencyStats:
    """Time `score_one` on single-row slices of `rows` (the first `n`, after `warmup` others).

    Raises:
        ValueError: `n` or `threads` below 1, `warmup` below 0, or no rows (EvalConfig's bounds
            catch the settings before a run trains; this guards other callers).
    """
    if n < 1 or threads < 1 or warmup < 0 or rows.height == 0:
        raise ValueError(f"latency: need n >= 1, threads >= 1, warmup >= 0 and rows (got n={n}, "
                         f"threads={threads}, warmup={warmup}, {rows.height} rows)")
    n = min(n, rows.height)
    warm = min(warmup, rows.height)
    times = np.empty(n)
    with fixed_threads(threads):
        for i in range(warm):
            score_one(rows.slice(rows.height - 1 - i, 1))
        for i in range(n):
            row = rows.slice(i, 1)
            start = time.perf_counter()
            score_one(row)
            times[i] = time.perf_counter() - start
    ms = times * 1e3
    return LatencyStats(mean_ms=float(ms.mean()), p50_ms=float(np.percentile(ms, 50)),
                        p95_ms=float(np.percentile(ms, 95)), n=n, warmup=warm, threads=threads,
                        device=device)
