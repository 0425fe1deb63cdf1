"""The shared training loop: the few-steps warning, checkpoints that cannot run code, and a
resume that reproduces the uninterrupted run exactly."""

from __future__ import annotations

import logging
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recbench.models.base import RunContext  # noqa: E402
from recbench.training import loop  # noqa: E402
from recbench.training.loop import CHECKPOINT, TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(n_steps: int, caplog) -> list[str]:
    module = torch.nn.Linear(2, 1)
    x, y = torch.randn(8, 2), torch.randn(8, 1)

    def batches(_epoch):
        for _ in range(n_steps):
            yield {"x": x, "y": y}

    def loss(m, batch):
        return torch.nn.functional.mse_loss(m(batch["x"]), batch["y"])

    with caplog.at_level(logging.WARNING, logger="recbench"):
        result = train(module, batches, loss, lambda m: -float(loss(m, {"x": x, "y": y})),
                       TrainConfig(epochs=2, batch_size=256), RunContext(seed=0),
                       n_batches=lambda _e: n_steps)
    assert result.epochs_run == 2
    return [r.getMessage() for r in caplog.records if "optimiser step" in r.getMessage()]


def test_few_steps_an_epoch_are_warned_about(caplog):
    (message,) = _train(2, caplog)
    assert "only 2 optimiser step(s) an epoch at batch size 256" in message


def test_enough_steps_are_not(caplog):
    assert _train(10, caplog) == []


# --- a small model whose training draws from every random source --------------------------

N, BATCH = 96, 16
X = torch.from_numpy(np.random.default_rng(7).normal(size=(N, 6)).astype(np.float32))
Y = (X[:, :1] * 2 - X[:, 1:2] > 0).float()


class Interrupt(Exception):
    pass


def _fit(work_dir: pathlib.Path | None, epochs: int = 5):
    """A dropout MLP trained on shuffled mini-batches (a numpy generator, as the models do);
    returns (result, weights, validation predictions)."""
    torch.manual_seed(0)  # the model's initial weights, as the runner seeds before `fit`
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(16, 1))
    rng = np.random.default_rng(0)

    def batches(_epoch):
        order = rng.permutation(N)
        for start in range(0, N, BATCH):
            idx = torch.from_numpy(order[start:start + BATCH])
            yield {"x": X[idx], "y": Y[idx]}

    def loss(m, b):
        return torch.nn.functional.binary_cross_entropy_with_logits(m(b["x"]), b["y"])

    def validate(m):  # changes every epoch, so the best epoch is the last one or close to it
        return -float(loss(m, {"x": X, "y": Y}))

    result = train(net, batches, loss, validate,
                   TrainConfig(epochs=epochs, batch_size=BATCH, patience=100, lr=1e-2),
                   RunContext(seed=0, work_dir=work_dir), n_batches=lambda _e: N // BATCH,
                   rng=rng)
    with torch.no_grad():
        return result, {k: v.clone() for k, v in net.state_dict().items()}, net(X)


def test_a_resumed_run_reproduces_the_uninterrupted_one(tmp_path, monkeypatch):
    reference, ref_weights, ref_pred = _fit(None)

    save = loop._save

    def save_then_stop(path, state):
        save(path, state)
        if state["epoch"] == 1:  # killed right after the second epoch's checkpoint
            raise Interrupt

    monkeypatch.setattr(loop, "_save", save_then_stop)
    with pytest.raises(Interrupt):
        _fit(tmp_path)
    assert (tmp_path / CHECKPOINT).is_file()
    monkeypatch.setattr(loop, "_save", save)
    # the process that resumes has drawn other numbers before: it must not matter
    np.random.seed(123)  # noqa: NPY002
    torch.rand(5)
    resumed, weights, pred = _fit(tmp_path)

    assert resumed.resumed_from == 2 and reference.resumed_from is None
    assert [h["valid"] for h in resumed.history] == [h["valid"] for h in reference.history]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert resumed.best_epoch == reference.best_epoch
    for name, tensor in ref_weights.items():
        assert torch.equal(weights[name], tensor), name
    assert torch.equal(pred, ref_pred)


def test_checkpoints_hold_only_tensors_and_plain_containers(tmp_path):
    _fit(tmp_path, epochs=1)
    # the run finished, its checkpoint is still there (the runner removes it, not the loop)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["format"] == loop.CHECKPOINT_FORMAT
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python", "batches"}


class _Payload:
    """Unpickling this calls Path.touch(marker): what a planted checkpoint could run."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_planted_pickle_checkpoint_does_not_run_and_training_starts_fresh(tmp_path, caplog):
    marker = tmp_path / "payload-ran"
    work = tmp_path / "work"
    work.mkdir()
    # a checkpoint-shaped dict, so code that loads it with pickle would also go on to use it
    torch.save({"format": loop.CHECKPOINT_FORMAT, "model": _Payload(marker), "epoch": 3},
               work / CHECKPOINT)
    with caplog.at_level(logging.WARNING, logger="recbench"):
        result, _, pred = _fit(work, epochs=2)
    assert not marker.exists()
    assert result.resumed_from is None and result.epochs_run == 2
    (message,) = [r.getMessage() for r in caplog.records if "checkpoint" in r.getMessage()]
    assert "discarding the unusable checkpoint" in message and "UnpicklingError" in message
    # it trained from the start: the same numbers as a run that never saw the file
    _, _, clean = _fit(None, epochs=2)
    assert torch.equal(pred, clean)


def test_a_checkpoint_of_another_shape_is_discarded_not_loaded(tmp_path, caplog):
    _fit(tmp_path, epochs=1)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    state["model"] = {k: torch.zeros(1) for k in state["model"]}
    torch.save(state, tmp_path / CHECKPOINT)
    with caplog.at_level(logging.WARNING, logger="recbench"):
        result, _, _ = _fit(tmp_path, epochs=2)
    assert result.resumed_from is None
    assert any("not this model's" in r.getMessage() or "ValueError" in r.getMessage()
               for r in caplog.records)
