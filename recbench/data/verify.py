"""Checking a prepared dataset before a run trusts it: the manifest parses, each split's bytes
match the manifest's sha256, each Parquet file reads.

A dataset is frozen once prepared (DESIGN.md, "Dataset contract"): an edited split would be
scored and recorded under the old dataset version, and a damaged one would surface as a
polars or json traceback. Every failure here is one line ending in the command that rebuilds
the dataset.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from pathlib import Path
from typing import Any

import polars as pl

from recbench.core.errors import DataError
from recbench.data.rawfiles import POLARS_ERRORS, shown


def rebuild_command(name: str, size: str, protocol: str | None = None,
                    manifest: dict[str, Any] | None = None) -> str:
    """`recbench prepare ...` that rebuilds dataset `name`, from what the manifest says of it.

    A dataset saved under another name (`--as`) is rebuilt from its catalog name; one whose
    raw files are neither downloaded nor generated needs `--raw DIR` again.
    """
    catalog_name = name
    seed = 0
    if isinstance(manifest, dict):
        catalog_name = str(manifest.get("catalog_name") or name)
        params = manifest.get("parameters")
        if isinstance(params, dict) and isinstance(params.get("seed"), int):
            seed = params["seed"]
    parts = ["recbench", "prepare", catalog_name]
    if protocol:
        parts += ["--protocol", protocol]
    parts += ["--size", size]
    if seed:
        parts += ["--seed", str(seed)]
    if _needs_raw(catalog_name):
        parts += ["--raw", "DIR"]
    if catalog_name != name:
        parts += ["--as", name]
    return " ".join(parts + ["--force"])


def _needs_raw(catalog_name: str) -> bool:
    from recbench.data.catalog import get_spec

    try:
        spec = get_spec(catalog_name)
    except Exception:  # noqa: BLE001 - only a hint for a message; never hides the damage
        return True
    source = importlib.import_module(f"recbench.data.sources.{spec.source}")
    downloadable = any("url" in entry for entry in spec.download)
    return not (hasattr(source, "generate") or downloadable)


def read_manifest(path: Path, rebuild: str) -> dict[str, Any]:
    """The manifest at `path`; a damaged one (not UTF-8 JSON, not an object) is one line."""
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} is damaged ({shown(str(exc), 80)}): rebuild with "
                        f"`{rebuild}`") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}): rebuild with `{rebuild}`"
                        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{path} is damaged (not a recbench manifest with a `files` table): "
                        f"rebuild with `{rebuild}`")
    return manifest


def read_parquet_verified(path: Path, rel: str, manifest: dict[str, Any] | None, rebuild: str
                          ) -> pl.DataFrame:
    """Read one split; with a manifest, its bytes must have the sha256 the manifest records.

    The bytes are read once, hashed and parsed from memory, so the frame is the verified file
    even if the file changes meanwhile.

    Args:
        path: the Parquet file.
        rel: its name in the manifest's `files` table without `.parquet` (e.g. "ctr/test").
        manifest: the dataset's manifest, or None to only check that the file reads.
        rebuild: the command that rebuilds the dataset (`rebuild_command`).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}): rebuild with `{rebuild}`"
                        ) from None
    if manifest is not None:
        expected = manifest.get("files", {}).get(f"{rel}.parquet")
        if not isinstance(expected, str):
            raise DataError(f"{path} is not listed in its manifest's files: rebuild with "
                            f"`{rebuild}`")
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise DataError(f"{path} was changed after it was prepared (sha256 {actual[:12]}..., "
                            f"the manifest says {expected[:12]}...): its results would be "
                            f"recorded under the wrong dataset version; rebuild with `{rebuild}`")
    try:
        return pl.read_parquet(io.BytesIO(data))
    except (*POLARS_ERRORS, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} is damaged ({shown(first, 80)}): rebuild with `{rebuild}`"
                        ) from None
