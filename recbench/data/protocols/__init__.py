"""Evaluation protocols: how a source's `RawTables` become frozen splits, chosen by name.

One module per protocol, each named and versioned; the name (`recbench-v1`, `loo-v1`,
`temporal-v1`) is written in the manifest, copied into every record, and is part of the
prepared dataset's folder (`datasets/NAME/PROTOCOL/SIZE`), so two protocols of one dataset
coexist and never share a leaderboard column. Changing what a protocol does means a new
version name: an old name never silently changes meaning.

- `recbench-v1` (module `recbench_v1`): RecBench §4.3, user-disjoint CTR and SeqRec splits,
  100 sampled negatives per SeqRec test row;
- `loo-v1` (`loo_v1`): SASRec / LLMEmb, count filter and leave-one-out per user (SeqRec only),
  100 negatives per valid and test row;
- `temporal-v1` (`temporal_v1`): paper 002, test sessions after the training sessions in time,
  three chained validation folds (SeqRec only), 100 negatives per test row.

Every protocol's options are a closed config (`Protocol.Config`): `prepare --protocol-option
key=value` values are validated before any raw file is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from recbench.core.config import ClosedConfig, resolve
from recbench.core.errors import UnknownNameError
from recbench.core.registry import Registry
from recbench.data.raw import RawTables

DEFAULT_PROTOCOL = "recbench-v1"
SIZE_NAMES = ("tiny", "small", "paper")
# How every evaluator ranks (recbench.metrics.ranking): stated in each manifest and record.
TIE_RULE = "pessimistic: rank = 1 + the number of other candidates scoring >= the target"


@dataclass
class PreparedTables:
    """A protocol's output, ready to be written as Parquet.

    Attributes:
        items: the item table (`item_id` dense int32, `item_key`, `text`, attributes).
        ctr: CTR splits by name (empty where the protocol has no CTR rows).
        seq: SeqRec splits by name (train, valid, test).
        seq_test_negatives: the frozen sampled candidates of `seq["test"]`.
        stats: counts for the manifest and the CLI.
        notes: facts worth reporting (rows dropped and why, caveats).
        extra: further frozen files by path without suffix (e.g. "seq/valid_negatives",
            "seq/folds/fold1/train").
        protocol: the manifest's description of the protocol's parameters, candidate samplers
            (sampler, pool, exclusions, seed, file) and time source; outside `content_hash`.
    """

    items: pl.DataFrame
    ctr: dict[str, pl.DataFrame]
    seq: dict[str, pl.DataFrame]
    seq_test_negatives: pl.DataFrame
    stats: dict
    notes: list[str]
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    """One evaluation protocol.

    Attributes:
        name: name and version, e.g. "loo-v1" (manifests, records, folders).
        family: the short name `--protocol` also accepts, e.g. "loo".
        tasks: the tasks its splits serve.
        Config: its options (closed; defaults are the protocol's definition).
        build: (raw tables, size, seed, config) -> the prepared tables.
    """

    name: str
    family: str
    tasks: tuple[str, ...]
    Config: type[ClosedConfig]
    build: Callable[[RawTables, str, int, Any], PreparedTables]


PROTOCOLS: Registry[Protocol] = Registry("protocol")
PROTOCOLS.add("recbench-v1", "recbench.data.protocols.recbench_v1:PROTOCOL", family="recbench",
              tasks=("ctr", "seq"),
              summary="RecBench §4.3: user-disjoint CTR and SeqRec splits, 100 test negatives")
PROTOCOLS.add("loo-v1", "recbench.data.protocols.loo_v1:PROTOCOL", family="loo",
              tasks=("seq",),
              summary="count filter, leave-one-out per user, 100 frozen uniform negatives")
PROTOCOLS.add("temporal-v1", "recbench.data.protocols.temporal_v1:PROTOCOL", family="temporal",
              tasks=("seq",),
              summary="paper 002: last 20% of sessions by time as test, unseen-item filter, "
                      "three chained validation folds")


def protocol_name(value: str) -> str:
    """The full name (e.g. "loo-v1") of `value`, a protocol's name or family ("loo").

    Raises:
        UnknownNameError: with the close matches and every accepted spelling.
    """
    if value in PROTOCOLS:
        return value
    for entry in PROTOCOLS:
        if entry.meta["family"] == value:
            return entry.name
    spellings = [e.name for e in PROTOCOLS] + [e.meta["family"] for e in PROTOCOLS]
    raise UnknownNameError("protocol", value, spellings)


def get_protocol(value: str) -> Protocol:
    """The protocol named `value` (name or family), imported on first use."""
    return PROTOCOLS.load(protocol_name(value))


def protocol_tasks(name: str) -> tuple[str, ...]:
    """The tasks protocol `name` serves, without importing it."""
    return tuple(PROTOCOLS.entry(protocol_name(name)).meta["tasks"])


def manifest_tasks(manifest: dict) -> tuple[str, ...]:
    """The tasks a prepared dataset has rows for (from its manifest's protocol block)."""
    block = manifest.get("protocol")
    if isinstance(block, dict) and block.get("tasks"):
        return tuple(block["tasks"])
    return protocol_tasks(manifest["protocol_version"])


def protocol_config(protocol: Protocol, options: dict[str, Any] | None) -> ClosedConfig:
    """`options` validated against the protocol's closed config (unknown keys get help)."""
    return resolve({"protocol": protocol.Config}, options or {})["protocol"]


def split_stats(df: pl.DataFrame) -> dict:
    """Rows, users and items of one split (and positives, for CTR rows)."""
    item_col = "item_id" if "item_id" in df.columns else "target"
    out = {"rows": df.height, "users": df["user_id"].n_unique(), "items": df[item_col].n_unique()}
    if "label" in df.columns:
        out["positives"] = int(df["label"].sum())
    return out
