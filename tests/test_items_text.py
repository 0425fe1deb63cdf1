"""Item text: SAC golden strings per source layout, and the cached LLM enhancements."""

from __future__ import annotations

import polars as pl
import pytest

from recbench.core.artifacts import ArtifactCache
from recbench.core.errors import ConfigError
from recbench.items.text import Decoding, attribute_columns, enhance_texts, sac_texts

# One fixture item per source, with the columns that source writes to items.parquet.
SOURCES = {
    "p5 (amazon-beauty)": (
        {"item_id": [0], "item_key": ["9759091062"], "text": ["Xtreme Brite Gel 1oz."],
         "p5_id": ["83"]},
        "title: Xtreme Brite Gel 1oz."),
    "amazon review layouts": (
        {"item_id": [0], "item_key": ["B00"], "text": ["Curling Iron;\n1-Inch"],
         "brand": ["Hot Tools"]},
        "title: Curling Iron, 1-Inch; brand: Hot Tools"),
    "steam": (
        {"item_id": [0], "item_key": ["10"], "text": ["Counter-Strike"], "genres": ["Action"],
         "tags": ["Classic|FPS|Multiplayer"], "categories": ["Action"]},
        "title: Counter-Strike; categories: Action; genres: Action; tags: Classic, FPS, "
        "Multiplayer"),
    "movielens": (
        {"item_id": [0], "item_key": ["1"], "text": ["Toy Story (1995)"],
         "genres": ["Adventure|Animation"]},
        "title: Toy Story (1995); genres: Adventure, Animation"),
    "mind": (
        {"item_id": [0], "item_key": ["N1"], "text": ["Stocks rise"], "category": ["finance"],
         "subcategory": ["markets"]},
        "title: Stocks rise; category: finance; subcategory: markets"),
    "goodbooks": (
        {"item_id": [0], "item_key": ["2"], "text": ["Harry Potter 1"],
         "authors": ["J.K. Rowling"], "original_title": ["Philosopher's Stone"],
         "year": ["1997"], "language_code": [None]},
        "title: Harry Potter 1; original_title: Philosopher's Stone; authors: J.K. Rowling; "
        "year: 1997"),
    "hm": (
        {"item_id": [0], "item_key": ["0108775015"], "text": ["Strap top"],
         "prod_name": ["Strap top"], "colour_group_name": ["Black"], "garment_group_name":
         ["Jersey Basic"], "product_type_name": ["Vest top"]},
        "title: Strap top; prod_name: Strap top; product_type_name: Vest top; "
        "colour_group_name: Black; garment_group_name: Jersey Basic"),
    "recbole (amazon-games)": (
        {"item_id": [0], "item_key": ["0"], "text": ["Fire Emblem: The Sacred Stones"]},
        "title: Fire Emblem: The Sacred Stones"),
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_sac_golden_string_per_source(source):
    columns, expected = SOURCES[source]
    assert sac_texts(pl.DataFrame(columns)) == [expected]


def test_sac_order_cuts_empty_and_unknown_columns():
    items = pl.DataFrame({"item_id": [1, 0], "zeta": ["z", None], "text": ["B" * 120, ""],
                          "alpha": ["a", "  "], "brand": ["x", None]})
    # unknown attributes after the known ones, alphabetically; values cut to 100 characters
    assert attribute_columns(items.columns) == ["title", "brand", "alpha", "zeta"]
    assert sac_texts(items) == ["", f"title: {'B' * 100}; brand: x; alpha: a; zeta: z"]
    assert sac_texts(items, max_value_chars=None)[1].startswith(f"title: {'B' * 120};")


class CountingGenerator:
    """A deterministic stand-in LLM: echoes the last word of the prompt's item line."""

    def __init__(self, tag="g1"):
        self.calls, self.tag = 0, tag
        self.prompts: list[str] = []

    def identity(self):
        return {"backend": "test", "model_id": self.tag}

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0):
        self.calls += 1
        self.prompts.extend(prompts)
        return [f"kw-{p.splitlines()[0].split()[-1]}-{seed}" for p in prompts]


def test_enhancements_are_cached_and_invalidated(tmp_path):
    cache = ArtifactCache(tmp_path)
    texts = ["title: red lipstick", "title: blue shampoo", ""]
    gen = CountingGenerator()
    out = enhance_texts(texts, "keyword", gen, cache, batch_size=2)
    assert out == ["kw-lipstick-0", "kw-shampoo-0", "kw-Item:-0"]
    assert gen.calls == 2 and gen.prompts[0].startswith("Item: title: red lipstick\n")
    assert enhance_texts(texts, "keyword", gen, cache) == out and gen.calls == 2
    assert cache.hits == 1 and cache.misses == 1
    # expansion appends to the SAC string
    expanded = enhance_texts(texts, "expansion", gen, cache)
    assert expanded[0] == "title: red lipstick; knowledge: kw-lipstick-0"
    # any input change misses: texts, decoding, the generator's weights
    enhance_texts(texts[:2], "keyword", gen, cache)
    enhance_texts(texts, "keyword", gen, cache, decoding=Decoding(temperature=0.7, seed=3))
    enhance_texts(texts, "keyword", CountingGenerator("g2"), cache)
    assert cache.misses == 5 and cache.hits == 1


def test_enhancement_errors():
    with pytest.raises(ConfigError):
        enhance_texts(["x"], "translate", CountingGenerator())  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Decoding(temperature=-1)


@pytest.mark.slow
def test_llamacpp_generation_is_greedy_and_cached(tmp_path):
    pytest.importorskip("llama_cpp")
    from recbench.items.text.enhance import LlamaCppGenerator
    from recbench.models.llm import catalog

    entry = catalog.resolve("smollm2-135m")
    gen = LlamaCppGenerator(entry.weights_dir() / entry.gguf_file, n_threads=1)
    texts = ["title: Maybelline Great Lash Mascara, Blackest Black"]
    a = enhance_texts(texts, "summary", gen, ArtifactCache(tmp_path / "a"))
    b = enhance_texts(texts, "summary", gen, ArtifactCache(tmp_path / "b"))
    assert a == b and a[0] and a[0] != texts[0]
