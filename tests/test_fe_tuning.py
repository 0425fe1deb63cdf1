"""LLM tuning: LoRA adapters fitted on the training split, cached, merged when encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recbench.core.artifacts import ArtifactCache
from recbench.core.errors import ConfigError
from recbench.items.encoders.tuning import LoraSettings, TuningData, _view, tune

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["title: red lipstick; brand: A", "title: blue shampoo; brand: B",
         "title: nail polish; brand: C", "title: face cream; brand: D",
         "title: hair dryer; brand: E"]
ATTRS = [t.split("; ") for t in TEXTS]
DATA = TuningData(TEXTS, ATTRS, np.array([0, 1, 2, 3]), [[0, 1, 2], [1, 2, 3], [3, 0, 1]])
TINY = LoraSettings(steps=2, batch_size=2, max_length=16)


def test_scft_view_drops_the_floor_of_40_percent():
    rng = np.random.default_rng(0)
    attrs = ["a: 1", "b: 2", "c: 3", "d: 4", "e: 5"]
    view = _view(attrs, 0.4, rng).split("; ")
    assert len(view) == 3 and set(view) <= set(attrs)
    assert _view(["title: x"], 0.4, rng) == "title: x"


def test_scft_lora_is_cached_and_changes_the_vectors(tmp_path):
    from recbench.items.encoders.encode import encode_items

    cache = ArtifactCache(tmp_path)
    ref = tune("scft", "minilm-l6", DATA, cache, TINY)
    assert ref is not None and (ref.path / "adapter_config.json").is_file()
    meta = json.loads((ref.path / "meta.json").read_text())
    assert len(meta["losses"]) == 2 and meta["settings"]["r"] == 8
    again = tune("scft", "minilm-l6", DATA, cache, TINY)
    assert again.key == ref.key and cache.hits == 1
    # training data is part of the key: another training split is another adapter
    other = TuningData(TEXTS, ATTRS, np.array([0, 1, 2]), DATA.sequences)
    assert tune("scft", "minilm-l6", other, cache, TINY).key != ref.key
    frozen = encode_items(TEXTS, "minilm-l6", "mean", cache)
    tuned = encode_items(TEXTS, "minilm-l6", "mean", cache, lora=ref)
    assert tuned.provenance["lora"]["key"] == ref.key
    assert not np.allclose(frozen.vectors, tuned.vectors)
    assert tune("frozen", "minilm-l6", DATA, cache) is None


def test_cpt_needs_a_causal_lm(tmp_path):
    with pytest.raises(ConfigError, match="causal LM"):
        tune("cpt", "minilm-l6", DATA, ArtifactCache(tmp_path), TINY)
    with pytest.raises(ConfigError):
        tune("dpo", "minilm-l6", DATA, ArtifactCache(tmp_path), TINY)  # type: ignore[arg-type]


@pytest.mark.slow
def test_cpt_then_sft_on_smollm2_chains_two_adapters(tmp_path):
    from recbench.items.encoders.encode import encode_items

    cache = ArtifactCache(tmp_path)
    ref = tune("cpt+sft", "smollm2-135m", DATA, cache, TINY)
    assert ref.method == "sft" and ref.base is not None and ref.base.method == "cpt"
    assert [r.method for r in ref.chain()] == ["cpt", "sft"]
    out = encode_items(TEXTS, "smollm2-135m", "mean", cache, lora=ref)
    frozen = encode_items(TEXTS, "smollm2-135m", "mean", cache)
    assert out.vectors.shape == frozen.vectors.shape
    assert not np.allclose(out.vectors, frozen.vectors)
