"""The shared training loop: the few-steps warning (early stopping on small data)."""

from __future__ import annotations

import logging

import pytest

torch = pytest.importorskip("torch")

from recbench.models.base import RunContext  # noqa: E402
from recbench.training.loop import TrainConfig, train  # noqa: E402


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
