"""`recbench store check`: what the results store holds that no finished or live run owns.

Orphans are predictions no record names, stale leases, temp files that no live attempt is
writing, and the `KEY.work` checkpoint folders of keys that already have a record. A checkpoint
folder of an unfinished key is not an orphan: it is what a rerun resumes from. Damaged records
are listed apart and never removed here (a rerun of the key redoes and replaces them).
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recbench.results.lease import DEFAULT_STALE_S, TAKEOVER_SUFFIX, inspect_lease
from recbench.results.record import Record
from recbench.results.store import (
    LEASE_SUFFIX,
    PREDICTIONS_SUFFIX,
    WORK_SUFFIX,
    ResultStore,
    read_record,
)

OrphanKind = Literal["predictions", "lease", "temp", "work"]
KIND_NAMES: dict[str, tuple[str, str]] = {  # kind -> (singular, plural)
    "predictions": ("predictions file without a record", "predictions files without a record"),
    "lease": ("stale lease", "stale leases"),
    "temp": ("leftover temp file", "leftover temp files"),
    "work": ("work dir of a finished key", "work dirs of finished keys"),
}


@dataclass(frozen=True)
class Orphan:
    kind: OrphanKind
    path: Path
    key: str
    why: str


@dataclass
class StoreCheck:
    root: Path
    orphans: list[Orphan] = field(default_factory=list)
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    removed: list[Orphan] = field(default_factory=list)

    def summary(self, fixed: bool) -> str:
        """One line: how many orphans of each kind (found, or removed with `fixed`)."""
        shown = self.removed if fixed else self.orphans
        counts = Counter(o.kind for o in shown)
        parts = [f"{n} {KIND_NAMES[k][0] if n == 1 else KIND_NAMES[k][1]}"
                 for k in KIND_NAMES if (n := counts[k])]
        total = len(shown)
        noun = "orphan" if total == 1 else "orphans"
        head = (f"removed {total} {noun}" if fixed else f"{total} {noun}") + \
            (f" ({', '.join(parts)})" if parts else "") + f" under {self.root}"
        if fixed and len(self.removed) < len(self.orphans):
            head += f"; {len(self.orphans) - len(self.removed)} left (in use again)"
        if not fixed and self.orphans:
            head += "; --fix removes them"
        if self.damaged:
            n = len(self.damaged)
            head += (f"; {n} damaged *.json file{'s' if n != 1 else ''} kept (a damaged record "
                     "is redone by the next run of its key)")
        return head


def check_store(store: ResultStore, stale_after_s: float = DEFAULT_STALE_S) -> StoreCheck:
    """Find the orphans of `store` (nothing is changed)."""
    result = StoreCheck(store.root)
    if not store.root.is_dir():
        return result
    for folder in sorted(p for p in store.root.glob("*/*/*") if p.is_dir()
                         and not p.is_symlink()):
        _check_folder(folder, stale_after_s, result)
    return result


def fix_store(check: StoreCheck, stale_after_s: float = DEFAULT_STALE_S) -> StoreCheck:
    """Remove the orphans `check` found, each re-checked just before (a key may have become
    live again since); `check.removed` lists what went."""
    for orphan in check.orphans:
        live = _live_keys(orphan.path.parent, stale_after_s)
        if orphan.kind == "lease":
            now = inspect_lease(orphan.path, stale_after_s)
            if now is None or not now.stale:
                continue
        elif orphan.key in live:
            continue
        if _remove(orphan.path):
            check.removed.append(orphan)
    return check


def _check_folder(folder: Path, stale_after_s: float, out: StoreCheck) -> None:
    entries = sorted(folder.iterdir())
    records: dict[str, Record] = {}
    for path in entries:
        if path.suffix == ".json" and not path.name.startswith("."):
            found = read_record(path)
            if isinstance(found, Record):
                records[path.stem] = found
            else:
                out.damaged.append((path, found))
    named = {r.predictions for r in records.values() if r.predictions}
    live = set()
    for path in entries:
        if path.name.endswith(LEASE_SUFFIX) and not path.name.startswith("."):
            state = inspect_lease(path, stale_after_s)
            if state is None:
                continue
            key = path.name.removesuffix(LEASE_SUFFIX)
            if state.stale:
                out.orphans.append(Orphan("lease", path, key, state.describe()))
            else:
                live.add(key)
    for path in entries:
        name = path.name
        key = _key_of(name)
        if key in live:
            continue
        if name.endswith(TAKEOVER_SUFFIX):
            # a lease being taken over holds this for milliseconds; an old one is a dead taker's
            if _age(path) > stale_after_s:
                out.orphans.append(Orphan("temp", path, key, "a takeover that never finished"))
        elif name.startswith("."):
            if _is_temp(name):
                out.orphans.append(Orphan("temp", path, key, "no live attempt is writing it"))
        elif name.endswith(PREDICTIONS_SUFFIX) and name not in named:
            why = "its key has no record" if key not in records else \
                f"the record names {records[key].predictions}"
            out.orphans.append(Orphan("predictions", path, key, why))
        elif name.endswith(WORK_SUFFIX) and path.is_dir() and not path.is_symlink():
            if key in records:
                out.orphans.append(Orphan("work", path, key, "the key has a record"))
            else:  # a resumable checkpoint: keep it, but not a half-written copy of it
                out.orphans.extend(Orphan("temp", p, key, "an interrupted checkpoint write")
                                   for p in sorted(path.glob("*.tmp")))


def _key_of(name: str) -> str:
    return name.lstrip(".").split(".", 1)[0]


def _is_temp(name: str) -> bool:
    return name.endswith(".tmp") or ".tmp-" in name or ".old-" in name


def _age(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _live_keys(folder: Path, stale_after_s: float) -> set[str]:
    live = set()
    for path in folder.glob(f"*{LEASE_SUFFIX}"):
        state = inspect_lease(path, stale_after_s)
        if state is not None and not state.stale:
            live.add(path.name.removesuffix(LEASE_SUFFIX))
    return live


def _remove(path: Path) -> bool:
    """Remove a file, a link (never what it points to) or a folder; False if already gone."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True
