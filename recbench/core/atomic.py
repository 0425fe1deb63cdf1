"""Atomic writes: outputs appear whole or not at all (temp file/dir + rename).

Files and folders written here get the modes ordinary ones get (0o666 / 0o777 less the
umask), not `tempfile`'s private 0o600 / 0o700, so a store shared by a group stays readable.
A full disk (ENOSPC, EDQUOT) removes the partial output and raises `DiskFullError`: one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recbench.core.errors import DiskFullError, is_disk_full


def _umask() -> int:
    """The process umask, read without changing it where Linux exposes it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: the only portable way to read it is to set it
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open()` would give a new file: 0o666 less the umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode `mkdir()` would give a new folder: 0o777 less the umask."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def _disk_full_as_error(target: Path) -> Iterator[None]:
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError.from_os_error(exc, target) from exc
        raise


def _temp_file(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, file_mode())
    return fd, tmp


def _write_fd(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_dir(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory that is renamed to `target` when the block succeeds.

    On any exception (Ctrl-C and SIGTERM included) the temporary directory is removed and
    `target` is untouched. With `replace=True` an existing `target` is swapped out only after
    the new one is complete; only that old copy (a sibling of `target`) is ever deleted, and
    where `target` was a symbolic link only the link goes, never the folder it points to.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with _disk_full_as_error(target):
            os.chmod(tmp, dir_mode())
            yield tmp
            if os.path.lexists(target):
                if not replace:
                    raise FileExistsError(target)
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
                tmp.rename(target)
                if old.is_symlink() or not old.is_dir():
                    old.unlink()
                else:
                    shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temp path beside `path` for a writer that wants a file name (e.g. polars);
    it is renamed onto `path` when the block succeeds and removed when it fails."""
    fd, tmp = _temp_file(path)
    os.close(fd)
    try:
        with _disk_full_as_error(path):
            yield Path(tmp)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same directory and an atomic rename."""
    fd, tmp = _temp_file(path)
    try:
        with _disk_full_as_error(path):
            _write_fd(fd, data)
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def publish_bytes(path: Path, data: bytes) -> bool:
    """Write `data` to `path` only if `path` does not exist yet: the first writer wins.

    The bytes go to a temp file that is hard-linked onto `path` (`os.link` fails when the name
    exists, atomically, also between processes), so `path` is never partial and
    never replaced. Returns True if this call published `path`, False if it already existed.
    Where the file system has no hard links the fallback (check, then rename) is not race-free.
    """
    fd, tmp = _temp_file(path)
    try:
        with _disk_full_as_error(path):
            _write_fd(fd, data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                if os.path.lexists(path):
                    return False
                os.replace(tmp, path)
            return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())
