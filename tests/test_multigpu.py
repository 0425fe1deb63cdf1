"""Multi-GPU paths on CPU: row shards, their concatenation, the gather to rank 0 (gloo, two
processes) and the `accelerate launch` command line. No GPU is used."""

from __future__ import annotations

import multiprocessing
import socket

import numpy as np
import polars as pl
import pytest

from recbench.core.errors import DataError
from recbench.distributed.multigpu import (
    accelerate_command,
    concat_shards,
    shard_bounds,
    shard_rows,
)


@pytest.mark.parametrize("n, world", [(10, 3), (7, 2), (2, 4), (0, 2), (100, 1)])
def test_shards_cover_every_row_once_in_order(n, world):
    bounds = shard_bounds(n, world)
    assert len(bounds) == world and bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1
    frame = pl.DataFrame({"row": np.arange(n), "x": np.arange(n) * 2})
    shards = [shard_rows(frame, r, world) for r in range(world)]
    back = concat_shards(shards[::-1], n_rows=n)  # any arrival order
    if n:
        assert back.equals(frame)


def test_concat_refuses_a_lost_or_doubled_row():
    frame = pl.DataFrame({"row": np.arange(6), "score": np.ones(6)})
    a, b = shard_rows(frame, 0, 2), shard_rows(frame, 1, 2)
    with pytest.raises(DataError, match="more than one shard"):
        concat_shards([a, b, b.head(1)])
    with pytest.raises(DataError, match="5 of 6 rows"):
        concat_shards([a, b.tail(2)], n_rows=6)


def _rank(rank: int, world: int, port: int, queue) -> None:
    import torch.distributed as dist

    from recbench.distributed.multigpu import gather_rows, is_main_process

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        rows = pl.DataFrame({"row": np.arange(9), "score": np.arange(9) / 10})
        mine = shard_rows(rows, rank, world).with_columns(pl.lit(rank).alias("rank"))
        out = gather_rows(mine, n_rows=9)
        queue.put((rank, is_main_process(), None if out is None else out.to_dict(as_series=False)))
    finally:
        dist.destroy_process_group()


def test_gather_to_rank_zero_over_gloo():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {}
    for _ in procs:
        rank, main, out = queue.get(timeout=120)
        results[rank] = (main, out)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert results[0][0] is True and results[1][0] is False
    assert results[1][1] is None  # only rank 0 holds (and would write) the predictions
    out = results[0][1]
    assert out["row"] == list(range(9))
    assert out["rank"] == [0] * 4 + [1] * 5  # shards [0, 4) and [4, 9)
    assert out["score"] == pytest.approx([i / 10 for i in range(9)])


def test_accelerate_command_carries_the_run():
    req = {"group": "E", "model": "llama3-8b", "datasets": ["mind"], "seed": 1, "size": "small",
           "overwrite": "never", "task": "ctr", "sets": {"lr": 0.0001}, "flags": {"mode":
           "finetune"}, "home": "/h", "config_file": None, "smoke": False}
    cmd = accelerate_command(req, 4, python="py")
    assert cmd[:6] == ["py", "-m", "accelerate.commands.launch", "--multi_gpu",
                       "--num_processes", "4"]
    joined = " ".join(cmd)
    for part in ("-m recbench run", "--group E", "--model llama3-8b", "--dataset mind",
                 "--set lr=0.0001", "--mode finetune", "--device cuda", "--home /h"):
        assert part in joined
    with pytest.raises(ValueError):
        accelerate_command(req, 1.5)
