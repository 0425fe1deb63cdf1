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

Not wired yet: the runner and training loop have no rank awareness, so every rank would take
the lease (rank 1 then sees rank 0's live lease and leaves while rank 0 waits for it in the
first collective). Until they follow `is_main_process`, `run_spec` refuses a run that reserves
K >= 2 GPUs with the command it would run (fractions and single GPUs run normally).

What was exercised where: the sharding, the concatenation, the gather to rank 0 and the
command line are tested on CPU (torch.distributed with gloo, 2 processes). No GPU was available
while this was written: `accelerate launch` on real GPUs and vLLM tensor parallel were not run.
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
