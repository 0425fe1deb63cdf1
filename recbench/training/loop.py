"""The training loop: epochs of mini-batches, early stopping on a validation metric, the best
weights restored, and a checkpoint after every epoch so a killed run resumes where it stopped.

Models supply three callables (batches, loss, validation score); the loop owns the optimiser,
devices (through Accelerate), seeding, progress and checkpoints.
"""

from __future__ import annotations

import copy
import logging
import pickle
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recbench.core.config import ClosedConfig
from recbench.core.progress import Reporter
from recbench.models.base import RunContext

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = {"model", "optimizer", "epoch", "best", "best_epoch", "best_state", "history"}
MIN_STEPS = 4  # fewer optimiser steps an epoch than this: warn (small data, large batch)


class TrainConfig(ClosedConfig):
    """Optimisation settings shared by learned models (defaults follow RecBench §4.3)."""

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 512
    weight_decay: float = 0.0
    patience: int = 3  # epochs without validation improvement before stopping
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = 5.0


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
    """
    from accelerate import Accelerator

    reporter: Reporter = ctx.extra.get("reporter") or Reporter()
    torch.manual_seed(ctx.seed)
    accelerator = Accelerator(cpu=not ctx.device.startswith("cuda"))
    trainable = list(params) if params is not None else [p for p in module.parameters()
                                                          if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    module, optimizer = accelerator.prepare(module, optimizer)
    epochs = 1 if ctx.smoke else cfg.epochs
    max_steps = 2 if ctx.smoke else cfg.max_steps_per_epoch

    start_epoch, best, best_epoch, best_state, history = 0, float("-inf"), -1, None, []
    resumed, prior_seconds = None, 0.0
    ckpt = Path(ctx.work_dir) / CHECKPOINT if ctx.work_dir else None
    state = _readable_checkpoint(ckpt, reporter) if ckpt is not None and ckpt.exists() else None
    if state is not None:
        accelerator.unwrap_model(module).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best, best_epoch = state["epoch"] + 1, state["best"], state["best_epoch"]
        best_state, history = state["best_state"], state["history"]
        resumed = start_epoch
        prior_seconds = sum(h.get("seconds", 0.0) for h in history)
        log.info("resumed from %s at epoch %d (best %.4f)", ckpt, start_epoch, best)
        reporter.stage(f"resuming an interrupted run at epoch {start_epoch + 1}")

    steps_per_epoch = n_batches(start_epoch) if n_batches else None
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
        total_batches = n_batches(epoch) if n_batches else None
        if max_steps is not None and total_batches is not None:
            total_batches = min(total_batches, max_steps)
        for batch in reporter.track(batches(epoch), total_batches,
                                    f"epoch {epoch + 1}/{epochs}"):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            loss = loss_fn(module, batch)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
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
        history.append({"epoch": epoch + 1, "loss": total / max(steps, 1), "valid": score,
                        "seconds": time.perf_counter() - epoch_start})
        log.info("epoch %d: loss %.4f valid %.4f", epoch + 1, total / max(steps, 1), score)
        reporter.stage(f"epoch {epoch + 1}: loss {total / max(steps, 1):.4f}, "
                       f"valid {score:.4f}")
        if score > best:
            best, best_epoch = score, epoch
            best_state = copy.deepcopy(accelerator.unwrap_model(module).state_dict())
        if ckpt is not None:
            _save(ckpt, accelerator.unwrap_model(module), optimizer, epoch, best, best_epoch,
                  best_state, history)
    if best_state is not None:
        accelerator.unwrap_model(module).load_state_dict(best_state)
    return TrainResult(best, best_epoch + 1, len(history), history, resumed, prior_seconds)


def _readable_checkpoint(path: Path, reporter: Reporter) -> dict | None:
    """The checkpoint at `path`, or None (the file removed, with a warning) if it is truncated
    or damaged: a run killed mid-write must not block its key, it trains from the start."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(state, dict) or not state.keys() >= CHECKPOINT_KEYS:
            raise ValueError("not a recbench checkpoint")
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        message = (f"discarding the damaged checkpoint {path} ({exc.__class__.__name__}); "
                   "training starts from the first epoch")
        log.warning(message)
        reporter.stage(f"[yellow]note:[/] {message}")
        path.unlink(missing_ok=True)
        return None
    return state


def _save(path: Path, module, optimizer, epoch, best, best_epoch, best_state, history) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                "epoch": epoch, "best": best, "best_epoch": best_epoch,
                "best_state": best_state, "history": history}, tmp)
    tmp.replace(path)


def describe(result: TrainResult) -> dict[str, Any]:
    return {"best_valid": result.best_score, "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run, "resumed_from_epoch": result.resumed_from,
            **({"seconds_before_resume": round(result.prior_seconds, 1)}
               if result.resumed_from is not None else {})}
