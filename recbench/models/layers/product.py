"""Pairwise products of field embeddings (B, F, d): PNN's inner/outer product layers and the FM
second-order term of DeepFM.

- PNN: Qu et al., "Product-based Neural Networks for User Response Prediction", ICDM 2016, §3:
  inner products p_ij = <f_i, f_j> (IPNN, Eq. 9), outer products p = f_Σ f_Σ^T with the
  superposition f_Σ = Σ_i f_i (OPNN, Eq. 13), each product unit l_p^n = Σ W_p^n ⊙ p.
- FM: Rendle, "Factorization Machines", ICDM 2010, Eq. 5 (as used by DeepFM, Guo et al.,
  IJCAI 2017, Eq. 2): Σ_{i<j} <v_i, v_j> = ½ Σ_k [(Σ_i v_ik)² − Σ_i v_ik²].
"""

from __future__ import annotations

import torch
from torch import nn


class InnerProduct(nn.Module):
    """All pairwise inner products <f_i, f_j>, i < j: (B, F, d) -> (B, F(F−1)/2)."""

    def __init__(self, n_fields: int):
        super().__init__()
        rows, cols = torch.triu_indices(n_fields, n_fields, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.out_dim = rows.numel()

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        return (fields[:, self.rows] * fields[:, self.cols]).sum(-1)  # (B, P)


class OuterProduct(nn.Module):
    """OPNN's product units on the superposed outer product: (B, F, d) -> (B, units).

    l_p^n = Σ_{ij} W^n_ij p_ij with p = f_Σ f_Σ^T, i.e. the bilinear form f_Σ^T W^n f_Σ.
    """

    def __init__(self, dim: int, units: int):
        super().__init__()
        self.weight = nn.Parameter(nn.init.xavier_normal_(torch.empty(units, dim, dim)))
        self.out_dim = units

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        f_sum = fields.sum(1)  # f_Σ: (B, d)
        return torch.einsum("bi,nij,bj->bn", f_sum, self.weight, f_sum)  # (B, units)


class FMInteraction(nn.Module):
    """FM's second-order term via the sum-square trick: (B, F, d) -> (B, 1)."""

    def forward(self, fields: torch.Tensor) -> torch.Tensor:
        square_of_sum = fields.sum(1).pow(2)  # (B, d)
        sum_of_square = fields.pow(2).sum(1)  # (B, d)
        return 0.5 * (square_of_sum - sum_of_square).sum(-1, keepdim=True)
