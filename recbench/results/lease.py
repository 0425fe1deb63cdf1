"""Per-key leases: at most one live attempt of a run key at a time, across processes and hosts.

Engines deliver at-least-once (a retried task, a worker that only looked dead, a user starting
the same command twice), so the store, not the engine, keeps a key from training twice. A lease
is the file `KEY.lease` beside the record, created with ``O_CREAT | O_EXCL`` (exactly one
creator wins) and holding its owner: attempt id, pid, host, start time. While the run lasts a
heartbeat thread touches the file every `stale_after_s / MISSED_BEATS` seconds. A lease is
*stale* when its file has missed `MISSED_BEATS` heartbeats, or at once when its owner is a
process on this host that no longer exists (a SIGKILLed run); a stale lease is taken over and
the new attempt resumes from the key's epoch checkpoint. A live lease means "running elsewhere".

Time is compared with the file's modification time, so hosts that share a store need clocks
that agree within a small part of `stale_after_s`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)
MISSED_BEATS = 6  # heartbeats a live lease may miss (a busy or swapping host) before it is stale
DEFAULT_STALE_S = 60.0
TAKEOVER_SUFFIX = ".takeover"


def new_attempt_id() -> str:
    """A fresh attempt id: unique per try of a key, safe as a path component."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a lease: written into the lease file when it is created."""

    attempt: str
    pid: int
    host: str
    started_at: str

    @classmethod
    def me(cls, attempt: str) -> LeaseOwner:
        return cls(attempt=attempt, pid=os.getpid(), host=socket.gethostname(),
                   started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def describe(self) -> str:
        return f"attempt {self.attempt}, pid {self.pid} on {self.host} since {self.started_at}"


@dataclass(frozen=True)
class LeaseState:
    """A lease file as found on disk."""

    path: Path
    owner: LeaseOwner | None  # None: the file is empty (being written) or unreadable
    age_s: float  # seconds since the last heartbeat
    stale: bool
    why: str  # for messages: "no heartbeat for 75 s", "owner pid 123 is gone", "alive"
    inode: int

    def describe(self) -> str:
        who = self.owner.describe() if self.owner else "unknown owner"
        return f"{who}; {self.why}"


def inspect_lease(path: Path, stale_after_s: float = DEFAULT_STALE_S) -> LeaseState | None:
    """The state of the lease at `path`, or None if there is none."""
    try:
        st = os.stat(path)
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    owner = _parse_owner(raw)
    age = max(0.0, time.time() - st.st_mtime)
    if age > stale_after_s:
        return LeaseState(path, owner, age, True, f"no heartbeat for {age:.0f} s", st.st_ino)
    if owner is not None and owner.host == socket.gethostname() and owner.pid != os.getpid() \
            and not _process_alive(owner.pid):
        return LeaseState(path, owner, age, True, f"owner pid {owner.pid} is gone", st.st_ino)
    return LeaseState(path, owner, age, False, f"heartbeat {age:.0f} s ago", st.st_ino)


class Lease:
    """A held lease; its heartbeat runs until `release` (or the end of a `with` block)."""

    def __init__(self, path: Path, owner: LeaseOwner, stale_after_s: float,
                 taken_over: LeaseState | None):
        self.path, self.owner, self.stale_after_s = path, owner, stale_after_s
        self.taken_over = taken_over  # the stale lease this one replaced, if any
        self.lost = False  # set if another attempt took the lease over while this one ran
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{path.name}",
                                        daemon=True)
        self._thread.start()

    @property
    def attempt(self) -> str:
        return self.owner.attempt

    def _beat(self) -> None:
        interval = max(self.stale_after_s / MISSED_BEATS, 0.01)
        while not self._stop.wait(interval):
            if not self._still_mine():
                self.lost = True
                log.warning("lease %s was taken over by another attempt (this one, %s, missed "
                            "its heartbeats); its record, if any, will lose to the first writer",
                            self.path, self.owner.attempt)
                return
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def _still_mine(self) -> bool:
        # by content, not inode: a file system may give a taker's new lease our old inode
        try:
            return _parse_owner(self.path.read_bytes()) == self.owner
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still this attempt's."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self._still_mine():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(path: Path, attempt: str | None = None,
            stale_after_s: float = DEFAULT_STALE_S) -> Lease | LeaseState:
    """Take the lease at `path`, taking over a stale one; a live one is returned as found.

    Args:
        path: the lease file (`KEY.lease` beside the record).
        attempt: this attempt's id (default: a fresh one).
        stale_after_s: silence after which a lease is stale (its heartbeat runs
            `MISSED_BEATS` times as often).

    Returns:
        The held `Lease`, or the `LeaseState` of the live lease another attempt holds.
    """
    if stale_after_s <= 0:
        raise ValueError(f"stale_after_s must be positive, got {stale_after_s}")
    owner = LeaseOwner.me(attempt or new_attempt_id())
    path.parent.mkdir(parents=True, exist_ok=True)
    taken_over: LeaseState | None = None
    for _ in range(20):  # each turn either wins, sees a live owner, or clears a stale lease
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
        except FileExistsError:
            state = inspect_lease(path, stale_after_s)
            if state is None:
                continue  # released between our create and our look
            if not state.stale:
                return state
            if _clear_stale(path, state, stale_after_s):
                taken_over = state
                log.warning("taking over the stale lease %s (%s)", path, state.describe())
            else:
                time.sleep(0.05)  # another attempt is taking it over right now
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(owner), fh)
            fh.flush()
            os.fsync(fh.fileno())
        return Lease(path, owner, stale_after_s, taken_over)
    state = inspect_lease(path, stale_after_s)
    if state is not None:
        return state
    raise RuntimeError(f"could not take the lease {path}: it changed hands 20 times")


def _clear_stale(path: Path, judged: LeaseState, stale_after_s: float) -> bool:
    """Remove the stale lease `judged`, under a short takeover lock so that two attempts that
    both judged it stale cannot remove a fresh lease the other just created."""
    lock = path.with_name(path.name + TAKEOVER_SUFFIX)
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.stat(lock).st_mtime > stale_after_s:
                os.unlink(lock)  # a taker died between its two steps
        return False
    os.close(fd)
    try:
        now = inspect_lease(path, stale_after_s)
        if now is None:
            return True
        if not now.stale or (now.inode, now.owner) != (judged.inode, judged.owner):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)


def _parse_owner(raw: bytes) -> LeaseOwner | None:
    try:
        data = json.loads(raw.decode())
        return LeaseOwner(attempt=str(data["attempt"]), pid=int(data["pid"]),
                          host=str(data["host"]), started_at=str(data["started_at"]))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _process_alive(pid: int) -> bool:
    """Whether `pid` runs on this host; a zombie (killed, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
