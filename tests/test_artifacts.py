"""The artefact cache: hits, misses, invalidation by any input, damaged entries rebuilt."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from recbench.core.artifacts import ArtifactCache, ArtifactSpec, content_hash, texts_hash
from recbench.core.errors import ConfigError


def _spec(**over):
    base = dict(kind="item_vectors", version=1, inputs={"texts": texts_hash(["a", "b"])},
                model={"id": "m", "revision": "r1"}, settings={"pooling": "mean"})
    base.update(over)
    return ArtifactSpec(**base)


def test_miss_then_hit_counts_and_loads_the_same_array(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(2, 3)

    first = cache.array(_spec(), build)
    second = cache.array(_spec(), build)
    assert len(calls) == 1
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)
    entry = tmp_path / "item_vectors" / _spec().key
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == _spec().key and meta["kind"] == "item_vectors"
    assert meta["inputs"] == {"texts": texts_hash(["a", "b"])} and meta["payload"] == ["array.npy"]
    prov = cache.provenance()
    assert [u["hit"] for u in prov["artifacts"]] == [False, True]
    assert prov["hits"] == 1 and prov["misses"] == 1
    # a fresh cache object over the same root is a hit too (the disk is the cache)
    again = ArtifactCache(tmp_path)
    again.array(_spec(), build)
    assert again.hits == 1 and len(calls) == 1


@pytest.mark.parametrize("change", [
    {"inputs": {"texts": texts_hash(["a", "c"])}},
    {"model": {"id": "m", "revision": "r2"}},
    {"settings": {"pooling": "max"}},
    {"version": 2},
    {"kind": "item_text"},
])
def test_any_changed_input_misses(tmp_path, change):
    cache = ArtifactCache(tmp_path)
    cache.array(_spec(), lambda: np.zeros(2))
    cache.array(_spec(**change), lambda: np.ones(2))
    assert cache.misses == 2 and cache.hits == 0
    assert _spec(**change).key != _spec().key


@pytest.mark.parametrize("damage", ["meta", "payload", "truncate"])
def test_damaged_entry_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    cache = ArtifactCache(tmp_path)
    cache.array(_spec(), lambda: np.arange(4.0))
    entry = tmp_path / "item_vectors" / _spec().key
    if damage == "meta":
        (entry / "meta.json").write_text("{not json")
    elif damage == "payload":
        (entry / "array.npy").unlink()
    else:
        data = (entry / "array.npy").read_bytes()
        (entry / "array.npy").write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="recbench.core.artifacts"):
        out = cache.array(_spec(), lambda: np.arange(4.0) * 2)
    assert "damaged artifact" in caplog.text
    np.testing.assert_array_equal(out, np.arange(4.0) * 2)
    assert cache.rebuilt == 1 and cache.misses == 2
    assert ArtifactCache(tmp_path).array(_spec(), lambda: np.zeros(1)).tolist() == [0, 2, 4, 6]


def test_failed_build_leaves_no_entry(tmp_path):
    cache = ArtifactCache(tmp_path)

    def boom():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.array(_spec(), boom)
    assert not (tmp_path / "item_vectors" / _spec().key).exists()
    assert list((tmp_path / "item_vectors").iterdir()) == []  # no temp folder left


def test_json_arrays_and_folder_payloads(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert cache.json_value(_spec(kind="item_text"), lambda: ["x", "y"]) == ["x", "y"]
    got = cache.arrays(_spec(kind="adapter"), lambda: {"w": np.eye(2), "b": np.zeros(2)})
    np.testing.assert_array_equal(got["w"], np.eye(2))

    def write(folder):
        (folder / "adapter_config.json").write_text("{}")

    path = cache.folder(_spec(kind="lora"), write, required=("adapter_config.json",))
    assert (path / "adapter_config.json").is_file()
    (path / "adapter_config.json").unlink()
    path = cache.folder(_spec(kind="lora"), write, required=("adapter_config.json",))
    assert (path / "adapter_config.json").is_file() and cache.rebuilt == 1


def test_object_arrays_and_bad_kinds_are_refused(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(ConfigError):
        cache.array(_spec(), lambda: np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError):
        _spec(kind="../escape")


def test_content_hash_distinguishes_types_and_shapes():
    assert content_hash(np.zeros((2, 3))) != content_hash(np.zeros((3, 2)))
    assert content_hash(np.zeros(2, dtype=np.float32)) != content_hash(np.zeros(2))
    assert content_hash("1") != content_hash(1)
    assert texts_hash(["ab", "c"]) != texts_hash(["a", "bc"])
