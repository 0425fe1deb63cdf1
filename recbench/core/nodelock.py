"""An exclusive per-node slot: at most one process on a host inside it at a time.

The CPU latency step of a run takes the slot, so when a sweep runs several workers on one node
their per-sample latency timings never overlap each other (two timers competing for the same
cores would both read slow). It is a `flock` on a file under the recbench home, named after the
host: every run on a node shares it, whichever executor started it, and the kernel releases it
when its holder dies (a SIGKILLed worker never leaves it held). Training or evaluation of other
runs on the node may still overlap a timing; `--workers 1` per node gives fully quiet timings.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from recbench.core.names import path_component

try:
    import fcntl
except ImportError:  # Windows: no flock; the slot is then not exclusive
    fcntl = None  # type: ignore[assignment]


def slot_path(home: Path, name: str) -> Path:
    host = path_component(socket.gethostname())
    return Path(home) / "locks" / f"{path_component(name)}-{host}.lock"


@contextlib.contextmanager
def node_exclusive(home: Path, name: str = "latency") -> Iterator[float]:
    """Hold this host's `name` slot for the block; yields the seconds spent waiting for it."""
    path = slot_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # umask applies
    t0 = time.perf_counter()
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.perf_counter() - t0
    finally:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
