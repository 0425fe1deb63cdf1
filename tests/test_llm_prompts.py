"""The group-E CTR prompt: golden texts, chat templates, the last 20 items, truncation.

A word-level fake tokenizer makes token counts obvious (one word or newline = one token), so the
truncation rules are checked exactly; the real SmolLM2 tokenizer is covered in
tests/test_llm_scoring.py.
"""

from __future__ import annotations

import re

import polars as pl
import pytest

from recbench.core.errors import ConfigError
from recbench.models.llm.catalog import resolve
from recbench.models.llm.prompts import (
    SYSTEM_PROMPT,
    PromptBuilder,
    content_text,
    ctr_messages,
    halve,
    make_style,
    row_texts,
)

BOS = 1


class WordTokenizer:
    """Every word, newline or special marker is one token; BOS is added as a special token."""

    _TOKEN = re.compile(r"<\|[a-z_]+\|>|\n|[^\s]+")

    def __init__(self, chat_template: str | None = None):
        self.chat_template = chat_template
        self.vocab: dict[str, int] = {"<bos>": BOS}

    def _ids(self, text: str) -> list[int]:
        return [self.vocab.setdefault(t, len(self.vocab) + 1) for t in self._TOKEN.findall(text)]

    def __call__(self, text, add_special_tokens: bool = True):
        head = [BOS] if add_special_tokens else []
        if isinstance(text, list):
            return {"input_ids": [head + self._ids(t) for t in text]}
        return {"input_ids": head + self._ids(text)}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        out = "".join(f"<|start|>{m['role']}\n{m['content']}<|end|>\n" for m in messages)
        return out + ("<|start|>assistant\n" if add_generation_prompt else "")


def plain_builder(max_len: int = 1024, **kw) -> PromptBuilder:
    style = make_style(resolve("llama3-8b"), WordTokenizer(), system="SYS")
    return PromptBuilder(WordTokenizer(), style, max_len=max_len, **kw)


def test_plain_prompt_golden():
    b = plain_builder()
    p = b.build(["Pride and Prejudice", "The Hobbit"], "Dune")
    assert p.prefix == "SYS\n\nUser behavior sequence:\n(1) Pride and Prejudice\n(2) The Hobbit\n"
    assert p.suffix == "Candidate item: Dune\nAnswer (Yes/No): "
    assert p.text == ("SYS\n\nUser behavior sequence:\n(1) Pride and Prejudice\n(2) The Hobbit\n"
                      "Candidate item: Dune\nAnswer (Yes/No): ")
    assert p.prefix_ids[0] == BOS and BOS not in p.suffix_ids  # BOS once, at the start
    assert (p.shown, p.dropped, p.halved) == (2, 0, 0)


def test_chat_template_system_turn_and_user_turn():
    tok = WordTokenizer(chat_template="chatml-like")
    style = make_style(resolve("qwen2-0.5b"), tok, system="SYS")  # catalog: system turn
    assert style.chat and style.delivery == "system" and style.head_ids == ()
    p = PromptBuilder(tok, style).build(["A"], "B")
    assert p.text == ("<|start|>system\nSYS<|end|>\n<|start|>user\nUser behavior sequence:\n"
                      "(1) A\nCandidate item: B\nAnswer (Yes/No): <|end|>\n<|start|>assistant\n")
    assert p.suffix.startswith("Candidate item: B")
    # Mistral's template has no system turn: the instruction opens the user turn
    style = make_style(resolve("mistral-7b"), tok, system="SYS")
    assert style.delivery == "user"
    assert PromptBuilder(tok, style).build(["A"], "B").prefix == (
        "<|start|>user\nSYS\n\nUser behavior sequence:\n(1) A\n")
    # forced off, and forced on for a tokenizer without a template
    assert not make_style(resolve("qwen2-0.5b"), tok, "off").chat
    with pytest.raises(ConfigError, match="no chat template"):
        make_style(resolve("llama3-8b"), WordTokenizer(), "on")


def test_catalog_without_template_ignores_a_tokenizer_template():
    style = make_style(resolve("llama3-8b"), WordTokenizer(chat_template="x"))
    assert not style.chat and style.before == SYSTEM_PROMPT + "\n\n"


def test_last_20_items_numbered_from_1():
    b = plain_builder()
    history = [f"item{i}" for i in range(25)]
    p = b.build(history, "cand")
    assert "(1) item5\n" in p.prefix and "(20) item24\n" in p.prefix and "item4" not in p.prefix
    assert p.shown == 20 and b.stats.history_cut == 1


def test_empty_history_is_said():
    p = plain_builder().build([], "cand")
    assert p.prefix.endswith("User behavior sequence:\n(none)\n")


def test_truncation_drops_oldest_then_halves_longest():
    frame = plain_builder().build([], "c")
    # frame: BOS + SYS + 'User behavior sequence:' + '\n' + '(none)' '\n' | 'Candidate item: c'
    # '\n' 'Answer (Yes/No):' -> the history lines replace '(none)\n'
    n_frame = frame.n_tokens - 2  # without '(none)' and its newline
    one = len(["(1)", "w", "w", "w", "\n"])  # a history line of 3 words
    b = plain_builder(max_len=n_frame + 2 * one)
    p = b.build(["a a a", "b b b", "c c c"], "c")
    assert (p.shown, p.dropped, p.halved) == (2, 1, 0)
    assert "(1) b b b\n(2) c c c\n" in p.prefix and "a a a" not in p.prefix
    assert p.n_tokens <= b.max_len
    # one item left and still too long: the longest text (history or candidate) is halved
    b = plain_builder(max_len=n_frame + 5)
    p = b.build(["x y z w v u", "short"], "c")
    assert (p.dropped, p.halved) == (1, 0) and "(1) short\n" in p.prefix
    p = b.build(["x y z w v u"], "c")
    assert (p.dropped, p.halved) == (0, 1) and "(1) x y z\n" in p.prefix
    b = plain_builder(max_len=n_frame + 4)
    p = b.build(["h"], "one two three four five six seven eight")
    assert p.suffix.startswith("Candidate item: one two\n") and p.halved == 2
    assert b.stats.truncated == 1 and b.stats.texts_halved == 2


def test_budget_below_the_frame_is_an_error():
    with pytest.raises(ConfigError, match="max_len 5"):
        plain_builder(max_len=5)


def test_builds_are_deterministic_and_cached():
    b = plain_builder()
    first = b.build_many([["a", "b"], ["a", "b"]], ["x", "y"])
    again = plain_builder().build_many([["a", "b"], ["a", "b"]], ["x", "y"])
    assert first == again
    assert first[0].prefix_ids == first[1].prefix_ids  # one user's candidates share the prefix


def test_halve():
    assert halve("one two three") == "one two"
    assert halve("one two three four") == "one two"
    assert halve("abcdef") == "abc"
    assert halve("") == ""


def test_row_texts_and_api_messages():
    items = pl.DataFrame({"item_id": [1, 0, 2], "text": ["B", "A", "C"]})
    rows = pl.DataFrame({"user_id": [0, 1], "history": [[0, 1], []], "item_id": [2, 0]})
    histories, cands = row_texts(rows, ["A", "B", "C"])
    assert histories == [["A", "B"], []] and cands == ["C", "A"]
    msgs = ctr_messages(rows, items)
    assert msgs[0][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert msgs[0][1]["content"] == ("User behavior sequence:\n(1) A\n(2) B\nCandidate item: C\n"
                                     "Answer (Yes/No):")
    assert content_text([], "A").startswith("User behavior sequence:\n(none)\n")
