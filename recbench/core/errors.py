"""Exceptions meant for users: the CLI prints them as one red line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RecbenchError(Exception):
    """Base class of every error a user can cause (bad input, unknown name, missing file)."""

    exit_code = 2


class UnknownNameError(RecbenchError):
    """An unknown dataset/model/group/metric; the message lists close matches and the choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]):
        choices = sorted(choices)
        close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(choices) if len(choices) <= 30 else ", ".join(choices[:30]) + ", ..."
        super().__init__(f"unknown {kind} {name!r}.{hint} Choices: {listing}")
        self.name, self.close = name, close


class DataError(RecbenchError):
    """Raw or prepared data that does not match what a loader expects."""


class MissingRawFilesError(DataError):
    """Raw files are neither on disk nor downloadable."""


class ConfigError(RecbenchError):
    """An invalid configuration value or key."""


class AlreadyExistsError(RecbenchError):
    """An output exists and the user did not ask to overwrite it."""
