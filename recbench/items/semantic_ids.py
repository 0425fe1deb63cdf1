"""Semantic IDs: item text -> encoder embedding -> RQ-VAE -> a short code per item (TIGER).

RecBench (paper 001 §2.1, §4.3 "Semantic Identifier Generation") follows TIGER (Rajput et al.,
"Recommender Systems with Generative Retrieval", NeurIPS 2023): a SentenceBERT embedding of each
item's text is discretised by a residual-quantised autoencoder (RQ-VAE; residual vector
quantisation as in Zeghidour et al., "SoundStream", 2021), 4 levels x 256 codes. For an item
vector x ∈ R^D (`recbench.items.embeddings`):

    z     = E(x)                                   MLP D -> sid_hidden -> d (sid_latent_dim)
    r_0   = z;  c_l = argmin_k ||r_l - e^l_k||²;  r_{l+1} = r_l - e^l_{c_l}     l = 0..L-1
    ẑ     = Σ_l e^l_{c_l};   x̂ = G(z + sg[ẑ - z])  (straight-through estimator; G mirrors E)
    loss  = ||x - x̂||² + Σ_l ( ||sg[r_l] - e^l_{c_l}||² + β ||r_l - sg[e^l_{c_l}]||² )

Squared norms are averaged over coordinates (mean squared errors), so the reconstruction term
(over D) and the codebook terms (over d) share one per-coordinate scale. The next level's
residual subtracts sg[e^l], so a level's commitment term trains the encoder, not earlier
codebooks. Each codebook is initialised by k-means on the first batch's residuals at its level
(k-means++ seeding, then Lloyd iterations). When that batch holds no more distinct residuals
than codes (e.g. 600 items, batch 256, 256 codes), k-means++ on what exists selects all of
them; the remaining codewords are drawn from them with replacement plus Gaussian jitter of
1e-3 x their standard deviation, so no two codewords coincide. As in SoundStream, a codeword
no fit item chose during an epoch is restarted from a random residual at its level (without
this, 20 epochs on amazon-beauty used 35 of 256 first-level codes; with it, 253).

The RQ-VAE is fitted on the training items only (`recbench.items.training_items`), seeded
(same seed, same thread count -> identical codes), then every item is encoded.

Collisions (two items, one full code) are resolved deterministically (`resolve_collisions`):
- `reassign` (default): colliding groups are visited in lexicographic order of their code;
  the member nearest (squared residual distance) to the shared last-level codeword keeps it,
  the others, nearest first, move to their nearest last-level codeword that no item with the
  same (L-1)-prefix uses. Every move lands on a free code, so one pass leaves codes unique and
  n_levels unchanged. If some (L-1)-prefix holds more than K items, no such assignment
  exists and the table falls back to `append` (recorded as `strategy_used`).
- `append` (TIGER's choice): one extra level is added to every item, so n_levels = L + 1; in a
  colliding group it numbers the members 0, 1, 2, ... by their distance to the shared
  last-level codeword (ties by item id); items without a collision get 0. A group larger than
  K cannot be written and is an error.
The collision rate is 1 - (distinct codes / items): the share of items that must move.

`semantic_ids` caches the codes as `<cache>/semantic_ids/<dataset>/<key>.parquet` (`item_id`,
`codes` list) plus `<key>.json` (settings, diagnostics), keyed by everything that determines
them: the dataset version and item texts, the fit items, the encoder's id, revision, pooling
and dtype, every `sid_*` setting and the seed. A cache hit loads no encoder and trains nothing.
The fit items come from the task's training split, so a dataset's CTR (group F) and SeqRec
(groups H, J) runs each get their own tokenizer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import torch
from pydantic import field_validator
from torch import nn

from recbench.core.atomic import write_bytes, write_json
from recbench.core.config import ClosedConfig
from recbench.core.errors import ConfigError, DataError
from recbench.core.hashing import stable_hash
from recbench.core.names import path_component
from recbench.core.progress import Reporter

if TYPE_CHECKING:
    from recbench.models.base import RunContext, TaskData

log = logging.getLogger("recbench.items.semantic_ids")

CACHE_VERSION = 1  # bump when the computation changes; old entries then miss
CACHE_DIR = "semantic_ids"  # under the cache root, beside `item_embeddings`
EMBED_MAX_LENGTH = 64  # tokens per item text given to the encoder
KMEANS_ITERS = 25
JITTER = 1e-3  # x std: codewords drawn with replacement when a batch has too few points


@dataclass(frozen=True)
class SemanticIDs:
    """The codes of every item of one prepared dataset.

    Attributes:
        codes: (n_items, n_levels) int64; row i is item i's code, every entry in
            [0, codebook_size); no two rows are equal (collisions resolved).
        codebook_size: K, codes per level (256 in RecBench).
        key: the cache key the codes were stored under.
        diagnostics: collision rate before/after resolution, per-level utilisation and
            perplexity, reconstruction error, items per prefix (see `diagnose`).
    """

    codes: np.ndarray
    codebook_size: int
    key: str = ""
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def n_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    def check_covers(self, data: TaskData) -> SemanticIDs:
        """These codes, if they are the codes of `data`'s catalogue (one row per item).

        Raises:
            DataError: if the number of items differs.
        """
        if self.n_items != data.n_items:
            raise DataError(f"semantic IDs {self.key!r} cover {self.n_items} items, dataset "
                            f"{data.dataset} has {data.n_items}")
        return self

    def summary(self) -> str:
        """The tokenizer in one line for a record's notes: key, shape, collisions,
        reconstruction and per-level usage (the rest is in the cache's JSON)."""
        diag = self.diagnostics or {}

        def fmt(v: Any) -> str:
            return f"{v:.3g}" if isinstance(v, float) else str(v)

        shown = [f"{k}={fmt(diag[k])}" for k in (
            "collision_rate_before", "collision_rate_after", "strategy_used",
            "reconstruction_mse", "reconstruction_rel") if k in diag]
        shown += [f"{k} per level=[{', '.join(fmt(v) for v in diag[k])}]"
                  for k in ("utilisation", "perplexity") if isinstance(diag.get(k), list)]
        return (f"semantic IDs: {self.n_items} items x {self.n_levels} levels of K = "
                f"{self.codebook_size} (cache key {self.key or 'n/a'})"
                + ("; " + ", ".join(shown) if shown else ""))


class SIDConfig(ClosedConfig):
    """The semantic-ID tokenizer's settings, mixed into every model config that uses codes.

    Keys carry the `sid_` prefix because `--set key=value` keys are flat. Defaults: RecBench
    §4.3 (SentenceBERT, 4 x 256 codes) and TIGER (β = 0.25, latent 32, hidden 512/256/128);
    epochs, lr and batch are ours: 60 epochs of 1,024 (Adam, lr 2e-3) fit ~10k items in
    about a minute of one CPU core (TIGER trains 20k epochs with Adagrad).
    """

    sid_encoder: str = "minilm-l6"  # any alias, hub id or folder the embedding cache takes
    sid_pooling: Literal["mean", "max", "last", "eol"] = "mean"
    sid_levels: int = 4  # L residual codebooks
    sid_codebook_size: int = 256  # K codes per level
    sid_latent_dim: int = 32
    sid_hidden: list[int] = [512, 256, 128]  # encoder widths; the decoder mirrors them
    sid_epochs: int = 60  # amazon-beauty small (9.3k fit items): 0.64 unexplained variance
    sid_lr: float = 2e-3  # Adam
    sid_batch_size: int = 1024  # its first batch also initialises the codebooks (k-means)
    sid_beta: float = 0.25  # commitment weight β
    sid_collisions: Literal["reassign", "append"] = "reassign"

    @field_validator("sid_levels")
    @classmethod
    def _sid_levels_positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"sid_levels must be at least 1 residual level, got {v}")
        return v

    @field_validator("sid_codebook_size")
    @classmethod
    def _sid_codebook_at_least_two(cls, v: int) -> int:
        if v < 2:
            raise ValueError(f"sid_codebook_size must be at least 2 codes per level, got {v}")
        return v

    @field_validator("sid_latent_dim", "sid_epochs", "sid_batch_size")
    @classmethod
    def _sid_positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be a positive integer, got {v}")
        return v

    @field_validator("sid_hidden")
    @classmethod
    def _sid_hidden_positive(cls, v: list[int]) -> list[int]:
        if any(w < 1 for w in v):
            raise ValueError(f"sid_hidden widths must be positive, got {v}")
        return v

    @field_validator("sid_lr")
    @classmethod
    def _sid_lr_positive(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"sid_lr must be positive, got {v}")
        return v

    @field_validator("sid_beta")
    @classmethod
    def _sid_beta_non_negative(cls, v: float) -> float:
        if not v >= 0:
            raise ValueError(f"sid_beta must be non-negative, got {v}")
        return v


def sid_settings(cfg: SIDConfig) -> dict[str, Any]:
    """The `sid_*` fields of a (possibly larger) model config, JSON-ready."""
    dumped = cfg.model_dump(mode="json")
    return {k: dumped[k] for k in SIDConfig.model_fields}


# --- RQ-VAE ------------------------------------------------------------------------------------

def _mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, d), (k, d) -> (n, k) squared Euclidean distances."""
    d2 = a.pow(2).sum(1, keepdim=True) - 2.0 * a @ b.T + b.pow(2).sum(1)
    return d2.clamp_(min=0.0)


class RQVAE(nn.Module):
    """Residual-quantised autoencoder (TIGER; SoundStream's residual VQ), see the module doc.

    Args:
        dim: D, the item vectors' width.
        hidden: encoder widths; the decoder mirrors them.
        latent: d, the quantised space's width.
        levels: L codebooks.
        codebook_size: K codewords per codebook.
    """

    def __init__(self, dim: int, hidden: list[int], latent: int, levels: int,
                 codebook_size: int):
        super().__init__()
        self.encoder = _mlp([dim, *hidden, latent])  # E: (B, D) -> (B, d)
        self.decoder = _mlp([latent, *reversed(hidden), dim])  # G: (B, d) -> (B, D)
        self.codebooks = nn.Parameter(torch.zeros(levels, codebook_size, latent))  # (L, K, d)

    @torch.no_grad()
    def init_codebooks(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """k-means of each level's residuals of the batch `x` (B, D), level by level."""
        r = self.encoder(x)  # r_0: (B, d)
        for level in range(self.codebooks.shape[0]):
            self.codebooks[level] = kmeans(r, self.codebooks.shape[1], generator)
            r = r - self.codebooks[level][_sqdist(r, self.codebooks[level]).argmin(1)]

    @torch.no_grad()
    def restart_dead_codes(self, x: torch.Tensor, used: torch.Tensor,
                           generator: torch.Generator) -> int:
        """Codewords no item chose (`used` (L, K) False) become residuals of the batch `x`.

        SoundStream's (Zeghidour et al. 2021) fix for codebook collapse: a dead
        codeword is replaced by a random residual at its level, drawn without replacement
        where the batch allows. Returns how many codewords were replaced.
        """
        r, replaced = self.encoder(x), 0  # r_0: (B, d)
        for level, book in enumerate(self.codebooks):
            dead = torch.nonzero(~used[level]).flatten()
            if dead.numel():
                if dead.numel() <= r.shape[0]:
                    pick = torch.randperm(r.shape[0], generator=generator)[:dead.numel()]
                else:
                    pick = torch.randint(r.shape[0], (dead.numel(),), generator=generator)
                book[dead] = r[pick]
                replaced += int(dead.numel())
            r = r - book[_sqdist(r, book).argmin(1)]
        return replaced

    def quantize(self, z: torch.Tensor, beta: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """z (B, d) -> ẑ (B, d), codes (B, L), codebook+commitment loss (), r_{L-1} (B, d)."""
        r, z_q = z, torch.zeros_like(z)
        codes, loss = [], z.new_zeros(())
        for book in self.codebooks:  # e^l: (K, d)
            last = r
            c = _sqdist(r.detach(), book).argmin(1)  # (B,)
            e = book[c]  # (B, d)
            loss = loss + nn.functional.mse_loss(e, r.detach()) \
                + beta * nn.functional.mse_loss(r, e.detach())
            z_q = z_q + e
            r = r - e.detach()
            codes.append(c)
        return z_q, torch.stack(codes, 1), loss, last

    def forward(self, x: torch.Tensor, beta: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, D) -> x̂ (B, D), codes (B, L), total loss (), reconstruction loss ()."""
        z = self.encoder(x)
        z_q, codes, q_loss, _ = self.quantize(z, beta)
        x_hat = self.decoder(z + (z_q - z).detach())  # straight-through: ∂x̂/∂z = ∂x̂/∂ẑ
        recon = nn.functional.mse_loss(x_hat, x)
        return x_hat, codes, recon + q_loss, recon


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = KMEANS_ITERS
           ) -> torch.Tensor:
    """(n, d) points -> (k, d) centres: k-means++ seeding, then Lloyd iterations.

    With no more distinct points than k, every distinct point is a centre (what k-means++
    would pick) and the other centres are points drawn with replacement plus N(0, (1e-3 σ)²)
    jitter, σ the points' standard deviation (1 if they are all equal). An empty cluster
    keeps its centre.
    """
    distinct = torch.unique(x, dim=0)  # sorted: the result does not depend on row order
    if distinct.shape[0] <= k:
        extra = k - distinct.shape[0]
        std = float(x.std()) if x.shape[0] > 1 else 0.0
        scale = JITTER * (std if std > 0 else 1.0)
        pick = torch.randint(distinct.shape[0], (extra,), generator=generator)
        jitter = torch.randn((extra, x.shape[1]), generator=generator) * scale
        return torch.cat([distinct, distinct[pick] + jitter])
    first = torch.randint(x.shape[0], (1,), generator=generator)
    centres = [x[first]]
    d2 = _sqdist(x, x[first])[:, 0]  # (n,) squared distance to the nearest centre so far
    for _ in range(1, k):
        nxt = torch.multinomial(d2 / d2.sum(), 1, generator=generator)  # ∝ D(x)²
        centres.append(x[nxt])
        d2 = torch.minimum(d2, _sqdist(x, x[nxt])[:, 0])
    c = torch.cat(centres)  # (k, d)
    for _ in range(iters):
        assign = _sqdist(x, c).argmin(1)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        new = torch.where((counts > 0).unsqueeze(1), sums / counts.clamp(min=1).unsqueeze(1), c)
        if torch.equal(new, c):
            break
        c = new
    return c


@dataclass(frozen=True)
class RQVAEFit:
    """A trained RQ-VAE's output for every item.

    Attributes:
        codes: (n, L) int64 codes before collision resolution.
        last_distances: (n, K) float32 squared distances of each item's last residual
            r_{L-1} to every last-level codeword (collision resolution reads them).
        reconstruction: (n, D) float32 decoder output G(ẑ).
        losses: mean training loss per epoch.
        final_loss: the last epoch's mean loss (reconstruction + codebook + commitment).
        final_reconstruction_loss: the last epoch's mean reconstruction MSE (fit items).
        fit_items: how many items the model was fitted on.
        dead_code_restarts: codewords re-drawn because no fit item chose them in an epoch.
        seconds: wall time of initialisation, training and encoding.
    """

    codes: np.ndarray
    last_distances: np.ndarray
    reconstruction: np.ndarray
    losses: list[float]
    final_loss: float
    final_reconstruction_loss: float
    fit_items: int
    dead_code_restarts: int
    seconds: float


def train_rqvae(vectors: np.ndarray, fit_rows: np.ndarray, cfg: SIDConfig, seed: int,
                reporter: Reporter | None = None) -> RQVAEFit:
    """Fit an RQ-VAE on `vectors[fit_rows]` and encode every row of `vectors`.

    Args:
        vectors: (n, D) item vectors, row i = item i.
        fit_rows: the rows to train on (the training items).
        cfg: the `sid_*` settings (levels, codebook size, widths, epochs, lr, batch, β).
        seed: seeds the weights, the k-means initialisation and the batch order; the global
            torch RNG is left as it was.
        reporter: progress over epochs.

    Returns:
        The codes (before collision resolution), last-level distances, reconstructions, losses.

    Raises:
        DataError: vectors that are not a finite 2-d table, or fit rows out of range / empty.
    """
    started = time.perf_counter()
    reporter = reporter or Reporter()
    x_all = np.asarray(vectors, dtype=np.float32)
    if x_all.ndim != 2 or x_all.shape[0] == 0 or not np.isfinite(x_all).all():
        raise DataError(f"RQ-VAE: expected a finite (n_items, dim) table, got {x_all.shape}")
    rows = np.unique(np.asarray(fit_rows, dtype=np.int64))
    if rows.size == 0 or rows[0] < 0 or rows[-1] >= x_all.shape[0]:
        raise DataError(f"RQ-VAE: fit rows must be item ids in 0..{x_all.shape[0] - 1}, "
                        f"got {rows.size} ids")
    x_all_t = torch.from_numpy(x_all)
    x = x_all_t[torch.from_numpy(rows)]  # (N_fit, D)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RQVAE(x.shape[1], list(cfg.sid_hidden), cfg.sid_latent_dim, cfg.sid_levels,
                      cfg.sid_codebook_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.sid_lr)
    batch = min(cfg.sid_batch_size, x.shape[0])
    losses: list[float] = []
    recon_epoch, restarted = float("nan"), 0
    reporter.stage(f"training RQ-VAE ({cfg.sid_levels} x {cfg.sid_codebook_size} codes) on "
                   f"{x.shape[0]:,} items, {cfg.sid_epochs} epochs")
    for epoch in reporter.track(range(cfg.sid_epochs), cfg.sid_epochs, "RQ-VAE epochs"):
        order = torch.randperm(x.shape[0], generator=generator)
        total, recon_total = 0.0, 0.0
        used = torch.zeros(model.codebooks.shape[:2], dtype=torch.bool)  # (L, K) this epoch
        for start in range(0, x.shape[0], batch):
            xb = x[order[start:start + batch]]  # (B, D)
            if epoch == 0 and start == 0:
                model.init_codebooks(xb, generator)  # k-means on the first batch
            _, codes, loss, recon = model(xb, cfg.sid_beta)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            used.scatter_(1, codes.T, True)
            total += float(loss.detach()) * xb.shape[0]
            recon_total += float(recon.detach()) * xb.shape[0]
        losses.append(total / x.shape[0])
        recon_epoch = recon_total / x.shape[0]
        if epoch < cfg.sid_epochs - 1:
            # dead codewords restart from residuals of a full batch (this epoch's first)
            restarted += model.restart_dead_codes(x[order[:batch]], used, generator)
    codes, dists, recon = _encode_all(model, x_all_t, cfg.sid_beta)
    return RQVAEFit(codes=codes, last_distances=dists, reconstruction=recon, losses=losses,
                    final_loss=losses[-1] if losses else float("nan"),
                    final_reconstruction_loss=recon_epoch, fit_items=int(rows.size),
                    dead_code_restarts=restarted, seconds=time.perf_counter() - started)


@torch.no_grad()
def _encode_all(model: RQVAE, x: torch.Tensor, beta: float, chunk: int = 4096
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes, dists, recon = [], [], []
    last_book = model.codebooks[-1]  # (K, d)
    for start in range(0, x.shape[0], chunk):
        z = model.encoder(x[start:start + chunk])
        z_q, c, _, last = model.quantize(z, beta)
        codes.append(c)
        dists.append(_sqdist(last, last_book))  # (B, K)
        recon.append(model.decoder(z_q))
    return (torch.cat(codes).numpy().astype(np.int64), torch.cat(dists).numpy(),
            torch.cat(recon).numpy())


# --- collisions --------------------------------------------------------------------------------

def _group_ids(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, l) int rows -> (n,) id of each row's distinct value (lexicographic), counts."""
    if rows.shape[1] == 0:
        return np.zeros(rows.shape[0], dtype=np.int64), np.array([rows.shape[0]])
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def collision_rate(codes: np.ndarray) -> float:
    """1 - distinct codes / items: the share of items that must move for codes to be unique."""
    if codes.shape[0] == 0:
        return 0.0
    return 1.0 - len(np.unique(codes, axis=0)) / codes.shape[0]


def resolve_collisions(codes: np.ndarray, last_distances: np.ndarray, codebook_size: int,
                       strategy: Literal["reassign", "append"] = "reassign"
                       ) -> tuple[np.ndarray, str]:
    """Make every item's code unique, deterministically (see the module docstring).

    Args:
        codes: (n, L) codes in [0, K).
        last_distances: (n, K) each item's squared residual distance to every last-level
            codeword (`RQVAEFit.last_distances`).
        codebook_size: K.
        strategy: reassign (keeps L levels) or append (L + 1 levels).

    Returns:
        The unique codes (n, L) or (n, L + 1), and the strategy actually used (`reassign`
        falls back to `append` when some (L-1)-prefix holds more than K items).

    Raises:
        ConfigError: `append` with more than K items sharing one code.
    """
    codes = np.asarray(codes, dtype=np.int64)
    n, levels = codes.shape
    if strategy == "reassign":
        prefix_of, prefix_counts = _group_ids(codes[:, :-1])
        if prefix_counts.max(initial=0) <= codebook_size:
            return _reassign(codes, last_distances, prefix_of), "reassign"
        log.warning("semantic IDs: an (L-1)-prefix holds %d > K = %d items, so reassigning the "
                    "last level cannot make codes unique; appending a level instead",
                    int(prefix_counts.max()), codebook_size)
    return _append(codes, last_distances, codebook_size), "append"


def _colliding_groups(codes: np.ndarray, last_distances: np.ndarray) -> list[np.ndarray]:
    """Members of each shared code, groups in lexicographic code order, members ordered by
    distance to the shared last-level codeword (ties: item id)."""
    group_of, counts = _group_ids(codes)
    shared = np.flatnonzero(counts > 1)
    if shared.size == 0:
        return []
    order = np.argsort(group_of, kind="stable")  # items grouped, ascending id within a group
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for g in shared:
        members = order[starts[g]:starts[g + 1]]
        d = last_distances[members, codes[members[0], -1]]
        out.append(members[np.lexsort((members, d))])
    return out


def _reassign(codes: np.ndarray, last_distances: np.ndarray, prefix_of: np.ndarray
              ) -> np.ndarray:
    codes = codes.copy()
    used: dict[int, set[int]] = {}
    for p, c in zip(prefix_of.tolist(), codes[:, -1].tolist(), strict=True):
        used.setdefault(p, set()).add(c)
    for members in _colliding_groups(codes, last_distances):
        for item in members[1:]:  # the nearest keeps the code; the others move, nearest first
            taken = used[int(prefix_of[item])]
            for c in np.argsort(last_distances[item], kind="stable").tolist():
                if c not in taken:
                    codes[item, -1] = c
                    taken.add(c)
                    break
    return codes


def _append(codes: np.ndarray, last_distances: np.ndarray, codebook_size: int) -> np.ndarray:
    extra = np.zeros(codes.shape[0], dtype=np.int64)
    for members in _colliding_groups(codes, last_distances):
        if len(members) > codebook_size:
            raise ConfigError(f"semantic IDs: {len(members)} items share one code, more than "
                              f"the {codebook_size} an appended level can tell apart; raise "
                              "sid_levels or sid_codebook_size")
        extra[members] = np.arange(len(members))
    return np.concatenate([codes, extra[:, None]], axis=1)


# --- diagnostics -------------------------------------------------------------------------------

def code_usage(codes: np.ndarray, codebook_size: int) -> tuple[list[float], list[float]]:
    """Per level: utilisation (fraction of the K codes used by some item) and perplexity
    exp(-Σ_k p_k ln p_k), p_k the share of items with code k at that level."""
    utilisation, perplexity = [], []
    for level in range(codes.shape[1]):
        counts = np.bincount(codes[:, level], minlength=codebook_size)
        p = counts[counts > 0] / codes.shape[0]
        utilisation.append(float((counts > 0).sum() / codebook_size))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
    return utilisation, perplexity


def items_per_prefix(codes: np.ndarray) -> list[dict[str, float]]:
    """For every prefix length l = 1..L: distinct prefixes, mean and max items per prefix."""
    out = []
    for length in range(1, codes.shape[1] + 1):
        _, counts = _group_ids(codes[:, :length])
        out.append({"length": length, "prefixes": int(counts.size),
                    "mean": float(codes.shape[0] / counts.size), "max": int(counts.max())})
    return out


def diagnose(codes_before: np.ndarray, codes: np.ndarray, codebook_size: int,
             vectors: np.ndarray | None = None, fit: RQVAEFit | None = None,
             strategy_used: str | None = None) -> dict[str, Any]:
    """Quality of a code table, JSON-ready.

    Args:
        codes_before: (n, L) codes before collision resolution.
        codes: (n, L or L + 1) the resolved codes (utilisation, perplexity, prefixes).
        codebook_size: K.
        vectors: (n, D) the item vectors, for the reconstruction error (needs `fit`).
        fit: the RQ-VAE's output: reconstructions, final loss, training time.
        strategy_used: how collisions were resolved.

    Returns:
        n_items, n_levels, codebook_size, collision_rate_before/after (1 - distinct / items),
        colliding_items_before (items sharing their code with another), utilisation and
        perplexity (lists, one per level), items_per_prefix (one dict per prefix length),
        and with `fit`: reconstruction_mse (mean over items and coordinates of (x̂ - x)²),
        reconstruction_rel (Σ(x̂ - x)² / Σ(x - x̄)², the unexplained share of the vectors'
        variance), final_loss, final_reconstruction_loss, fit_items, epochs, train_seconds.
    """
    _, counts = _group_ids(np.asarray(codes_before))
    utilisation, perplexity = code_usage(codes, codebook_size)
    out: dict[str, Any] = {
        "n_items": int(codes.shape[0]), "n_levels": int(codes.shape[1]),
        "codebook_size": int(codebook_size),
        "collision_rate_before": collision_rate(codes_before),
        "collision_rate_after": collision_rate(codes),
        "colliding_items_before": int(counts[counts > 1].sum()),
    }
    if strategy_used is not None:
        out["strategy_used"] = strategy_used
    if fit is not None:
        if vectors is not None:
            x = np.asarray(vectors, dtype=np.float64)
            err = ((fit.reconstruction - x) ** 2).sum()
            var = ((x - x.mean(0)) ** 2).sum()
            out["reconstruction_mse"] = float(err / x.size)
            out["reconstruction_rel"] = float(err / var) if var > 0 else float("nan")
        out.update(final_loss=float(fit.final_loss),
                   final_reconstruction_loss=float(fit.final_reconstruction_loss),
                   fit_items=fit.fit_items, epochs=len(fit.losses),
                   dead_code_restarts=fit.dead_code_restarts,
                   train_seconds=round(fit.seconds, 3))
    out.update(utilisation=utilisation, perplexity=perplexity,
               items_per_prefix=items_per_prefix(codes))
    return out


# --- the cached tokenizer ----------------------------------------------------------------------

def semantic_ids(data: TaskData, cfg: SIDConfig, ctx: RunContext | None,
                 reporter: Reporter | None = None) -> SemanticIDs:
    """Every item's semantic ID: embed, fit the RQ-VAE on training items, resolve, diagnose.

    Args:
        data: the task data (items, and the training split that picks the fit items).
        cfg: a config with the `sid_*` fields.
        ctx: seed, device, cache root (`ctx.cache_dir`, else $RECBENCH_HOME/cache) and log.
        reporter: progress; default `ctx.extra["reporter"]`, else silent.

    Returns:
        The codes, K, the cache key and the diagnostics (also in `<key>.json`).

    Raises:
        ConfigError: an unknown encoder, or collisions `append` cannot resolve.
        DataError: items without dense ids, or an empty training split.
    """
    from recbench.items import training_items
    from recbench.items.embeddings import cache_root, embed_items, item_texts, texts_hash
    from recbench.models.llm import backbones, catalog

    started = time.perf_counter()
    logger = ctx.log if ctx is not None else log
    reporter = reporter or (ctx.extra.get("reporter") if ctx is not None else None) or Reporter()
    seed = ctx.seed if ctx is not None else 0
    device = ctx.device if ctx is not None else "cpu"
    entry = catalog.resolve(cfg.sid_encoder)
    texts = item_texts(data)
    fit = training_items(data)
    if fit.size == 0:
        raise DataError(f"{data.dataset}: no training items to fit the RQ-VAE on")
    embed_args = dict(encoder=cfg.sid_encoder, pooling=cfg.sid_pooling, ctx=ctx,
                      max_length=EMBED_MAX_LENGTH)
    source, embedded = backbones.source_of(entry), None
    if source.revision is None:  # a hub model's revision is known only once it is loaded
        embedded = embed_items(data, **embed_args)
        model_id, revision = embedded.info.model_id, embedded.info.revision
    else:
        model_id, revision = source.model_id, source.revision
    spec = {"v": CACHE_VERSION, "dataset": data.dataset,
            "dataset_version": data.manifest.get("content_hash"), "texts": texts_hash(texts),
            "n_items": len(texts),
            "fit_items_hash": hashlib.sha256(fit.astype(np.int64).tobytes()).hexdigest()[:16],
            "model_id": model_id, "revision": revision, "gguf_file": source.gguf_file,
            "pooling": cfg.sid_pooling, "max_length": EMBED_MAX_LENGTH,
            "dtype": str(backbones.default_dtype(device)).removeprefix("torch."),
            "sid": sid_settings(cfg), "seed": seed}
    key = stable_hash(spec)
    root = sid_cache_dir(cache_root(ctx), data.dataset)
    cached = read_cached(root, key, len(texts))
    if cached is not None:
        logger.info("semantic IDs %s: cache hit (%s), no encoder loaded, nothing trained",
                    key, root / f"{key}.parquet")
        reporter.stage(f"semantic IDs: cache hit {key}")
        return cached

    reporter.stage(f"semantic IDs {key}: cache miss, fitting the RQ-VAE")
    if embedded is None:
        embedded = embed_items(data, **embed_args)
    vectors = embedded.vectors
    fitted = train_rqvae(vectors, fit, cfg, seed, reporter)
    codes, used = resolve_collisions(fitted.codes, fitted.last_distances, cfg.sid_codebook_size,
                                     cfg.sid_collisions)
    diagnostics = diagnose(fitted.codes, codes, cfg.sid_codebook_size, vectors, fitted, used)
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    meta = {**spec, "key": key, "task": data.task, "size": _size(data),
            "encoder": entry.alias, "embedding_key": embedded.info.key,
            "fit_items": int(fit.size), "n_levels": int(codes.shape[1]),
            "codebook_size": cfg.sid_codebook_size, "diagnostics": diagnostics,
            "seconds": round(time.perf_counter() - started, 3), "created": created}
    write_cached(root, key, codes, meta)
    logger.info("semantic IDs %s: trained on %d items in %.1f s (final loss %.4g), %d x %d "
                "codes, collisions %.2f%% -> %.2f%% (%s), written to %s", key, fit.size,
                fitted.seconds, fitted.final_loss, codes.shape[1], cfg.sid_codebook_size,
                100 * diagnostics["collision_rate_before"],
                100 * diagnostics["collision_rate_after"], used, root / f"{key}.parquet")
    return SemanticIDs(codes, cfg.sid_codebook_size, key, json.loads(json.dumps(diagnostics)))


def _size(data: TaskData) -> str | None:
    return (data.manifest.get("parameters") or {}).get("size")


def sid_cache_dir(cache: Path, dataset: str) -> Path:
    """`<cache>/semantic_ids/<dataset>/`, the folder `recbench info` lists."""
    return Path(cache) / CACHE_DIR / path_component(dataset or "_")


def read_cached(root: Path, key: str, n_items: int) -> SemanticIDs | None:
    """The cached codes of `key`, or None when absent, unreadable or not for `n_items`."""
    table, meta_path = root / f"{key}.parquet", root / f"{key}.json"
    if not (table.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        df = pl.read_parquet(table).sort("item_id")
        levels = int(meta["n_levels"])
        codes = df["codes"].list.to_array(levels).to_numpy().astype(np.int64)
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as err:
        log.warning("ignoring unreadable semantic-ID cache %s: %s", table, err)
        return None
    ids = df["item_id"].to_numpy()
    if meta.get("key") != key or codes.shape != (n_items, levels) or \
            not np.array_equal(ids, np.arange(n_items)):
        log.warning("ignoring semantic-ID cache %s: %s codes, expected %d items", table,
                    codes.shape, n_items)
        return None
    return SemanticIDs(codes, int(meta["codebook_size"]), key, meta.get("diagnostics", {}))


def write_cached(root: Path, key: str, codes: np.ndarray, meta: dict[str, Any]) -> None:
    """The Parquet table first, then the JSON: an entry counts only once both are whole."""
    df = pl.DataFrame({"item_id": np.arange(codes.shape[0], dtype=np.int32),
                       "codes": codes.astype(np.int32)}).with_columns(
        pl.col("codes").arr.to_list())
    buf = io.BytesIO()
    df.write_parquet(buf)
    write_bytes(root / f"{key}.parquet", buf.getvalue())
    write_json(root / f"{key}.json", meta)
