"""Fetch a dataset's official files: Rich progress, retries, resume, sha256 recorded."""

from __future__ import annotations

import gzip
import logging
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from recbench.core.errors import MissingRawFilesError
from recbench.core.hashing import sha256_file

log = logging.getLogger(__name__)
RETRIES = 3
TIMEOUT_S = 30


def fetch(name: str, entries: list[dict[str, Any]], raw_dir: Path, show_progress: bool = True
          ) -> dict[str, str]:
    """Download every entry into `raw_dir`; returns file name -> sha256 of what was downloaded.

    Raises MissingRawFilesError with the list of files to place by hand when a file needs a login
    or the network is unreachable.
    """
    manual = [e["manual"] for e in entries if "manual" in e]
    if manual or not entries:
        how = "; ".join(manual) or "no official download is known"
        raise MissingRawFilesError(f"{name}: raw files not found. {how}. Then run "
                                   f"`recbench prepare {name} --raw DIR`")
    raw_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for entry in entries:
        url = entry["url"]
        target = raw_dir / url.rsplit("/", 1)[-1]
        try:
            _download(url, target, show_progress)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            files = ", ".join(e["url"].rsplit("/", 1)[-1] for e in entries)
            raise MissingRawFilesError(
                f"{name}: could not download {url} ({exc}). Without network, download {files} "
                f"elsewhere, place them in {raw_dir} (or any folder) and run "
                f"`recbench prepare {name} --raw DIR`") from None
        digests[target.name] = sha256_file(target)
        _unpack(target, raw_dir, extract=bool(entry.get("extract")))
    return digests


def _download(url: str, target: Path, show_progress: bool) -> None:
    """Resumable download to `target` (a `.part` file grows until complete)."""
    if target.exists():
        return
    part = target.with_name(target.name + ".part")
    for attempt in range(1, RETRIES + 1):
        try:
            have = part.stat().st_size if part.exists() else 0
            req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                resumed = resp.status == 206
                total = int(resp.headers.get("Content-Length") or 0) + (have if resumed else 0)
                with open(part, "ab" if resumed else "wb") as fh:
                    _copy_with_progress(resp, fh, total, have if resumed else 0, target.name,
                                        show_progress)
            part.rename(target)
            return
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == RETRIES:
                raise
            log.warning("download of %s failed (%s); retry %d/%d", url, exc, attempt, RETRIES)
            time.sleep(2 ** attempt)


def _copy_with_progress(resp, fh, total: int, done: int, label: str, show: bool) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress("[bold]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), disable=not show) as bar:
        task = bar.add_task(label, total=total or None, completed=done)
        while block := resp.read(1 << 20):
            fh.write(block)
            bar.advance(task, len(block))


def _unpack(path: Path, raw_dir: Path, extract: bool) -> None:
    if path.suffix == ".gz":
        out = path.with_suffix("")
        if not out.exists():
            with gzip.open(path, "rb") as src, open(out.with_name(out.name + ".part"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            out.with_name(out.name + ".part").rename(out)
    elif extract and path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            zf.extractall(raw_dir)
