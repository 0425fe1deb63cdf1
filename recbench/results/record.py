"""The versioned schema of one result record: everything needed to trust and rebuild a number."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
Task = Literal["ctr", "seq"]
# A record's metrics are keyed by protocol: "ctr" for CTR; "full" and "sampled100" for SeqRec.
PROTOCOLS: dict[str, tuple[str, ...]] = {"ctr": ("ctr",), "seq": ("full", "sampled100")}
DEFAULT_METRIC = {"ctr": "gauc", "seq": "ndcg@10"}
DEFAULT_PROTOCOL = {"ctr": "ctr", "seq": "full"}


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LatencyStats(Closed):
    """Per-sample latency: batch size 1, CPU, fixed threads, warm-up, then `n` timed rows."""

    mean_ms: float
    p50_ms: float
    p95_ms: float
    n: int
    warmup: int
    threads: int
    batch_size: int = 1
    device: str = "cpu"


class TunedFrom(Closed):
    """The tuning study and trial a run's `--config` came from (`recbench tune best --write`)."""

    study: str
    trial: int
    value: float | None = None  # the trial's objective (total NDCG@20 over the folds)
    storage: str | None = None  # the study's storage URL, any password masked


class Hardware(Closed):
    cpu: str
    cores: int
    threads_used: int
    memory_gb: float
    gpu: str | None = None
    platform: str
    python: str
    packages: dict[str, str] = Field(default_factory=dict)


class Record(Closed):
    """One finished (group, model, dataset, task, config, seed) run."""

    schema_version: int = SCHEMA_VERSION
    key: str
    group: str
    model: str  # the name as given on the command line
    model_id: str  # the resolved full name (e.g. P5-smollm2-135m) or hub id
    model_revision: str | None = None
    dataset: str
    dataset_size: str
    dataset_version: str  # manifest content_hash
    protocol_version: str
    task: Task
    mode: str  # none | train | zero-shot | finetune
    metrics: dict[str, dict[str, float]]  # protocol -> metric -> value
    latency: LatencyStats | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    seed: int
    config: dict
    config_hash: str
    hardware: Hardware
    recbench_version: str
    git_commit: str | None = None
    started_at: str
    finished_at: str
    predictions: str | None = None  # file name of the predictions Parquet beside the record
    smoke: bool = False
    notes: list[str] = Field(default_factory=list)
    # Where and how this result was produced (absent in records written before sweeps existed).
    executor: str | None = None  # None: a plain `recbench run`; else local | ray | slurm
    node: str | None = None  # host name of the process that trained and published it
    attempt: str | None = None  # this try's id; it names the predictions file
    resumed_from_epoch: int | None = None  # epochs restored from a checkpoint, if it resumed
    tuned_from: TunedFrom | None = None  # the study and trial its --config came from
