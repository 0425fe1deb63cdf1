"""Group G: every sequential model trains a step and evaluates; SASRec is causal, BERT4Rec masks
and reads [MASK], GRU4Rec aligns its states, SKNN variants find the expected neighbours."""

from __future__ import annotations

import sys
import types

import numpy as np
import polars as pl
import pytest
import torch

from recbench.models.base import RunContext, TaskData
from recbench.models.registry import MODELS, models_in_group
from recbench.runner import RunRequest, run

SEQ_MODELS = models_in_group("G")


pytestmark = pytest.mark.usefixtures("one_thread")


def fake_item_vectors(data, encoder, pooling, pca_dim, fit_items, ctx):
    """Deterministic stand-in for recbench.items.embeddings.item_vectors (no encoder download):
    items with similar ids get similar vectors."""
    dim = pca_dim or 16
    ids = np.arange(data.n_items)[:, None]
    return np.sin(ids / 7.0 + np.arange(dim)[None, :]).astype(np.float32)


@pytest.fixture
def item_vectors(monkeypatch):
    try:
        import recbench.items.embeddings as module
    except ImportError:  # not written yet: a stand-in module
        module = types.ModuleType("recbench.items.embeddings")
        monkeypatch.setitem(sys.modules, "recbench.items.embeddings", module)
    monkeypatch.setattr(module, "item_vectors", fake_item_vectors, raising=False)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("seq_home")


def test_group_g_registers_the_paper_models():
    for name in ("SASRec-3L", "SASRec-6L", "SASRec-12L", "SASRec-24L", "BERT4Rec", "GRU4Rec",
                 "SKNN", "V-SKNN", "S-SKNN", "SF-SKNN", "SKNNEmb", "LLM2SASRec", "LLM2BERT4Rec",
                 "LLM2GRU4Rec"):
        assert name in SEQ_MODELS


@pytest.mark.parametrize("model", SEQ_MODELS)
def test_smoke_every_seq_model(model, home, item_vectors):
    sets = {"latency_samples": 5}
    if model.startswith(("SASRec", "LLM2SASRec", "BERT4Rec", "LLM2BERT4Rec")):
        sets["dim"] = 16  # keeps the 24-layer smoke run fast
    [outcome] = run(RunRequest(group="G", model=model, datasets=["synthetic"], size="tiny",
                               smoke=True, home=home, sets=sets))
    record = outcome.record
    assert outcome.task == "seq" and record.smoke
    full = record.metrics["full"]
    assert 0.0 <= full["ndcg@10"] <= 1.0 and 0.0 <= record.metrics["sampled100"]["hr@10"] <= 1.0
    assert record.latency.n == 5 and record.latency.mean_ms > 0


def test_variant_names_fix_their_defining_setting(home):
    from recbench.core.errors import ConfigError

    with pytest.raises(ConfigError):
        run(RunRequest(group="G", model="SASRec-3L", datasets=["synthetic"], size="tiny",
                       smoke=True, home=home, sets={"n_layers": 6}))
    with pytest.raises(ConfigError):
        run(RunRequest(group="G", model="LLM2GRU4Rec", datasets=["synthetic"], size="tiny",
                       smoke=True, home=home, sets={"items": "id"}))


# --- SASRec ---------------------------------------------------------------------------------

def _table(n_items: int = 30, dim: int = 16):
    from recbench.items import IdTable

    torch.manual_seed(0)
    return IdTable(n_items, np.arange(n_items), dim)


def test_sasrec_is_causal():
    from recbench.models.seq.sasrec import SASRecEncoder

    enc = SASRecEncoder(_table(), max_len=8, n_layers=2, heads=2, dropout=0.0).eval()
    a = torch.tensor([[0, 0, 3, 7, 2, 9, 4, 5]])
    b = a.clone()
    b[0, 5:] = torch.tensor([11, 12, 13])  # change every position after 4
    with torch.no_grad():
        ha, hb = enc.sequence(a), enc.sequence(b)
    assert torch.allclose(ha[0, :5], hb[0, :5], atol=1e-6)
    assert not torch.allclose(ha[0, 5:], hb[0, 5:])
    assert torch.allclose(enc(a), ha[:, -1])  # the user vector is the newest position's state


def test_sasrec_ignores_padding():
    from recbench.models.seq.sasrec import SASRecEncoder

    enc = SASRecEncoder(_table(), max_len=6, n_layers=2, heads=2, dropout=0.0).eval()
    with torch.no_grad():
        padded = enc.sequence(torch.tensor([[0, 0, 0, 3, 7, 2]]))
        bare = enc.sequence(torch.tensor([[3, 7, 2]]))  # same positions, no padding keys
        assert torch.allclose(padded[:, 3:], bare, atol=1e-6)
        assert torch.isfinite(enc.sequence(torch.zeros(1, 6, dtype=torch.long))).all()


def test_causal_loss_only_scores_positions_with_a_history():
    from recbench.models.seq.sasrec import SASRec

    model = SASRec(SASRec.Config(dim=16, n_layers=1), RunContext(seed=0))
    model.n_items = 30
    model.items = _table()
    model.module = model.encoder(model.items)
    seq = torch.tensor([[0, 0, 0, 0, 4, 5, 6], [0, 0, 0, 0, 0, 0, 3]])  # the 2nd: nothing to learn
    loss = model.loss(model.module, {"seq": seq})
    assert torch.isfinite(loss)
    sampled = SASRec(SASRec.Config(dim=16, n_layers=1, sampled_softmax=5), RunContext(seed=0))
    sampled.n_items, sampled.items, sampled.module = 30, model.items, model.module
    logits, target = sampled.item_logits(torch.randn(4, 16), torch.tensor([1, 2, 3, 4]))
    assert logits.shape == (4, 6) and (target == 0).all()


@pytest.mark.parametrize("name", ["SASRec", "BERT4Rec", "GRU4Rec"])
def test_single_row_scoring_path_matches_the_batch_path(name):
    """Batch 1 runs the history unpadded; the batch path pads to max_len: same scores."""
    cls = MODELS.load(name)
    sets = {"hidden": 16} if name == "GRU4Rec" else {"n_layers": 1}
    model = cls(cls.Config(dim=16, max_len=5, **sets), RunContext(seed=0))
    model.n_items, model.items = 30, _table()
    model.module = model.encoder(model.items).eval()
    rows = pl.DataFrame({"history": [[3, 4], [], list(range(1, 12)), None]},
                        schema={"history": pl.List(pl.Int32)})
    batch = model.score_items(rows)
    single = np.concatenate([model.score_items(rows.slice(i, 1)) for i in range(rows.height)])
    assert batch.shape == (4, 30) and np.allclose(batch, single, atol=1e-5)


# --- BERT4Rec / GRU4Rec ---------------------------------------------------------------------

def test_bert4rec_cloze_mask():
    from recbench.models.seq.bert4rec import cloze_mask

    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(1, 50, (400, 10))
    seq[:, :4] = 0  # 4 padding columns
    seq[:50, :9] = 0  # rows with a single item
    tokens, mask = cloze_mask(seq, 0.3, 0.1, mask_id=99, generator=gen)
    assert not mask[seq == 0].any()  # padding is never masked
    assert mask.any(1).all()  # every sequence predicts something
    assert (tokens[mask] == 99).all() and (tokens[~mask] == seq[~mask]).all()
    rate = mask[50:, 4:].float().mean().item()
    assert 0.2 < rate < 0.4  # about mask_prob, less the last-only rows


def test_bert4rec_reads_the_appended_mask_and_is_bidirectional():
    from recbench.models.seq.bert4rec import BERT4RecEncoder

    enc = BERT4RecEncoder(_table(), mask_id=31, max_len=7, n_layers=2, heads=2, dropout=0.0)
    enc.eval()
    history = torch.tensor([[0, 0, 3, 7, 2, 9]])
    with torch.no_grad():
        user = enc(history)
        states = enc.sequence(torch.tensor([[0, 0, 3, 7, 2, 9, 31]]))
        assert torch.allclose(user, states[:, -1])
        changed = enc.sequence(torch.tensor([[0, 0, 3, 7, 2, 8, 31]]))
    assert not torch.allclose(states[0, 2], changed[0, 2])  # position 2 sees a later change


def test_gru4rec_states_align_with_right_aligned_input():
    from recbench.models.seq.gru4rec import GRU4RecEncoder, left_align

    tokens = torch.tensor([[0, 0, 5, 6, 7], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]])
    left, back = left_align(tokens)
    assert left.tolist() == [[5, 6, 7, 0, 0], [1, 2, 3, 4, 5], [0, 0, 0, 0, 0]]
    assert left.gather(1, back).tolist() == tokens.tolist()
    enc = GRU4RecEncoder(_table(), hidden=16, n_layers=1, dropout=0.0).eval()
    with torch.no_grad():
        states = enc.sequence(tokens)
        assert torch.allclose(enc(tokens[:2]), states[:2, -1], atol=1e-6)
        # padding in front does not change the state: same history, more padding
        assert torch.allclose(enc(torch.tensor([[0, 0, 0, 5, 6, 7]])), states[0, -1], atol=1e-6)


# --- SKNN -----------------------------------------------------------------------------------

def _sessions_data(sessions: list[list[int]], n_items: int) -> TaskData:
    train = pl.DataFrame({"user_id": list(range(len(sessions))),
                          "history": [s[:-1] for s in sessions],
                          "target": [s[-1] for s in sessions]},
                         schema={"user_id": pl.Int32, "history": pl.List(pl.Int32),
                                 "target": pl.Int32})
    items = pl.DataFrame({"item_id": list(range(n_items)),
                          "text": [f"item {i}" for i in range(n_items)]})
    return TaskData("hand", "seq", items, train, train.head(0), train.head(0))


def _sknn(name: str, data: TaskData, **settings):
    from recbench.models.registry import MODELS

    cls = MODELS.load(name)
    model = cls(cls.Config(**settings), RunContext(seed=0))
    model.fit(data)
    return model


def _top(model, history: list[int]) -> np.ndarray:
    rows = pl.DataFrame({"history": [history]}, schema={"history": pl.List(pl.Int32)})
    return np.argsort(-model.score_items(rows)[0], kind="stable")


SESSIONS = [[0, 1, 2, 3], [0, 1, 4], [5, 6, 7], [2, 8, 9], [1, 9, 0, 8]]


def test_sknn_recommends_items_of_the_most_similar_session():
    data = _sessions_data(SESSIONS, 10)
    model = _sknn("SKNN", data, k=1, sample_size=5, filter_history=True)
    # [0, 1, 2] overlaps session 0 most (cosine 3/sqrt(3*4)); its only other item is 3
    assert _top(model, [0, 1, 2])[0] == 3
    scores = model.score_items(pl.DataFrame({"history": [[0, 1, 2]]},
                                            schema={"history": pl.List(pl.Int32)}))[0]
    assert (scores[[0, 1, 2]] == -1).all()  # the history itself is filtered
    # by hand with k=5: sims to sessions 0, 1, 3, 4 = 3/sqrt(12), 2/sqrt(9), 1/sqrt(9), 2/sqrt(12)
    full = _sknn("SKNN", data, k=5, sample_size=5, filter_history=True)
    s = full.score_items(pl.DataFrame({"history": [[0, 1, 2]]},
                                      schema={"history": pl.List(pl.Int32)}))[0]
    raw = {3: 3 / 12 ** 0.5, 4: 2 / 3, 8: 1 / 3 + 2 / 12 ** 0.5, 9: 1 / 3 + 2 / 12 ** 0.5}
    base = min(raw.values())
    for item, value in raw.items():
        assert s[item] == pytest.approx(value - base + 1.0, rel=1e-6)
    assert s[[5, 6, 7]].max() < 1.0  # unsupported items rank below supported ones
    # by default the history's items stay recommendable (a RecBench target may repeat one)
    kept = _sknn("SKNN", data, k=5, sample_size=5)
    assert (kept.score_items(pl.DataFrame({"history": [[0, 1, 2]]},
                                          schema={"history": pl.List(pl.Int32)}))[0][[0, 1, 2]]
            >= 1.0).all()


def test_vsknn_weights_the_newest_item_most():
    data = _sessions_data([[0, 5], [1, 6]], 8)
    # the newest history item 1 decides the neighbour under a steep decay, not under none
    v = _sknn("V-SKNN", data, k=1, sample_size=2, decay="quadratic", filter_history=True)
    assert _top(v, [0, 1])[0] == 6
    assert _top(v, [1, 0])[0] == 5


def test_ssknn_and_sfsknn():
    data = _sessions_data([[0, 5], [1, 6], [1, 7], [0, 1, 4]], 8)
    s = _sknn("S-SKNN", data, k=4, sample_size=4)
    scores = s.score_items(pl.DataFrame({"history": [[0, 1]]},
                                        schema={"history": pl.List(pl.Int32)}))[0]
    # sessions 1 and 2 share the newest item (w = 2/2); session 0 only the older one (w = 1/2)
    assert scores[6] == scores[7] > scores[5]
    f = _sknn("SF-SKNN", data, k=4, sample_size=4)
    top = f.score_items(pl.DataFrame({"history": [[0, 1]]},
                                     schema={"history": pl.List(pl.Int32)}))[0]
    assert (top[[4, 6, 7]] >= 1).all() and top[5] < 1  # 5 never followed item 1


def test_sknnemb_uses_embedding_similarity(item_vectors, monkeypatch):
    import recbench.items.embeddings as embeddings

    e = np.eye(4, dtype=np.float32)
    vectors = np.stack([e[2], e[1], e[1], e[0], e[0], e[0], e[3], e[3], e[3], e[3]])
    monkeypatch.setattr(embeddings, "item_vectors", lambda data, **_: vectors)
    data = _sessions_data([[0, 1, 2], [0, 3, 4], [5, 9]], 10)
    # binary cosine: [5, 9] is the closest session to [0, 5] (1/2 vs 1/sqrt(6)), so SKNN says 9;
    # by embeddings [0, 3, 4] is (items 3, 4 and 5 share a direction), so SKNNEmb says 3 or 4
    assert _top(_sknn("SKNN", data, k=1, sample_size=3, filter_history=True), [0, 5])[0] == 9
    emb = _sknn("SKNNEmb", data, k=1, sample_size=3, filter_history=True)
    assert _top(emb, [0, 5])[0] in (3, 4)


# --- quality --------------------------------------------------------------------------------

@pytest.mark.slow
def test_sasrec_beats_most_popular_on_synthetic_small(tmp_path):
    def ndcg(group, model, **sets):
        [out] = run(RunRequest(group=group, model=model, datasets=["synthetic"], size="small",
                               home=tmp_path, task="seq",
                               sets={"latency_samples": 20, **sets}))
        return out.record.metrics["full"]["ndcg@10"]

    popular = ndcg("baseline", "MostPopular")
    sasrec = ndcg("G", "SASRec-3L", epochs=10)  # ten epochs already clear the baseline
    assert sasrec > popular * 1.5, (sasrec, popular)


def test_seq_batch_size_caps_small_splits_at_eight_steps_an_epoch():
    from recbench.models.torch_base import seq_batch_size

    assert seq_batch_size(3600, 256) == 256  # amazon small: the paper's 256 unchanged
    assert seq_batch_size(2048, 256) == 256
    assert seq_batch_size(749, 256) == 93  # goodbooks small: 3 steps at 256, 9 at 93
    assert seq_batch_size(486, 256) == 60
    assert seq_batch_size(100, 256) == 32  # never below 32
    assert seq_batch_size(486, 16) == 16  # an explicit smaller size is kept


def test_seq_record_notes_the_batch_size_it_trained_with(home):
    [outcome] = run(RunRequest(group="G", model="SASRec-3L", datasets=["synthetic"], size="tiny",
                               smoke=True, home=home, sets={"dim": 16, "latency_samples": 5}))
    folder = home / "datasets" / "synthetic" / "recbench-v1" / "tiny"
    n_train = pl.scan_parquet(folder / "seq" / "train.parquet").select(pl.len()).collect().item()
    expected = min(256, max(32, n_train // 8))
    assert any(note.startswith(f"batch size {expected} ") for note in outcome.record.notes)
