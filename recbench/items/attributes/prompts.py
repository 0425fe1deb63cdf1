"""The item and user prompts of guided embeddings (paper 003, Appendix C, Tables 9-10).

The templates are the paper's, word for word, with "movie" replaced by the table's noun (the
paper prints the movie templates only). The seed text lost its line breaks; recbench puts one
aspect per line, which is what the templates' "..." between repeated lines says:

    system (item)  You are a movie critic. You have been asked to review a movie. You should rate
                   the movie on a scale of 1 to 10 (1 is the most negative and 10 is the most
                   positive) on the following dimensions:
                   <aspect>: <description>            (one line per aspect)
                   Your response should be in the following format, where <rating> is a number
                   between 1 and 10:
                   <aspect>: <rating>                 (one line per aspect)
                   Do NOT include any other information in your response.
    user (item)    Here is some information about a movie: <item prompt>
    system (user)  You are a movie recommender. You will be given some previous movie reviews of
                   a user. You have been asked to recommend a movie to the user. You should rate
                   the movie which you think the user will like on a scale of 1 to 10 (1 is the
                   least likely and 10 is the most likely) on the following dimensions: ...
                   (then the same aspect and format lines)
    user (user)    Here are some previous movie reviews of the user: review 1: <review prompt>
                   review 2: ...

The *item prompt* lists the item's attributes as `field: value` lines, the title first (the
paper's example: title, description, rating, categories, details); recbench shows the item's
`text` as `title` and every other column of items.parquet (but the ids) under its own name.
The *review prompt* of the paper is `rating: ... reviewTime: ... summary: ... reviewText: ...
product: <item prompt>`; recbench's prepared sequences keep no rating, time or review text, so a
review is `product: <item prompt>` on one line. The newest `max_reviews` items of the user's
training sequence are shown, oldest first (the paper does not say how many).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recbench.items.attributes.aspects import AspectTable

PROMPT_VERSION = 1  # part of every score cache key: bump when a template changes
MAX_FIELD_WORDS = 64  # a long description is cut to this many words (bounds the prompt)
ITEM_SKIP_COLUMNS = ("item_id", "item_key", "text")


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _aspect_lines(table: AspectTable) -> tuple[str, str]:
    dims = "\n".join(f"{a.name}: {a.description}" for a in table.aspects)
    fmt = "\n".join(f"{a.name}: <rating>" for a in table.aspects)
    return dims, fmt


def item_system_prompt(table: AspectTable) -> str:
    """Table 9, system prompt: the critic instruction, the aspects, the required format."""
    noun, a = table.noun, _article(table.noun)
    dims, fmt = _aspect_lines(table)
    return (f"You are {a} {noun} critic. You have been asked to review {a} {noun}. You should "
            f"rate the {noun} on a scale of 1 to 10 (1 is the most negative and 10 is the most "
            f"positive) on the following dimensions:\n{dims}\nYour response should be in the "
            f"following format, where <rating> is a number between 1 and 10:\n{fmt}\nDo NOT "
            "include any other information in your response.")


def user_system_prompt(table: AspectTable) -> str:
    """Table 10, system prompt: the recommender instruction, the aspects, the format."""
    noun, a = table.noun, _article(table.noun)
    dims, fmt = _aspect_lines(table)
    return (f"You are {a} {noun} recommender. You will be given some previous {noun} reviews "
            f"of a user. You have been asked to recommend {a} {noun} to the user. You should "
            f"rate the {noun} which you think the user will like on a scale of 1 to 10 (1 is "
            f"the least likely and 10 is the most likely) on the following dimensions:\n{dims}"
            "\nYour response should be in the following format, where <rating> is a number "
            f"between 1 and 10:\n{fmt}\nDo NOT include any other information in your response.")


def _cut(value: Any) -> str:
    words = " ".join(str(value).split()).split(" ")
    return " ".join(words[:MAX_FIELD_WORDS])


def item_prompt(row: Mapping[str, Any]) -> str:
    """An item's attributes as `field: value` lines: `title` (the item's text) first, then the
    other columns in their order; empty values are left out."""
    lines = [f"title: {_cut(row.get('text', ''))}"]
    for key, value in row.items():
        if key in ITEM_SKIP_COLUMNS or value is None or str(value).strip() == "":
            continue
        lines.append(f"{key}: {_cut(value)}")
    return "\n".join(lines)


def item_message(table: AspectTable, prompt: str) -> str:
    """Table 9, user prompt."""
    return f"Here is some information about {_article(table.noun)} {table.noun}: {prompt}"


def review_prompt(prompt: str) -> str:
    """One review of the user prompt: the product's item prompt on one line."""
    return "product: " + " ".join(prompt.splitlines())


def user_message(table: AspectTable, item_prompts: Sequence[str]) -> str:
    """Table 10, user prompt: the user's items as numbered reviews, oldest first."""
    reviews = "\n".join(f"review {i}: {review_prompt(p)}" for i, p in enumerate(item_prompts, 1))
    return f"Here are some previous {table.noun} reviews of the user:\n{reviews}"
