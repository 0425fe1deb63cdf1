"""DeepFM: Guo et al., "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction", IJCAI 2017.

An FM component and a deep component share the field embeddings (Eq. 1-2):
    ŷ = σ(y_FM + y_DNN),
    y_FM = <w, x> + Σ_{i<j} <V_i, V_j> x_i x_j    (first order + FM second order)
    y_DNN = MLP([e_1 ; ... ; e_F]).
With dense fields (u, t) the first-order term is a linear map of [u ; t] and the second-order
term is <u, t>.
"""

from __future__ import annotations

from torch import nn

from recbench.core.config import Widths
from recbench.models.ctr.base import Activation, DeepCTR, DeepCTRConfig, stack, with_items
from recbench.models.layers.mlp import MLP
from recbench.models.layers.product import FMInteraction


class DeepFMConfig(DeepCTRConfig):
    hidden: Widths = (256, 128, 64)
    activation: Activation = "relu"
    batch_norm: bool = True


class DeepFMInteraction(nn.Module):
    def __init__(self, cfg: DeepFMConfig, dim: int):
        super().__init__()
        self.first_order = nn.Linear(2 * dim, 1)  # <w, x> + bias
        self.fm = FMInteraction()
        self.dnn = MLP(2 * dim, cfg.hidden, out_dim=1, dropout=cfg.dropout,
                       activation=cfg.activation, batch_norm=cfg.batch_norm)

    def forward(self, u, t):
        fields = stack(u, t)  # (B, 2, d)
        flat = fields.flatten(1)  # (B, 2d)
        return self.first_order(flat) + self.fm(fields) + self.dnn(flat)  # (B, 1) each


class DeepFM(DeepCTR):
    """DeepFM (Guo et al., IJCAI 2017): ŷ = σ(y_FM + y_DNN) over the fields (u, t)."""

    Config = DeepFMConfig
    paper_name = "DeepFM"

    def interaction(self, dim: int) -> nn.Module:
        return DeepFMInteraction(self.config, dim)


DeepFMText = with_items(DeepFM, "text")
DeepFMEmb = with_items(DeepFM, "embedding")
