"""Simple attribute concatenation (SAC, paper 000 §3.1.1): every available attribute of an item
as "name: value", joined by "; ", in one fixed order.

What each source writes to `items.parquet` (besides `item_id` and `item_key`), hence what SAC
reads: every source has `text` (the title, named "title" here); amazon review layouts add
`brand`; steam adds `genres`, `tags` and `categories`; movielens `genres`; mind `category` and
`subcategory`; goodbooks `authors`, `original_title`, `year`, `language_code`; hm the article
columns (`prod_name`, `product_type_name`, ...). The P5 layout (the papers' Beauty) and RecBole
layout (amazon-games here) carry the title only, so their SAC string is "title: <title>".

The order: `title` first, then the names of `ATTRIBUTE_ORDER` present, then any other column
alphabetically; identifier columns (`item_id`, `item_key`, `p5_id`, and any `*_id` column) are
not attributes. Lists (`a|b|c`, the sources' multi-value form) are written "a, b, c". A null or
empty value is left out; each value is cut to `max_value_chars` characters (LLMEmb's template
cuts at 100), line breaks become spaces and ";" becomes "," so the separator stays unambiguous.
An item with no attribute at all gets "" (the encoders give it a row all the same).
"""

from __future__ import annotations

import polars as pl

ATTRIBUTE_ORDER: tuple[str, ...] = (
    "title", "original_title", "brand", "authors", "year", "language_code", "categories",
    "category", "subcategory", "genres", "tags", "prod_name", "product_type_name",
    "product_group_name", "colour_group_name", "department_name", "index_name",
    "index_group_name", "section_name", "garment_group_name", "description")
IDENTIFIERS = frozenset({"item_id", "item_key", "p5_id"})
LIST_SEPARATOR = "|"
MAX_VALUE_CHARS = 100


def attribute_columns(columns: list[str]) -> list[str]:
    """The attribute columns of an items table in SAC order (`text` as `title`)."""
    names = ["title" if c == "text" else c for c in columns
             if c not in IDENTIFIERS and not c.endswith("_id")]
    known = [n for n in ATTRIBUTE_ORDER if n in names]
    return known + sorted(n for n in names if n not in ATTRIBUTE_ORDER)


def _clean(value: object, max_chars: int | None) -> str:
    text = str(value).replace("\r", " ").replace("\n", " ").replace(";", ",").strip()
    if LIST_SEPARATOR in text:
        text = ", ".join(p.strip() for p in text.split(LIST_SEPARATOR) if p.strip())
    text = " ".join(text.split())
    return text if max_chars is None else text[:max_chars].rstrip()


def sac_text(attributes: dict[str, object], max_value_chars: int | None = MAX_VALUE_CHARS
             ) -> str:
    """One item's SAC string from {attribute name: value} (names as `attribute_columns`)."""
    parts = []
    for name in attribute_columns(list(attributes)):
        value = attributes[name]
        if value is None:
            continue
        text = _clean(value, max_value_chars)
        if text:
            parts.append(f"{name}: {text}")
    return "; ".join(parts)


def sac_texts(items: pl.DataFrame, max_value_chars: int | None = MAX_VALUE_CHARS) -> list[str]:
    """SAC strings of every item in `item_id` order (dense 0..n-1 expected)."""
    items = items.sort("item_id") if "item_id" in items.columns else items
    renamed = items.rename({"text": "title"}) if "text" in items.columns else items
    cols = attribute_columns(renamed.columns)
    return [sac_text(row, max_value_chars) for row in renamed.select(cols).iter_rows(named=True)]
