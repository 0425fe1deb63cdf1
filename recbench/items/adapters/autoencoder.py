"""A linear autoencoder (the authors' `SideEncoder`, paper 002 §3.2): Dense layers, no activation.

Hidden widths double from 2·dim up to at most the input width D; the encoder is those widths
widest first, then the `dim` bottleneck, the decoder mirrors it back to D. Trained with MSE
(+ an optional L2 penalty on the weights, the paper's "ℓ2 regularisation"), Adam, mini-batches,
seeded. Being linear it learns (a basis of) a PCA-like subspace; the code is the bottleneck.
"""

from __future__ import annotations

import numpy as np


class LinearAutoencoder:
    """x -> encoder(x) (dim,), trained to reconstruct x from it."""

    def __init__(self, dim: int, seed: int = 0, epochs: int = 3, batch_size: int = 512,
                 lr: float = 1e-3, l2: float = 0.0):
        self.dim, self.seed, self.epochs = dim, seed, epochs
        self.batch_size, self.lr, self.l2 = batch_size, lr, l2
        self.info: dict = {"seed": seed, "epochs": epochs}

    def fit(self, x: np.ndarray, classes: np.ndarray | None = None) -> LinearAutoencoder:
        import torch
        from torch import nn

        d = x.shape[1]
        widths, w = [], 2 * self.dim
        while w <= d:
            widths.append(w)
            w *= 2
        enc = [*reversed(widths), self.dim]  # widest first
        gen = torch.Generator().manual_seed(self.seed)
        sizes = [d, *enc]
        back = list(reversed(sizes))
        with torch.random.fork_rng(devices=[]):  # seeded init, the caller's RNG untouched
            torch.manual_seed(self.seed)
            self.encoder = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(sizes, sizes[1:],
                                                                            strict=False)])
            decoder = nn.Sequential(*[nn.Linear(a, b) for a, b in zip(back, back[1:],
                                                                      strict=False)])
        model = nn.Sequential(self.encoder, decoder).double()
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        data = torch.from_numpy(np.asarray(x, dtype=np.float64))
        loss = torch.tensor(0.0)
        for _ in range(self.epochs):
            for idx in torch.randperm(len(data), generator=gen).split(self.batch_size):
                batch = data[idx]
                loss = torch.mean((model(batch) - batch) ** 2)
                if self.l2:
                    loss = loss + self.l2 * sum((p ** 2).sum() for p in model.parameters())
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.info["final_loss"] = float(loss.detach())
        self.info["widths"] = enc
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.encoder(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()
