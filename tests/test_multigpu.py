"""Multi-GPU paths on CPU: row shards, their concatenation, the gather to rank 0, sharded
evaluation, gradient averaging in the training loop and the rank-0 rule of a whole run (gloo,
two processes started as a launcher starts them: RANK/WORLD_SIZE/MASTER_* in the environment),
and the `accelerate launch` command line. No GPU is used."""

from __future__ import annotations

import multiprocessing
import os
import socket
import traceback
from pathlib import Path

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


# ------------------------------------------------------- ranks started as a launcher starts them

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_rank(rank: int, world: int, port: int, fn, args, queue) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                      MKL_NUM_THREADS="1")
    try:
        queue.put((rank, fn(rank, *args), None))
    except BaseException:  # noqa: BLE001 - the parent reports it
        queue.put((rank, None, traceback.format_exc()))


def on_two_ranks(fn, *args) -> dict[int, object]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_as_rank, args=(r, 2, port, fn, args, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results, errors = {}, []
    try:
        for _ in procs:
            rank, out, err = queue.get(timeout=300)
            results[rank] = out
            if err:
                errors.append(f"rank {rank}:\n{err}")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert not errors, "\n".join(errors)
    return results


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    from recbench.data.prepare import prepare

    home = tmp_path_factory.mktemp("mg-home")
    prepare("synthetic", size="tiny", seed=0, home=home, show_progress=False)
    return home


def _task_data(home: Path, task: str):
    from recbench.data.prepare import load_manifest, resolve_protocol
    from recbench.runner import load_task_data

    manifest = load_manifest(home, "synthetic", "tiny", resolve_protocol(home, "synthetic", "tiny",
                                                                          None))
    return load_task_data(home, "synthetic", "tiny", task, manifest)


def _fitted_popularity(home: Path, task: str):
    from recbench.models.base import RunContext
    from recbench.models.registry import MODELS

    data = _task_data(home, task)
    cls = MODELS.load("MostPopular")
    model = cls(cls.Config(), RunContext(seed=0))
    model.fit(data)
    return model, data


def _evaluate_sharded(rank: int, home: str, task: str):
    from recbench.core.config import EvalConfig
    from recbench.core.progress import Reporter
    from recbench.distributed.multigpu import evaluate_on_ranks, init_ranks

    init_ranks("cpu")
    model, data = _fitted_popularity(Path(home), task)
    metrics, preds = evaluate_on_ranks(task, model, data, EvalConfig(eval_batch_size=7),
                                       Reporter())
    return metrics, None if preds is None else preds.to_dict(as_series=False)


@pytest.mark.parametrize("task", ["seq", pytest.param("ctr", marks=pytest.mark.slow)])
def test_sharded_evaluation_equals_one_process(tiny_home, task):
    from recbench.core.config import EvalConfig
    from recbench.core.progress import Reporter
    from recbench.evaluation import EVALUATORS

    results = on_two_ranks(_evaluate_sharded, str(tiny_home), task)
    assert results[1] == (None, None)  # only rank 0 holds metrics and predictions
    metrics, preds = results[0]
    model, data = _fitted_popularity(tiny_home, task)
    ref_metrics, ref_preds = EVALUATORS[task](model, data, EvalConfig(eval_batch_size=7),
                                              Reporter())
    assert pl.DataFrame(preds).equals(ref_preds)
    assert metrics.keys() == ref_metrics.keys()
    for protocol, values in ref_metrics.items():
        assert metrics[protocol] == pytest.approx(values, rel=1e-12, abs=1e-12)


def _regression_data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 3.0], dtype=np.float32) + 0.1).astype(np.float32)
    return x, y


def _train_linear(rank: int, batch_size: int, work_dir: str | None):
    """The training loop on a linear regression (MSE, equal-size batches of one shuffle)."""
    import torch

    import recbench.training.loop as loop
    from recbench.models.base import RunContext

    saves = []
    real_save = loop._save
    loop._save = lambda path, state: (saves.append(path), real_save(path, state))
    torch.manual_seed(rank)  # different initial weights per rank: rank 0's must win
    module = torch.nn.Linear(4, 1)
    x, y = (torch.from_numpy(a) for a in _regression_data())
    rng = np.random.default_rng(0)

    def batches(_epoch):
        perm = torch.from_numpy(rng.permutation(len(x)))
        for lo in range(0, len(x), batch_size):
            idx = perm[lo:lo + batch_size]
            yield {"x": x[idx], "y": y[idx]}

    def loss_fn(m, b):
        return torch.nn.functional.mse_loss(m(b["x"]).squeeze(-1), b["y"])

    def validate(m):
        return -float(torch.nn.functional.mse_loss(m(x).squeeze(-1), y))

    cfg = loop.TrainConfig(epochs=4, lr=0.05, batch_size=batch_size, patience=10)
    ctx = RunContext(seed=0, work_dir=Path(work_dir) if work_dir else None)
    result = loop.train(module, batches, loss_fn, validate, cfg, ctx,
                        n_batches=lambda _e: -(-len(x) // batch_size), rng=rng)
    weights = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).tolist()
    return weights, result.epochs_run, len(saves)


def _initial_weights_rank0():
    import torch

    torch.manual_seed(0)
    return torch.nn.Linear(4, 1)


def test_two_ranks_average_gradients_like_one_process_at_twice_the_batch(tmp_path):
    results = on_two_ranks(_train_linear, 8, str(tmp_path / "work"))
    (w0, epochs0, saves0), (w1, epochs1, saves1) = results[0], results[1]
    assert w0 == w1  # identical weights on every rank
    assert epochs0 == epochs1 == 4
    assert saves0 == 4 and saves1 == 0  # rank 0 alone writes the epoch checkpoints
    # reference: one process, batches of 16 = each pair of consecutive batches of 8
    ref, _, _ = _train_linear(0, 16, None)
    assert w0 == pytest.approx(ref, abs=1e-5)


RUN_SETTINGS = {"epochs": 3, "patience": 20, "dim": 16, "latency_samples": 10,
                "latency_warmup": 2}


def _whole_run(rank: int, home: str):
    """`recbench run` on one rank, counting what each rank did to the store and the clock."""
    import recbench.runner as runner
    import recbench.training.loop as loop
    from recbench.results.store import ResultStore

    calls = {"lease": 0, "write": 0, "latency": 0, "checkpoint": 0}

    def counting(name, fn):
        def wrapped(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapped

    ResultStore.lease = counting("lease", ResultStore.lease)
    ResultStore.write = counting("write", ResultStore.write)
    runner.measure = counting("latency", runner.measure)
    loop._save = counting("checkpoint", loop._save)
    req = runner.RunRequest(group="G", model="GRU4Rec", datasets=["synthetic"], size="tiny",
                            task="seq", sets=RUN_SETTINGS, home=Path(home))
    (out,) = runner.run(req)
    again = runner.run(req)[0].status  # every rank agrees that the key is now finished
    return calls, out.status, str(out.path), again


def test_the_rank_zero_rule_in_a_whole_run(tiny_home, tmp_path):
    import shutil

    from recbench.core.config import EvalConfig
    from recbench.evaluation import metrics_from_predictions
    from recbench.results.store import ResultStore

    home = tmp_path / "home"
    shutil.copytree(tiny_home / "datasets", home / "datasets")
    results = on_two_ranks(_whole_run, str(home))
    (calls0, status0, path0, again0), (calls1, status1, path1, again1) = results[0], results[1]
    assert calls0["lease"] == 1 and calls0["write"] == 1 and calls0["latency"] == 1
    assert calls0["checkpoint"] == RUN_SETTINGS["epochs"]
    assert calls1 == {"lease": 0, "write": 0, "latency": 0, "checkpoint": 0}
    assert status0 == status1 == "done" and path0 == path1
    assert again0 == again1 == "skipped"
    store = ResultStore(home)
    (record,) = store.records()
    folder = Path(path0).parent
    leftovers = sorted(p.name for p in folder.iterdir()
                       if p.suffix in (".lease", ".tmp") or p.name.endswith(".work"))
    assert leftovers == []
    # the predictions hold every test row once, and the record's metrics follow from them
    preds = store.predictions(record)
    data = _task_data(home, "seq")
    assert preds["row"].to_list() == list(range(data.test.height))
    expected = metrics_from_predictions("seq", preds, data, EvalConfig(**{
        k: v for k, v in record.config["eval"].items()}))
    for protocol, values in expected.items():
        assert record.metrics[protocol] == pytest.approx(values)
