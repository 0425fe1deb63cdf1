"""Semantic IDs (RQ-VAE tokenizer): codes, collisions, seeding, diagnostics, cache and `info`.

Most tests train a small RQ-VAE (3 levels x 32 codes, latent 8) on 600 synthetic clustered
vectors in a few seconds; the end-to-end test with the packaged all-MiniLM-L6-v2 is slow-marked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from recbench.core import paths
from recbench.core.config import resolve
from recbench.core.errors import ConfigError
from recbench.items import semantic_ids as sid
from recbench.items import training_items
from recbench.models.base import RunContext, TaskData

N, DIM, CLUSTERS = 600, 32, 8
FIT = np.arange(450)  # the "training items"
CFG = sid.SIDConfig(sid_levels=3, sid_codebook_size=32, sid_latent_dim=8, sid_hidden=[64, 32],
                    sid_epochs=30, sid_batch_size=128, sid_lr=3e-3)


def clustered(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, DIM) vectors around CLUSTERS random centres (noise std 0.5), and their cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIM))
    labels = np.arange(n) % CLUSTERS
    x = centres[labels] + 0.5 * rng.normal(size=(n, DIM))
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return clustered()[0]


@pytest.fixture(scope="module")
def fitted(vectors) -> sid.RQVAEFit:
    return sid.train_rqvae(vectors, FIT, CFG, seed=0)


def unique_rows(codes: np.ndarray) -> int:
    return len({tuple(r) for r in codes.tolist()})


# --- the RQ-VAE --------------------------------------------------------------------------------

def test_codes_shape_and_range(fitted):
    assert fitted.codes.shape == (N, 3) and fitted.codes.dtype == np.int64
    assert fitted.codes.min() >= 0 and fitted.codes.max() < 32
    assert fitted.last_distances.shape == (N, 32)
    assert fitted.reconstruction.shape == (N, DIM)
    assert fitted.fit_items == len(FIT) and len(fitted.losses) == 30
    assert fitted.losses[-1] < fitted.losses[0]  # it learned something


def test_last_distances_are_the_last_residual_distances(fitted):
    """Each item's last-level code is its nearest last-level codeword."""
    np.testing.assert_array_equal(fitted.last_distances.argmin(1), fitted.codes[:, -1])


def test_zero_collisions_after_both_strategies(fitted):
    before = unique_rows(fitted.codes)
    assert before < N  # the test exercises resolution: raw codes do collide
    codes, used = sid.resolve_collisions(fitted.codes, fitted.last_distances, 32, "reassign")
    assert used == "reassign" and codes.shape == (N, 3) and unique_rows(codes) == N
    assert codes.max() < 32
    changed = np.flatnonzero((codes != fitted.codes).any(1))
    assert len(changed) == N - before  # exactly one item per extra group member moves ...
    np.testing.assert_array_equal(codes[:, :2], fitted.codes[:, :2])  # ... at the last level

    appended, used = sid.resolve_collisions(fitted.codes, fitted.last_distances, 32, "append")
    assert used == "append" and appended.shape == (N, 4) and unique_rows(appended) == N
    np.testing.assert_array_equal(appended[:, :3], fitted.codes)
    assert (appended[:, 3] > 0).sum() == N - before


def test_same_seed_same_codes_other_seed_other_codes(vectors, fitted):
    again = sid.train_rqvae(vectors, FIT, CFG, seed=0)
    np.testing.assert_array_equal(again.codes, fitted.codes)
    np.testing.assert_array_equal(again.last_distances, fitted.last_distances)
    other = sid.train_rqvae(vectors, FIT, CFG, seed=1)
    assert (other.codes != fitted.codes).any()


def test_seed_leaves_global_rng_alone(vectors):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    sid.train_rqvae(vectors[:100], np.arange(100), CFG.model_copy(update={"sid_epochs": 1}), 7)
    torch.testing.assert_close(torch.rand(3), expected)


def test_same_cluster_shares_first_code(fitted):
    labels = clustered()[1]
    first = fitted.codes[:, 0]
    off = ~np.eye(N, dtype=bool)
    same_code = first[:, None] == first[None, :]
    same_cluster = labels[:, None] == labels[None, :]
    p_same = same_code[same_cluster & off].mean()
    p_other = same_code[~same_cluster].mean()
    chance = sum((np.bincount(first) / N) ** 2)  # two random items share a first code
    assert p_same > 4 * chance and p_other < chance


def test_fit_rows_only_drive_training(vectors):
    """Rows outside fit_rows may be anything: they are encoded, never trained on."""
    cfg = CFG.model_copy(update={"sid_epochs": 3})
    a = sid.train_rqvae(vectors, FIT, cfg, seed=0)
    poisoned = vectors.copy()
    poisoned[len(FIT):] = 1e3  # not a training item
    b = sid.train_rqvae(poisoned, FIT, cfg, seed=0)
    np.testing.assert_array_equal(a.codes[:len(FIT)], b.codes[:len(FIT)])


def test_kmeans_with_fewer_points_than_codes():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # 3 distinct points
    centres = sid.kmeans(x, 8, torch.Generator().manual_seed(0))
    assert centres.shape == (8, 2) and len(torch.unique(centres, dim=0)) == 8
    nearest = torch.cdist(centres, torch.unique(x, dim=0)).min(1).values
    assert (nearest < 0.01).all()  # every centre is a point, or a point plus tiny jitter
    assert (nearest[:3] == 0).all()  # each distinct point is a centre


def test_kmeans_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    truth = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = truth.repeat_interleave(50, 0) + 0.1 * torch.randn(150, 2, generator=g)
    centres = sid.kmeans(x, 3, torch.Generator().manual_seed(1))
    order = torch.cdist(truth, centres).argmin(1)
    assert sorted(order.tolist()) == [0, 1, 2]
    torch.testing.assert_close(centres[order], truth, atol=0.05, rtol=0)


# --- collisions by hand ----------------------------------------------------------------------

HAND_CODES = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 2], [1, 0, 1]])
HAND_DIST = np.array([  # squared distance of each item's last residual to codewords 0..3
    [0.55, 0.50, 0.10, 0.70],  # item 0: shares (0,0,1), farthest from codeword 1
    [0.90, 0.10, 0.80, 0.90],  # item 1: nearest to codeword 1 -> keeps it
    [0.35, 0.30, 0.20, 0.90],  # item 2: moves first (0.30 < 0.55)
    [0.90, 0.90, 0.00, 0.90],
    [0.90, 0.00, 0.90, 0.90],
])


def test_reassign_by_hand():
    codes, used = sid.resolve_collisions(HAND_CODES, HAND_DIST, 4, "reassign")
    assert used == "reassign"
    # prefix (0,0) uses {1, 2}; item 2 takes its nearest free code 0 (code 2, 1 taken);
    # item 0's nearest free one is then 3 (2, 1, 0 taken)
    expected = np.array([[0, 0, 3], [0, 0, 1], [0, 0, 0], [0, 0, 2], [1, 0, 1]])
    np.testing.assert_array_equal(codes, expected)
    np.testing.assert_array_equal(HAND_CODES[1], [0, 0, 1])  # the input is not modified
    shuffled = np.array([4, 2, 0, 3, 1])  # the outcome does not depend on item order
    again, _ = sid.resolve_collisions(HAND_CODES[shuffled], HAND_DIST[shuffled], 4)
    np.testing.assert_array_equal(again, expected[shuffled])


def test_append_by_hand():
    codes, used = sid.resolve_collisions(HAND_CODES, HAND_DIST, 4, "append")
    assert used == "append"
    # group (0,0,1) by distance to codeword 1: item 1 (0.10), item 2 (0.30), item 0 (0.50)
    np.testing.assert_array_equal(codes[:, 3], [2, 0, 1, 0, 0])
    np.testing.assert_array_equal(codes[:, :3], HAND_CODES)


def test_reassign_falls_back_to_append_when_a_prefix_is_full():
    codes = np.array([[0, 0], [0, 0], [0, 1]])  # prefix (0,) holds 3 items, K = 2
    dist = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0]])
    out, used = sid.resolve_collisions(codes, dist, 2, "reassign")
    assert used == "append"
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_append_refuses_groups_larger_than_the_codebook():
    codes = np.zeros((3, 2), dtype=np.int64)
    with pytest.raises(ConfigError, match="3 items share one code"):
        sid.resolve_collisions(codes, np.zeros((3, 2)), 2, "append")


def test_no_collisions_is_a_no_op(fitted):
    codes = np.array([[0, 1], [1, 0]])
    out, used = sid.resolve_collisions(codes, np.zeros((2, 4)), 4, "reassign")
    np.testing.assert_array_equal(out, codes)
    assert used == "reassign"


# --- diagnostics -------------------------------------------------------------------------------

def test_diagnostics_by_hand():
    before = np.array([[0, 0, 0], [0, 0, 0], [1, 2, 0], [1, 3, 1]])
    after = np.array([[0, 0, 0], [0, 1, 0], [1, 2, 0], [1, 3, 1]])
    d = sid.diagnose(before, after, 4)
    assert d["n_items"] == 4 and d["n_levels"] == 3 and d["codebook_size"] == 4
    assert d["collision_rate_before"] == pytest.approx(0.25)  # 3 distinct codes / 4 items
    assert d["collision_rate_after"] == 0.0 and d["colliding_items_before"] == 2
    assert d["utilisation"] == [0.5, 1.0, 0.5]
    # level 0: p = (1/2, 1/2) -> 2; level 1: uniform over 4 -> 4; level 2: (3/4, 1/4)
    h2 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert d["perplexity"] == pytest.approx([2.0, 4.0, math.exp(h2)])
    assert d["items_per_prefix"] == [
        {"length": 1, "prefixes": 2, "mean": 2.0, "max": 2},
        {"length": 2, "prefixes": 4, "mean": 1.0, "max": 1},
        {"length": 3, "prefixes": 4, "mean": 1.0, "max": 1}]


def test_diagnostics_reconstruction(vectors, fitted):
    codes, used = sid.resolve_collisions(fitted.codes, fitted.last_distances, 32)
    d = sid.diagnose(fitted.codes, codes, 32, vectors, fitted, used)
    err = ((fitted.reconstruction.astype(np.float64) - vectors) ** 2)
    assert d["reconstruction_mse"] == pytest.approx(err.mean())
    var = ((vectors - vectors.mean(0)) ** 2).sum()
    assert d["reconstruction_rel"] == pytest.approx(err.sum() / var)
    assert 0 < d["reconstruction_rel"] < 0.5  # far better than predicting the mean
    assert d["final_loss"] == fitted.losses[-1] and d["epochs"] == 30
    assert d["strategy_used"] == "reassign" and d["collision_rate_after"] == 0.0
    json.dumps(d)  # JSON-ready


def test_config_validation():
    for key, value, msg in [("sid_levels", 0, "at least 1"), ("sid_codebook_size", 1,
                                                                 "at least 2"),
                            ("sid_collisions", "drop", "reassign")]:
        with pytest.raises(ConfigError, match=msg):
            resolve({"model": sid.SIDConfig}, {key: value})
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve({"model": sid.SIDConfig}, {"sid_level": 3})


# --- the cached tokenizer ----------------------------------------------------------------------

def make_data(n: int = N, dataset: str = "toy") -> TaskData:
    items = pl.DataFrame({"item_id": np.arange(n, dtype=np.int32),
                          "item_key": [str(i) for i in range(n)],
                          "text": [f"item {i}" for i in range(n)]})
    rng = np.random.default_rng(0)
    train = pl.DataFrame({"user_id": np.arange(100, dtype=np.int32),
                          "history": [rng.choice(FIT, 5).astype(np.int32).tolist()
                                      for _ in range(100)],
                          "target": rng.choice(FIT, 100).astype(np.int32)})
    return TaskData(dataset=dataset, task="seq", items=items, train=train, valid=train.head(0),
                    test=train.head(0), manifest={"content_hash": "v1"})


@pytest.fixture
def fake_encoder(monkeypatch):
    """embed_items returns the clustered vectors (no model); counts its calls."""
    calls = []

    def embed(data, **kwargs):
        calls.append(kwargs)
        vectors = clustered(data.n_items)[0]
        return SimpleNamespace(vectors=vectors, info=SimpleNamespace(key="fake-embedding"))

    monkeypatch.setattr("recbench.items.embeddings.embed_items", embed)
    return calls


def test_semantic_ids_cache(tmp_path, fake_encoder, monkeypatch):
    data = make_data()
    ctx = RunContext(seed=0, cache_dir=tmp_path / "cache")
    first = sid.semantic_ids(data, CFG, ctx)
    assert len(fake_encoder) == 1 and fake_encoder[0]["pooling"] == "mean"
    assert first.codes.shape == (N, 3) and first.codebook_size == 32 and first.key
    assert unique_rows(first.codes) == N and first.diagnostics["collision_rate_after"] == 0.0
    folder = tmp_path / "cache" / "semantic_ids" / "toy"
    table = pl.read_parquet(folder / f"{first.key}.parquet")
    assert table.columns == ["item_id", "codes"] and table.height == N
    assert table["codes"].to_list()[5] == first.codes[5].tolist()
    meta = json.loads((folder / f"{first.key}.json").read_text())
    assert meta["sid"]["sid_codebook_size"] == 32 and meta["seed"] == 0
    assert meta["fit_items"] == len(training_items(data)) and meta["encoder"] == "minilm-l6"
    assert meta["diagnostics"] == first.diagnostics

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(sid, "train_rqvae", no_training)
    hit = sid.semantic_ids(data, CFG, ctx)
    assert len(fake_encoder) == 1  # no encoder either
    assert hit.key == first.key and hit.diagnostics == first.diagnostics
    np.testing.assert_array_equal(hit.codes, first.codes)
    for changed in (CFG.model_copy(update={"sid_beta": 0.5}),
                    CFG.model_copy(update={"sid_pooling": "max"})):
        with pytest.raises(AssertionError, match="must not train"):
            sid.semantic_ids(data, changed, ctx)  # every sid_* setting is in the key
    with pytest.raises(AssertionError, match="must not train"):
        sid.semantic_ids(data, CFG, RunContext(seed=1, cache_dir=tmp_path / "cache"))
    other_train = make_data()
    other_train.train = other_train.train.head(50)  # other training items -> other key
    with pytest.raises(AssertionError, match="must not train"):
        sid.semantic_ids(other_train, CFG, ctx)


def test_corrupt_cache_entry_is_rebuilt(tmp_path, fake_encoder):
    data = make_data()
    ctx = RunContext(seed=0, cache_dir=tmp_path / "cache")
    first = sid.semantic_ids(data, CFG, ctx)
    path = tmp_path / "cache" / "semantic_ids" / "toy" / f"{first.key}.parquet"
    path.write_bytes(b"not parquet")
    again = sid.semantic_ids(data, CFG, ctx)
    assert len(fake_encoder) == 2
    np.testing.assert_array_equal(again.codes, first.codes)


def test_info_lists_cached_tokenizers(tmp_path, fake_encoder):
    from recbench.cli.app import app
    from recbench.runner import load_task_data

    home = tmp_path / "home"
    runner = CliRunner()
    prepared = runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home",
                                   str(home)])
    assert prepared.exit_code == 0, prepared.output
    manifest = json.loads((home / "datasets/synthetic/recbench-v1/tiny/manifest.json").read_text())
    data = load_task_data(home, "synthetic", "tiny", "seq", manifest)
    ctx = RunContext(seed=0, cache_dir=paths.cache_dir(home))
    ids = sid.semantic_ids(data, CFG, ctx)
    d = ids.diagnostics
    out = runner.invoke(app, ["info", "synthetic", "--home", str(home)], terminal_width=200)
    assert out.exit_code == 0, out.output
    text = out.output
    assert f"semantic IDs {ids.key}" in text and "3x32 codes" in text and "task seq" in text
    assert f"collisions before {100 * d['collision_rate_before']:.2f}%" in text
    assert "after 0.00%" in text
    util = " ".join(f"{u:.1%}" for u in d["utilisation"])
    assert f"utilisation per level: {util}" in text
    assert f"perplexity per level: {d['perplexity'][0]:.1f}" in text
    assert f"mse {d['reconstruction_mse']:.4g}" in text
    p = d["items_per_prefix"][0]
    assert f"1: {p['mean']:.2f}/{p['max']}" in text


@pytest.mark.slow
def test_end_to_end_minilm(tmp_path, monkeypatch):
    """Prepared synthetic tiny + all-MiniLM-L6-v2: titles of one genre share first codes."""
    from recbench.cli.app import app
    from recbench.runner import load_task_data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["prepare", "synthetic", "--size", "tiny", "--home",
                               str(home)]).exit_code == 0
    manifest = json.loads((home / "datasets/synthetic/recbench-v1/tiny/manifest.json").read_text())
    data = load_task_data(home, "synthetic", "tiny", "seq", manifest)
    cfg = sid.SIDConfig(sid_levels=3, sid_codebook_size=16, sid_epochs=40, sid_batch_size=128)
    ctx = RunContext(seed=0, cache_dir=paths.cache_dir(home))
    ids = sid.semantic_ids(data, cfg, ctx)
    assert ids.n_items == data.n_items and unique_rows(ids.codes) == ids.n_items
    assert ids.codes.max() < 16
    genre = data.items.sort("item_id")["genre"].to_numpy()
    first = ids.codes[:, 0]
    off = ~np.eye(len(first), dtype=bool)
    same_genre = genre[:, None] == genre[None, :]
    p_same = (first[:, None] == first[None, :])[same_genre & off].mean()
    chance = sum((np.bincount(first) / len(first)) ** 2)
    assert p_same > 2 * chance
    assert (Path(ctx.cache_dir) / "item_embeddings" / "synthetic").is_dir()
    out = runner.invoke(app, ["info", "synthetic", "--home", str(home)], terminal_width=200)
    assert out.exit_code == 0 and f"semantic IDs {ids.key}" in out.output
    assert "minilm-l6 (mean" in out.output
