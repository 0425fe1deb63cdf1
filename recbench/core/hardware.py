"""The hardware fingerprint stored with every result (numbers are only comparable on like),
and the one place a process's compute threads are pinned."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

import psutil

# Read by OpenMP/BLAS when a library first loads (and inherited by any worker process).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def pin_threads(n: int) -> None:
    """Give torch, OpenMP and BLAS exactly `n` compute threads in this process, from now on.

    Training pins `n` = the run's `train_threads` before it starts: a result that depends on the
    reduction order must be computed at one fixed thread count, and a run must not take every
    core from the runs beside it. The environment variables cover libraries loaded later,
    threadpoolctl the BLAS/OpenMP pools already loaded, and torch its intra-op pool. Never
    imports torch (a CLI path without it stays light).

    Args:
        n: threads, at least 1.

    Raises:
        ValueError: `n` is below 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"pin_threads: a thread count is an integer >= 1 (got {n!r})")
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)  # not used as a context: the limit stays for the process
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The CUDA device name, only if torch is already imported (never imports it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def package_versions(names=("numpy", "polars", "torch", "transformers", "peft")) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def fingerprint(threads_used: int) -> dict:
    return {
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(logical=True) or 1,
        "threads_used": threads_used,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
    }
