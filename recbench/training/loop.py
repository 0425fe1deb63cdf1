"""The training loop: epochs of mini-batches, early stopping on a validation metric, the best
weights restored, and a checkpoint after every epoch so a killed run resumes where it stopped.

Models supply three callables (batches, loss, validation score); the loop owns the optimiser,
devices (through Accelerate), seeding, determinism, progress and checkpoints.

A resumed run is the run it claims to be: the checkpoint holds, besides weights and optimiser
state, every random state the next epoch draws from (torch's CPU and CUDA generators, numpy's
and Python's global ones, and the generator `batches` shuffles with), so the epochs after a
resume see the same batches and dropout masks as an uninterrupted run, and end with the same
weights. Checkpoints hold only tensors and plain containers and load with
`torch.load(weights_only=True)`: a planted file cannot run code. One that does not load that
way (truncated, damaged, a pickle payload, an older format without the random states) is
removed with a warning and training starts from the first epoch, which, training being
deterministic, ends where the uninterrupted run would have.

Several processes (a launcher's ranks, `accelerate launch --num_processes K`): the module is
not wrapped in DistributedDataParallel (the models' losses call encoder methods such as
`sequence`, not `forward`, which DDP's wrapper neither exposes nor synchronises); instead
every rank starts from rank 0's weights, takes its own share of each epoch's batches (the r-th
of every consecutive group of K; an incomplete last group is dropped, so each rank steps the
same number of times and the effective batch is K x batch_size) and the gradients are averaged
over the ranks (one all-reduce) before each step, which keeps the weights identical. Rank 0's
validation score decides early stopping for every rank, and rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recbench.core.atomic import atomic_file
from recbench.core.config import (
    ClosedConfig,
    Count,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
)
from recbench.core.progress import Reporter
from recbench.models.base import RunContext

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: with the random states (format 1 had none: not resumable exactly)
CHECKPOINT_KEYS = {"format", "model", "optimizer", "epoch", "best", "best_epoch", "best_state",
                   "history", "rng"}
MIN_STEPS = 4  # fewer optimiser steps an epoch than this: warn (small data, large batch)


class TrainConfig(ClosedConfig):
    """Optimisation settings shared by learned models (defaults follow RecBench §4.3)."""

    epochs: Count = 20
    lr: PositiveFloat = 1e-3
    batch_size: Count = 512
    weight_decay: NonNegativeFloat = 0.0
    patience: NonNegativeInt = 3  # epochs without validation improvement before stopping
    max_steps_per_epoch: Count | None = None
    grad_clip: PositiveFloat | None = 5.0  # None: no clipping


@dataclass
class TrainResult:
    best_score: float
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: int | None = None
    prior_seconds: float = 0.0  # training time of the epochs restored from a checkpoint


def train(
    module: nn.Module,
    batches: Callable[[int], Iterable[dict[str, torch.Tensor]]],
    loss_fn: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
    validate: Callable[[nn.Module], float],
    cfg: TrainConfig,
    ctx: RunContext,
    n_batches: Callable[[int], int] | None = None,
    params: Iterable[nn.Parameter] | None = None,
    rng: np.random.Generator | None = None,
) -> TrainResult:
    """Train `module` in place; on return it holds the weights of the best validation epoch.

    Args:
        module: the model.
        batches: epoch -> iterable of batches (dicts of CPU tensors; moved to the device here).
        loss_fn: (module, batch) -> scalar loss.
        validate: module -> score, higher is better (e.g. GAUC, NDCG@10 on the valid split).
        cfg: optimisation settings.
        ctx: run context (seed, device, work_dir for checkpoints, smoke mode, reporter).
        n_batches: epoch -> number of batches (for progress bars).
        params: the parameters to optimise (default: all that require grad).
        rng: the generator `batches` shuffles with; its state is checkpointed with the others,
            so a resumed run draws the batches the uninterrupted run would have.
    """
    with deterministic_algorithms(ctx.device):
        return _train(module, batches, loss_fn, validate, cfg, ctx, n_batches, params, rng)


@contextlib.contextmanager
def deterministic_algorithms(device: str = "cpu"):
    """Torch's deterministic kernels for the block (a warning, not an error, for an op that has
    none), restoring the previous setting after: the same key must give the same numbers."""
    if device.startswith("cuda"):
        # cuBLAS is deterministic only with a fixed workspace; read when its handle is made
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def _train(module, batches, loss_fn, validate, cfg, ctx, n_batches, params, rng) -> TrainResult:
    from accelerate import Accelerator

    reporter: Reporter = ctx.extra.get("reporter") or Reporter()
    torch.manual_seed(ctx.seed)
    accelerator = Accelerator(cpu=not ctx.device.startswith("cuda"))
    trainable = list(params) if params is not None else [p for p in module.parameters()
                                                          if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    world, main = accelerator.num_processes, accelerator.is_main_process
    if world > 1:  # gradients averaged by hand (see the module docstring), not through DDP
        module = module.to(accelerator.device)
        optimizer = accelerator.prepare(optimizer)
    else:
        module, optimizer = accelerator.prepare(module, optimizer)
    epochs = 1 if ctx.smoke else cfg.epochs
    max_steps = 2 if ctx.smoke else cfg.max_steps_per_epoch

    start_epoch, best, best_epoch, best_state, history = 0, float("-inf"), -1, None, []
    resumed, prior_seconds = None, 0.0
    ckpt = Path(ctx.work_dir) / CHECKPOINT if ctx.work_dir else None
    state = (_readable_checkpoint(ckpt, reporter, accelerator.unwrap_model(module), optimizer,
                                  rng, remove=main) if ckpt is not None and ckpt.exists()
             else None)
    if world > 1:
        # every rank resumes (or not) as rank 0 does, from rank 0's weights
        main_resumes = _from_main(state is not None)
        if main_resumes and state is None:
            _unreadable(ckpt)
        if not main_resumes:
            state = None
    if state is not None:
        accelerator.unwrap_model(module).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        best_state, history = state["best_state"], state["history"]
        set_random_state(state["rng"], rng)
        resumed = start_epoch
        prior_seconds = sum(h.get("seconds", 0.0) for h in history)
        log.info("resumed from %s at epoch %d (best %.4f)", ckpt, start_epoch, best)
        reporter.stage(f"resuming an interrupted run at epoch {start_epoch + 1}")

    if world > 1:
        _broadcast_module(module)
    steps_per_epoch = n_batches(start_epoch) // world if n_batches else None
    if not ctx.smoke and steps_per_epoch is not None and steps_per_epoch < MIN_STEPS:
        message = (f"only {steps_per_epoch} optimiser step(s) an epoch at batch size "
                   f"{cfg.batch_size}: early stopping (patience {cfg.patience}) may end training "
                   "before it learns; a smaller --set batch_size gives more steps")
        log.warning(message)
        reporter.stage(f"[yellow]note:[/] {message}")
    for epoch in range(start_epoch, epochs):
        if epoch - best_epoch > cfg.patience and best_epoch >= 0:
            break
        module.train()
        epoch_start = time.perf_counter()
        total, steps = 0.0, 0
        total_batches = n_batches(epoch) // world if n_batches else None
        if max_steps is not None and total_batches is not None:
            total_batches = min(total_batches, max_steps)
        epoch_batches = batches(epoch) if world == 1 else \
            _rank_share(batches(epoch), accelerator.process_index, world)
        for batch in reporter.track(epoch_batches, total_batches,
                                    f"epoch {epoch + 1}/{epochs}"):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            loss = loss_fn(module, batch)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if world > 1:
                _average_gradients(trainable, world)
            if cfg.grad_clip:
                accelerator.clip_grad_norm_(trainable, cfg.grad_clip)
            optimizer.step()
            total += float(loss.detach())
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        module.eval()
        with torch.no_grad():
            score = float(validate(accelerator.unwrap_model(module)))
        if world > 1:
            score = _from_main(score)  # one early-stopping decision for every rank
        history.append({"epoch": epoch + 1, "loss": total / max(steps, 1), "valid": score,
                        "seconds": time.perf_counter() - epoch_start})
        log.info("epoch %d: loss %.4f valid %.4f", epoch + 1, total / max(steps, 1), score)
        reporter.stage(f"epoch {epoch + 1}: loss {total / max(steps, 1):.4f}, "
                       f"valid {score:.4f}")
        if score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(accelerator.unwrap_model(module).state_dict())
        if ckpt is not None and main:
            _save(ckpt, {"format": CHECKPOINT_FORMAT,
                         "model": accelerator.unwrap_model(module).state_dict(),
                         "optimizer": optimizer.state_dict(), "epoch": epoch, "best": best,
                         "best_epoch": best_epoch, "best_state": best_state,
                         "history": history, "rng": random_state(rng)})
    if best_state is not None:
        accelerator.unwrap_model(module).load_state_dict(best_state)
    return TrainResult(best, best_epoch + 1, len(history), history, resumed, prior_seconds)


def _rank_share(batches: Iterable[dict[str, torch.Tensor]], rank: int, world: int
                ) -> Iterator[dict[str, torch.Tensor]]:
    """Rank `rank`'s batches: the `rank`-th of every consecutive group of `world` (every rank
    draws the whole sequence, so the random states stay in step); an incomplete last group is
    dropped, so every rank takes the same number of steps."""
    group: list[dict[str, torch.Tensor]] = []
    for batch in batches:
        group.append(batch)
        if len(group) == world:
            yield group[rank]
            group = []


def _average_gradients(params: list[nn.Parameter], world: int) -> None:
    """Every rank's gradients replaced by their mean over the ranks (one flat all-reduce; a
    parameter without a gradient on a rank counts as zero there, as DDP counts it)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def _broadcast_module(module: nn.Module) -> None:
    """Rank 0's weights and buffers on every rank."""
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _from_main(value: Any) -> Any:
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _unreadable(path: Path | None) -> None:
    raise RuntimeError(f"rank 0 and this rank disagree on whether the checkpoint {path} is "
                       "usable: is the work folder on one file system for every rank?")


def _readable_checkpoint(path: Path, reporter: Reporter, module: nn.Module,
                         optimizer: torch.optim.Optimizer,
                         rng: np.random.Generator | None, remove: bool = True) -> dict | None:
    """The checkpoint at `path`, or None (the file removed, with a warning) if it is truncated,
    damaged, not tensors and plain containers only, or of an older format: a run killed
    mid-write must not block its key, and a planted pickle must not run; it trains from the
    start."""
    try:
        # weights_only: only tensors and plain containers are rebuilt; any other global in the
        # pickle (a planted payload's callable) is refused before it is called
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not state.keys() >= CHECKPOINT_KEYS:
            raise ValueError("not a recbench checkpoint")
        if state["format"] != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state['format']!r}, not {CHECKPOINT_FORMAT}")
        _check_fits(state, module, optimizer, rng)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, TypeError, AttributeError,
            pickle.UnpicklingError) as exc:
        message = (f"discarding the unusable checkpoint {path} ({exc.__class__.__name__}); "
                   "training starts from the first epoch")
        log.warning(message)
        reporter.stage(f"[yellow]note:[/] {message}")
        if remove:  # under several ranks rank 0 alone removes it
            path.unlink(missing_ok=True)
        return None
    return state


def _check_fits(state: dict, module: nn.Module, optimizer: torch.optim.Optimizer,
                rng: np.random.Generator | None) -> None:
    """Raise ValueError unless `state` can be restored into this run whole (nothing is applied
    before everything is known to fit, so a bad file never leaves the model half loaded)."""
    own = module.state_dict()

    def same_weights(saved) -> bool:
        return isinstance(saved, dict) and saved.keys() == own.keys() and all(
            isinstance(saved[k], torch.Tensor) and saved[k].shape == own[k].shape for k in own)

    if not same_weights(state["model"]) or not (
            state["best_state"] is None or same_weights(state["best_state"])):
        raise ValueError("its weights are not this model's")
    groups = state["optimizer"].get("param_groups") if isinstance(state["optimizer"], dict) else 0
    if not isinstance(groups, list) or [len(g.get("params", ())) for g in groups] != [
            len(g["params"]) for g in optimizer.param_groups]:
        raise ValueError("its optimiser state is not this model's")
    saved = state["rng"]
    if not (isinstance(saved.get("torch"), torch.Tensor) and isinstance(saved.get("numpy"), dict)
            and isinstance(saved.get("python"), list) and len(saved["python"]) == 3):
        raise ValueError("its random states are incomplete")
    if rng is not None:
        batches = saved.get("batches")
        if not isinstance(batches, dict) or batches.get("bit_generator") != \
                rng.bit_generator.state["bit_generator"]:
            raise ValueError("it holds no state of the batch generator")
    if not isinstance(state["history"], list) or not isinstance(state["epoch"], int):
        raise ValueError("its history is not a list of epochs")


def _save(path: Path, state: dict[str, Any]) -> None:
    # a unique temp file beside it, removed if the save fails (full disk, SIGTERM)
    with atomic_file(path) as tmp:
        torch.save(state, tmp)


def random_state(rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Every random state training draws from, as tensors and plain containers (what
    `torch.load(weights_only=True)` reads back)."""
    numpy_global = np.random.get_state(legacy=False)  # noqa: NPY002 - saved for third-party code
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": {"key": torch.from_numpy(numpy_global["state"]["key"].astype(np.int64)),
                  "pos": int(numpy_global["state"]["pos"]),
                  "has_gauss": int(numpy_global["has_gauss"]),
                  "gauss": float(numpy_global["gauss"])},
        "python": [version, list(internal), gauss],
        "batches": None,
    }
    if rng is not None:
        state["batches"] = _plain(rng.bit_generator.state)
    return state


def set_random_state(state: dict[str, Any], rng: np.random.Generator | None = None) -> None:
    """Restore what `random_state` saved (and `rng`'s state, if it was saved with one)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["numpy"]
    np.random.set_state({  # noqa: NPY002
        "bit_generator": "MT19937",
        "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
        "has_gauss": saved["has_gauss"], "gauss": saved["gauss"]})
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if rng is not None:
        rng.bit_generator.state = state["batches"]


def _plain(value: Any) -> Any:
    """numpy scalars and arrays inside a bit generator's state, as Python ints and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def describe(result: TrainResult) -> dict[str, Any]:
    return {"best_valid": result.best_score, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "resumed_from_epoch": result.resumed_from,
            **({"seconds_before_resume": round(result.prior_seconds, 1)}
               if result.resumed_from is not None else {})}
