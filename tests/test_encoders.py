"""Encoders: pooling against manual references under both paddings, cached item vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbench.core.artifacts import ArtifactCache
from recbench.items.encoders.pooling import eol_positions, last_positions, pool

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTHS = [5, 2, 3]
WIDTH = 5


def _masks():
    right = torch.zeros(3, WIDTH, dtype=torch.long)
    left = torch.zeros(3, WIDTH, dtype=torch.long)
    for i, n in enumerate(LENGTHS):
        right[i, :n] = 1
        left[i, WIDTH - n:] = 1
    return {"right": right, "left": left}


@pytest.mark.parametrize("side", ["right", "left"])
def test_mean_and_max_equal_manual_masked_reductions(side):
    torch.manual_seed(0)
    hidden = torch.randn(3, WIDTH, 4)
    mask = _masks()[side]
    mean, mx = pool(hidden, mask, "mean"), pool(hidden, mask, "max")
    for i in range(3):
        rows = [t for t in range(WIDTH) if mask[i, t] == 1]
        manual = sum(hidden[i, t] for t in rows) / len(rows)
        torch.testing.assert_close(mean[i], manual)
        torch.testing.assert_close(mx[i], torch.stack([hidden[i, t] for t in rows]).max(0).values)


def test_last_positions_under_both_paddings():
    masks = _masks()
    assert last_positions(masks["right"]).tolist() == [4, 1, 2]
    assert last_positions(masks["left"]).tolist() == [4, 4, 4]
    hidden = torch.arange(3 * WIDTH, dtype=torch.float32).reshape(3, WIDTH, 1)
    assert pool(hidden, masks["right"], "last").squeeze(1).tolist() == [4, 6, 12]


@pytest.mark.parametrize("side", ["right", "left"])
def test_eol_position_skips_trailing_special_tokens(side):
    sep, cls = 102, 101
    rows = [[cls, 7, 8, 9, sep], [cls, sep], [cls, 5, sep]]  # the last: "5" is EOL's token
    mask = _masks()[side]
    ids = torch.zeros(3, WIDTH, dtype=torch.long)
    for i, r in enumerate(rows):
        cols = torch.nonzero(mask[i]).squeeze(1)
        ids[i, cols] = torch.tensor(r)
    pos = eol_positions(mask, ids, {sep, cls})
    want_right = [3, 1, 1]  # row 1 is only special tokens: its last position
    want = want_right if side == "right" else [3, 4, 3]
    assert pos.tolist() == want
    assert [int(ids[i, p]) for i, p in enumerate(pos)] == [9, sep, 5]


@pytest.fixture(scope="module")
def minilm():
    from recbench.items.encoders.encode import TextEncoder

    torch.set_num_threads(1)
    return TextEncoder("minilm-l6")


TEXTS = ["title: red matte lipstick; brand: Maybelline", "shampoo",
         "title: a much longer product title with many words to force padding in a batch"]


@pytest.mark.parametrize("pooling", ["mean", "max", "last", "eol"])
def test_vectors_do_not_depend_on_batch_or_padding_side(minilm, pooling):
    single = np.stack([minilm.encode([t], pooling)[0] for t in TEXTS])
    right = minilm.encode(TEXTS, pooling, batch_size=3, padding="right")
    left = minilm.encode(TEXTS, pooling, batch_size=3, padding="left")
    np.testing.assert_allclose(right, single, atol=2e-5)
    np.testing.assert_allclose(left, single, atol=2e-5)


def test_minilm_mean_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    from recbench.models.llm import catalog

    model = st.SentenceTransformer(str(catalog.resolve("minilm-l6").weights_dir()),
                                   device="cpu")
    model.max_seq_length = 64
    ref = model.encode(TEXTS, normalize_embeddings=False, convert_to_numpy=True)
    # the checkpoint's pipeline ends with Normalize: compare directions
    ours = minilm.encode(TEXTS, "mean", max_length=64)
    ours /= np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, ref / np.linalg.norm(ref, axis=1, keepdims=True),
                               atol=1e-5)


def test_encode_items_caches_and_records_provenance(tmp_path):
    from recbench.items.encoders.encode import encode_items

    cache = ArtifactCache(tmp_path)
    first = encode_items(TEXTS, "minilm-l6", "mean", cache)
    second = encode_items(TEXTS, "minilm-l6", "mean", cache)
    assert not first.provenance["hit"] and second.provenance["hit"]
    np.testing.assert_array_equal(first.vectors, second.vectors)
    assert first.provenance["revision"] and first.provenance["dim"] == 384
    other = encode_items(TEXTS, "minilm-l6", "max", cache)
    assert not other.provenance["hit"] and other.provenance["key"] != first.provenance["key"]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["mean", "last", "eol"])
def test_smollm2_left_and_right_padding_agree(pooling):
    from recbench.items.encoders.encode import TextEncoder

    enc = TextEncoder("smollm2-135m")
    right = enc.encode(TEXTS, pooling, padding="right")
    left = enc.encode(TEXTS, pooling, padding="left")
    single = np.stack([enc.encode([t], pooling)[0] for t in TEXTS])
    np.testing.assert_allclose(right, single, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(left, single, atol=1e-3, rtol=1e-3)
