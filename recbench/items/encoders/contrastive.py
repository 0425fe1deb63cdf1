"""LLMEmb's soft-target contrastive loss (`models/utils.py::Contrastive_Loss2`), used by SCFT
(two views of each item) and by the `align` ID fusion (semantic vs pre-trained ID vectors).

For a batch of B pairs X, Y (B, d), not normalised, and temperature tau:

    logits = X Y^T / tau                                   (B, B)
    T      = softmax_row( tau * (X X^T + Y Y^T) / 2 )      soft targets: rows of similar items
                                                           share their mass
    L      = 1/B sum_i 1/2 [ CE(logits_i, T_i) + CE((logits^T)_i, (T^T)_i) ],
    CE(z, t) = - sum_j t_j log softmax(z)_j.

The targets are constants of the current X, Y in LLMEmb's code (gradients flow through them
too; kept so for parity).
"""

from __future__ import annotations

import torch


def soft_contrastive_loss(x: torch.Tensor, y: torch.Tensor, tau: torch.Tensor | float
                          ) -> torch.Tensor:
    """The loss above, a scalar."""
    logits = x @ y.T / tau
    targets = torch.softmax((x @ x.T + y @ y.T) / 2 * tau, dim=-1)
    x_loss = -(targets * torch.log_softmax(logits, dim=-1)).sum(1)
    y_loss = -(targets.T * torch.log_softmax(logits.T, dim=-1)).sum(1)
    return ((x_loss + y_loss) / 2).mean()
