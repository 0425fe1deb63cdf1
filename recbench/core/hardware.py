"""The hardware fingerprint stored with every result (numbers are only comparable on like)."""

from __future__ import annotations

import importlib.metadata
import platform
import sys

import psutil


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
