"""FE-SASRec: causality (and the non-causal parity switch), and every pipeline choice trains a
step and evaluates through the runner with records that name their artefacts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbench.items import IdTable
from recbench.models.registry import models_in_group
from recbench.models.seq.sasrec import SASRecEncoder
from recbench.runner import RunRequest, run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("causal", [True, False])
def test_perturbing_item_t_plus_1_leaves_causal_output_at_t_unchanged(causal):
    torch.manual_seed(0)
    items = IdTable(30, np.arange(30), 16)
    enc = SASRecEncoder(items, max_len=6, n_layers=2, heads=2, dropout=0.0,
                        causal=causal).eval()
    seq = torch.tensor([[0, 3, 7, 9, 11, 4]])
    other = seq.clone()
    other[0, 4] = 22  # item t+1 (t = position 3) changed
    a, b = enc.sequence(seq), enc.sequence(other)
    if causal:
        torch.testing.assert_close(a[:, :4], b[:, :4])
    else:
        assert not torch.allclose(a[:, 3], b[:, 3])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_fe_sasrec_is_registered_in_its_group():
    assert models_in_group("feature-extractor") == ["FE-SASRec"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("fe_home")


@pytest.mark.parametrize("sets", [
    {},  # the base configuration: SAC, frozen, mean, linear, replace
    {"adapter": "moe", "pca_dim": 16, "pooling": "eol"},
    {"adapter": "pq", "pq_codebooks": 4, "pq_codes": 8, "pooling": "max"},
    {"adapter": "mlp", "fusion": "concat", "pretrain_epochs": 1},
    {"adapter": "linear", "fusion": "align", "pretrain_epochs": 1, "non_causal": True},
    {"tuning": "scft", "tuning_steps": 1, "tuning_batch_size": 4, "pooling": "last"},
])
def test_every_pipeline_choice_trains_and_records_its_artifacts(home, sets):
    sets = {"dim": 16, "heads": 1, "latency_samples": 3, **sets}
    [outcome] = run(RunRequest(group="feature-extractor", model="FE-SASRec",
                               datasets=["synthetic"], size="tiny", smoke=True, home=home,
                               sets=sets))
    record = outcome.record
    assert 0.0 <= record.metrics["sampled100"]["ndcg@10"] <= 1.0
    notes = " ".join(record.notes)
    assert "item_vectors:" in notes and "minilm-l6" in notes
    if sets.get("fusion") in ("concat", "align"):
        assert "id_vectors:" in notes
    if "tuning" in sets:
        assert "lora:" in notes and "lora scft" in notes
    assert ("causal: False" in notes) == bool(sets.get("non_causal"))


def test_a_rerun_hits_every_cached_artifact(home):
    sets = {"dim": 16, "heads": 1, "latency_samples": 3, "fusion": "align",
            "pretrain_epochs": 1}
    req = RunRequest(group="feature-extractor", model="FE-SASRec", datasets=["synthetic"],
                     size="tiny", smoke=True, home=home, sets=sets, overwrite="always", seed=1)
    run(req)
    [again] = run(req)
    notes = " ".join(again.record.notes)
    assert "(miss)" not in notes and "misses 0" in notes
