"""Runs over several GPUs: `accelerate launch` for K-GPU training, row shards for inference.

Training (LoRA / DDP on one node): a run that reserves K >= 2 whole GPUs is started as

    accelerate launch --multi_gpu --num_processes K -m recbench run ... (the run's own flags)

one process per GPU. What recbench's code must respect under it (`is_main_process`): only
rank 0 takes the key's lease, writes checkpoints, predictions and the record, and times the
latency; evaluation gathers every rank's rows (`gather_rows`) before metrics are computed.

Inference, data parallel: a run's test rows are cut into K contiguous shards by row position
(`shard_bounds`, deterministic), each scored by a single-GPU task (or rank), and the shards'
predictions are concatenated back in row order (`concat_shards`, which checks that every row
came back exactly once). Tensor parallel (one vLLM engine across K GPUs) needs no sharding:
`--set tensor_parallel_size=K` in a task holding K GPUs (vLLM's `mp` backend inside it).

The rank-0 rule, as the runner and the training loop follow it under a launcher that starts
one process per device (`accelerate launch`, torchrun; gloo on CPU, NCCL on GPUs):
- rank 0 alone looks at the store, takes the key's lease and tells the other ranks (a
  broadcast) whether the key runs, is skipped or is running elsewhere, and under which attempt;
- every rank trains: each takes its own share of every epoch's batches (rank r the r-th of
  each consecutive group of K, an incomplete last group dropped so that every rank steps the
  same number of times) and the gradients are averaged over the ranks (an all-reduce) before
  each step, so the weights stay identical on every rank; rank 0 alone writes checkpoints, and
  its validation score decides early stopping for all;
- evaluation: each rank scores a contiguous shard of the test rows (`evaluate_on_ranks`),
  the shards are gathered on rank 0 (`gather_rows`, the counterpart of Accelerate's
  `gather_for_metrics`: every row exactly once, back in row order) and rank 0 computes the
  metrics from the whole split's predictions;
- rank 0 alone times the latency, writes predictions and the record, then tells the other
  ranks how publishing ended.

This module imports only numpy and recbench.core at module level: the runner imports it.

What was exercised where: the sharding, the concatenation, the gather, the sharded evaluation
and the rank-0 rule of a whole run are tested on CPU (torch.distributed with gloo, 2 processes,
tests/test_multigpu.py). No GPU was available while this was written: `accelerate launch` on
real GPUs (NCCL), LoRA over several GPUs and vLLM tensor parallel were not run.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from recbench.core.errors import DataError

RANK_VARS = ("RANK", "LOCAL_RANK", "SLURM_PROCID")


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size: torch.distributed if initialised, else the
    launcher's environment (accelerate/torchrun: RANK, WORLD_SIZE), else (0, 1)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for var in RANK_VARS:
        if var in os.environ:
            return int(os.environ[var]), world
    return 0, world


def is_main_process() -> bool:
    """Rank 0 (or a single process): the one that writes records, predictions, checkpoints."""
    return rank_and_world()[0] == 0


def init_ranks(device: str = "cpu") -> tuple[int, int]:
    """(rank, world) of this process; under a launcher (WORLD_SIZE > 1) the process group is
    initialised first, through Accelerate's shared state (gloo on CPU, NCCL on CUDA), which
    the training loop's `Accelerator` then reuses."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(cpu=not device.startswith("cuda"))
    return rank_and_world()


def from_main(value: Any) -> Any:
    """Rank 0's `value` on every rank (itself in a single process)."""
    _, world = rank_and_world()
    if world == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard_bounds(n_rows: int, world: int) -> list[tuple[int, int]]:
    """`world` contiguous [lo, hi) ranges covering 0..n_rows, sizes differing by at most one."""
    if world < 1:
        raise ValueError(f"world size must be >= 1, got {world}")
    edges = np.linspace(0, n_rows, world + 1).round().astype(int)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(world)]


def shard_rows(frame, rank: int, world: int):
    """Rank `rank`'s contiguous slice of a polars frame (by position)."""
    lo, hi = shard_bounds(frame.height, world)[rank]
    return frame.slice(lo, hi - lo)


def concat_shards(shards: Sequence[Any], row_col: str = "row", n_rows: int | None = None):
    """The shards' predictions back in row order; every row exactly once, or a DataError."""
    import polars as pl

    frames = [s for s in shards if s is not None and s.height]
    if not frames:
        return pl.DataFrame()
    out = pl.concat(frames, how="vertical").sort(row_col)
    rows = out[row_col].to_numpy()
    if len(np.unique(rows)) != len(rows):
        dup = rows[np.flatnonzero(np.diff(rows) == 0)[0]]
        raise DataError(f"row {dup} came back from more than one shard")
    expected = n_rows if n_rows is not None else int(rows.max()) + 1 if len(rows) else 0
    if len(rows) != expected or (len(rows) and (rows[0] != 0 or rows[-1] != expected - 1)):
        raise DataError(f"the shards returned {len(rows)} of {expected} rows")
    return out


def gather_rows(frame, row_col: str = "row", n_rows: int | None = None):
    """All ranks' prediction frames, concatenated in row order on rank 0 (None elsewhere).

    Under torch.distributed every rank sends its frame (`all_gather_object`); a single
    process returns its own frame, checked the same way.
    """
    rank, world = rank_and_world()
    if world == 1:
        return concat_shards([frame], row_col, n_rows)
    import torch.distributed as dist

    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, frame)
    return concat_shards(gathered, row_col, n_rows) if rank == 0 else None


def evaluate_on_ranks(task: str, model, data, cfg, reporter):
    """`EVALUATORS[task]` over all ranks: each scores its contiguous shard of the test rows,
    rank 0 gathers the predictions (row order, every row once) and computes the metrics from
    them. Returns (metrics, predictions) on rank 0 and (None, None) on the others; a single
    process evaluates as usual."""
    import dataclasses

    from recbench.evaluation import EVALUATORS, metrics_from_predictions

    rank, world = rank_and_world()
    if world == 1:
        return EVALUATORS[task](model, data, cfg, reporter)
    import polars as pl

    lo, hi = shard_bounds(data.test.height, world)[rank]
    negatives = data.test_negatives
    if negatives is not None:  # evaluate_seq reads them by position, in row order
        negatives = negatives.sort("row").slice(lo, hi - lo)
    shard = dataclasses.replace(data, test=data.test.slice(lo, hi - lo), test_negatives=negatives)
    preds = None
    if hi > lo:  # fewer test rows than ranks leaves some ranks nothing to score
        _, preds = EVALUATORS[task](model, shard, cfg, reporter)
        preds = preds.with_columns((pl.col("row") + lo).cast(pl.Int32))
    gathered = gather_rows(preds, n_rows=data.test.height)
    if gathered is None:
        return None, None
    return metrics_from_predictions(task, gathered, data, cfg), gathered


def accelerate_command(request: dict[str, Any], gpus: int,
                       python: str | None = None) -> list[str]:
    """`accelerate launch` for one planned run (a `RunSpec.request`) on `gpus` GPUs."""
    if gpus < 2 or gpus != int(gpus):
        raise ValueError(f"accelerate launch is for 2 or more whole GPUs, got {gpus}")
    cmd = [python or sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(int(gpus)), "-m", "recbench", "run",
           "--group", request["group"], "--model", request["model"],
           "--seed", str(request["seed"]), "--size", request["size"],
           "--device", "cuda", "--overwrite", request["overwrite"]]
    for dataset in request["datasets"]:
        cmd += ["--dataset", dataset]
    if request.get("task"):
        cmd += ["--task", request["task"]]
    if request.get("protocol"):
        cmd += ["--protocol", request["protocol"]]
    if request.get("config_file"):
        cmd += ["--config", str(request["config_file"])]
    for key, value in sorted(request.get("sets", {}).items()):
        cmd += ["--set", f"{key}={value}"]
    for key, value in sorted(request.get("flags", {}).items()):
        if key == "mode" and value is not None:
            cmd += ["--mode", str(value)]
    if request.get("smoke"):
        cmd.append("--smoke")
    if request.get("home"):
        cmd += ["--home", str(request["home"])]
    return cmd


def describe(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)
