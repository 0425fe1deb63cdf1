"""Exceptions meant for users: the CLI prints them as one red line and exits non-zero."""

from __future__ import annotations

import difflib
import errno
import os
import signal
from collections.abc import Iterable


def quote(value: object, limit: int = 80) -> str:
    """A value as a message quotes it: repr (control bytes escaped), cut to `limit` characters.

    Names and data values can be arbitrarily long or hostile (a 50 MB line, an ESC byte);
    a message shows enough to find them, never the whole thing.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


class RecbenchError(Exception):
    """Base class of every error a user can cause (bad input, unknown name, missing file)."""

    exit_code = 2


class UnknownNameError(RecbenchError):
    """An unknown dataset/model/group/metric; the message lists close matches and the choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], hint: str = "",
                 shown: Iterable[str] | None = None):
        """`choices` are matched against `name`; `shown` (default: `choices`) are listed."""
        choices = sorted(choices)
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        did_you_mean = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = choices if shown is None else list(shown)
        listing = ", ".join(shown) if len(shown) <= 30 else ", ".join(shown[:30]) + ", ..."
        super().__init__(f"unknown {kind} {quote(name)}{hint}.{did_you_mean} Choices: {listing}")
        self.name, self.close = name, close


class DataError(RecbenchError):
    """Raw or prepared data that does not match what a loader expects."""


class MissingRawFilesError(DataError):
    """Raw files are neither on disk nor downloadable."""


class ConfigError(RecbenchError):
    """An invalid configuration value or key."""


class AlreadyExistsError(RecbenchError):
    """An output exists and the user did not ask to overwrite it."""


class DiskFullError(RecbenchError):
    """The disk (or quota) holding an output is full; the partial output was removed."""

    @classmethod
    def from_os_error(cls, exc: BaseException, path: str | os.PathLike[str] | None
                      ) -> DiskFullError:
        where = f" writing {path}" if path else ""
        return cls(f"no space left on the device{where}: free space there or point --home / "
                   "RECBENCH_HOME at a larger disk (nothing partial was kept)")


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk or quota is full (an OSError, or a library's wrapped one)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # polars/pyarrow re-raise the OS error inside their own types, keeping only its text
    text = str(exc)
    return "No space left on device" in text or "os error 28" in text


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM. `kept` says what was kept to resume from (None: nothing was)."""

    def __init__(self, signum: int = signal.SIGINT, kept: str | None = None):
        super().__init__(signum)
        self.signum, self.kept = signum, kept

    def keeping(self, kept: str) -> Interrupted:
        """The same interruption, noting what was kept for resuming."""
        return Interrupted(self.signum, kept)
