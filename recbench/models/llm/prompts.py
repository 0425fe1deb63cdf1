"""The RecBench CTR prompt (group E): a user's behaviour sequence, a candidate, "Yes or No?".

    <system prompt, delivered as the catalog says (system turn, inside the user turn, or text)>
    User behavior sequence:
    (1) <oldest shown item text>
    ...
    (k) <newest item text>
    Candidate item: <candidate text>
    Answer (Yes/No): <the model's first answer token is read here>

At most the last 20 history items are shown. A prompt is returned as a shared *prefix* (template
start, system prompt, history) and a per-candidate *suffix* (candidate, answer cue, template
end), each tokenised on its own, so that all candidates of one user can reuse one prefix pass
(`recbench.models.llm.scoring`). Scores never depend on whether the prefix is shared: shared and
unshared scoring see the very same token ids.

Truncation to `max_len` tokens: drop the oldest history item while more than one is shown, then
halve (by words, else by characters) the longest remaining text (history or candidate) until the
prompt fits. Everything here is deterministic; nothing imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from recbench.core.errors import ConfigError
from recbench.models.llm.catalog import LLMEntry

SYSTEM_PROMPT = ("You are a recommender system. Given a user's behavior sequence and a candidate "
                 "item, answer whether the user will be interested in the candidate item with "
                 "Yes or No.")
HISTORY_HEADER = "User behavior sequence:\n"
EMPTY_HISTORY = "(none)\n"
CANDIDATE_LEAD = "Candidate item: "
ANSWER_CUE = "\nAnswer (Yes/No): "
MAX_HISTORY = 20
TEMPLATE = (f"{HISTORY_HEADER}(1) <item text>\n(2) ...\n{CANDIDATE_LEAD}<text>{ANSWER_CUE}")
_SENTINEL = "\u0000RECBENCH-CONTENT\u0000"

ChatSetting = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class PromptStyle:
    """How one backbone is prompted: the text around the content and the special tokens.

    Attributes:
        system: the system instruction.
        delivery: "system" (a system turn), "user" (before the content, in the user turn) or
            "none" (plain text before the content: no chat template).
        chat: whether the checkpoint's chat template frames the prompt.
        before: template text before the content (holds the system prompt).
        after: template text after the content (e.g. the assistant turn header).
        head_ids: special tokens put before the prompt (BOS) when no chat template is used.
        tail_ids: special tokens after the prompt (encoders only, e.g. [SEP]).
        strip_trailing_space: the suffix's trailing whitespace (the answer cue's space) is left
            out of the prompt and carried by the answer token (" Yes"), as the tokenizer would
            merge it there (see `scoring.choose_answer_tokens`).
    """

    system: str
    delivery: Literal["system", "user", "none"]
    chat: bool
    before: str
    after: str
    head_ids: tuple[int, ...] = ()
    tail_ids: tuple[int, ...] = ()
    strip_trailing_space: bool = False

    def describe(self) -> str:
        how = {"system": "a system turn", "user": "the user turn, before the content",
               "none": "plain text before the content"}[self.delivery]
        chat = "chat template applied" if self.chat else "no chat template"
        cue = "; the prompt's trailing space is carried by the answer token" \
            if self.strip_trailing_space else ""
        return f"{chat}; system prompt in {how}{cue}"


def make_style(entry: LLMEntry, tokenizer: Any, chat_template: ChatSetting = "auto",
               system: str = SYSTEM_PROMPT, encoder: bool = False) -> PromptStyle:
    """The prompt style of a backbone: chat template or not, where the system prompt goes.

    Args:
        entry: the catalog entry (its `chat_template` and `system_prompt` decide "auto").
        tokenizer: the backbone's tokenizer.
        chat_template: "auto" follows the catalog; "on"/"off" force it.
        system: the system instruction.
        encoder: an encoder backbone (its tokenizer's [CLS]/[SEP] frame the whole prompt).
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat_template == "on" and not has_template:
        raise ConfigError(f"chat_template=on: the tokenizer of {entry.alias!r} has no chat "
                          "template")
    use_chat = has_template and not encoder and (
        chat_template == "on" or (chat_template == "auto" and entry.chat_template))
    head, tail = special_frame(tokenizer)
    if not use_chat:
        return PromptStyle(system, "none", False, f"{system}\n\n", "", tuple(head),
                           tuple(tail) if encoder else ())
    delivery = "user" if entry.system_prompt != "system" else "system"
    if delivery == "system":
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": _SENTINEL}]
    else:
        messages = [{"role": "user", "content": f"{system}\n\n{_SENTINEL}"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(rendered, str) or rendered.count(_SENTINEL) != 1:
        raise ConfigError(f"the chat template of {entry.alias!r} did not render the prompt "
                          "once; pass --set chat_template=off")
    before, after = rendered.split(_SENTINEL)
    return PromptStyle(system, delivery, True, before, after)


def special_frame(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special token ids a tokenizer adds before and after a text (e.g. BOS; [CLS], [SEP])."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start]), list(full[start + len(plain):])
    return [], []


@dataclass(frozen=True)
class CTRPrompt:
    """One (user history, candidate) prompt, split for prefix sharing.

    Attributes:
        prefix / suffix: the texts (prefix = template start + system + history).
        prefix_ids / suffix_ids: their token ids (special tokens included); the model reads
            prefix_ids + suffix_ids and the answer is read after the last suffix token.
        shown: history items shown; dropped: older items left out to fit `max_len`;
            halved: how many times a text was halved to fit.
    """

    prefix: str
    suffix: str
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    shown: int
    dropped: int = 0
    halved: int = 0

    @property
    def text(self) -> str:
        return self.prefix + self.suffix

    @property
    def n_tokens(self) -> int:
        return len(self.prefix_ids) + len(self.suffix_ids)


@dataclass
class TruncationStats:
    max_history: int = MAX_HISTORY
    prompts: int = 0
    truncated: int = 0
    items_dropped: int = 0
    texts_halved: int = 0
    history_cut: int = 0
    max_tokens: int = 0
    total_tokens: int = 0

    def describe(self) -> str:
        mean = self.total_tokens / self.prompts if self.prompts else 0.0
        return (f"{self.prompts} prompts, mean {mean:.0f} / max {self.max_tokens} tokens; "
                f"{self.history_cut} histories cut to the last {self.max_history} items; "
                f"{self.truncated} truncated to the token budget ({self.items_dropped} oldest "
                f"items dropped, {self.texts_halved} texts halved)")


@dataclass
class PromptBuilder:
    """Builds `CTRPrompt`s for one backbone (one tokenizer and style) under a token budget.

    Args:
        tokenizer: the backbone's tokenizer.
        style: from `make_style`.
        max_len: the token budget of a whole prompt (prefix + suffix).
        max_history: how many of the newest history items are shown at most.
    """

    tokenizer: Any
    style: PromptStyle
    max_len: int = 1024
    max_history: int = MAX_HISTORY
    stats: TruncationStats = field(default_factory=TruncationStats)

    def __post_init__(self) -> None:
        self.stats = TruncationStats(self.max_history)
        frame = len(self._prefix_ids([()])[0]) + len(self._suffix_ids([""])[0])
        if frame > self.max_len:
            raise ConfigError(f"max_len {self.max_len}: the prompt frame alone (system prompt, "
                              f"template) takes {frame} tokens")

    # -- texts ---------------------------------------------------------------------------------
    def prefix_text(self, history: Sequence[str]) -> str:
        lines = "".join(f"({i}) {t}\n" for i, t in enumerate(history, 1)) or EMPTY_HISTORY
        return f"{self.style.before}{HISTORY_HEADER}{lines}"

    def suffix_text(self, candidate: str) -> str:
        text = f"{CANDIDATE_LEAD}{candidate}{ANSWER_CUE}{self.style.after}"
        return text.rstrip() if self.style.strip_trailing_space else text

    # -- tokens --------------------------------------------------------------------------------
    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _prefix_ids(self, histories: list[tuple[str, ...]]) -> list[tuple[int, ...]]:
        distinct = sorted(set(histories))
        head = self.style.head_ids
        ids = dict(zip(distinct, self._encode([self.prefix_text(h) for h in distinct]),
                       strict=True))
        return [(*head, *ids[h]) for h in histories]

    def _suffix_ids(self, candidates: list[str]) -> list[tuple[int, ...]]:
        distinct = sorted(set(candidates))
        tail = self.style.tail_ids
        ids = dict(zip(distinct, self._encode([self.suffix_text(c) for c in distinct]),
                       strict=True))
        return [(*ids[c], *tail) for c in candidates]

    def build(self, history: Sequence[str], candidate: str) -> CTRPrompt:
        """One prompt (history oldest first, texts); see `build_many`."""
        return self.build_many([history], [candidate])[0]

    def build_many(self, histories: Sequence[Sequence[str]], candidates: Sequence[str]
                   ) -> list[CTRPrompt]:
        """Prompts for parallel lists of histories (texts, oldest first) and candidate texts.

        Distinct histories and candidates of one call are tokenised once, in one batch each
        (nothing is remembered between calls: a timed single row pays its own tokenisation);
        only prompts over the budget go through the (rare) truncation loop.
        """
        if len(histories) != len(candidates):
            raise ValueError("histories and candidates differ in length")
        cut = [tuple(h[-self.max_history:]) for h in histories]
        cands = [c or "" for c in candidates]
        pre, suf = self._prefix_ids(cut), self._suffix_ids(cands)
        out = []
        for h, c, p, s, full in zip(cut, cands, pre, suf, histories, strict=True):
            if len(p) + len(s) <= self.max_len:
                prompt = CTRPrompt(self.prefix_text(h), self.suffix_text(c), p, s, len(h))
            else:
                prompt = self._truncate(list(h), c)
            self._count(prompt, len(full) > self.max_history)
            out.append(prompt)
        return out

    def _truncate(self, history: list[str], candidate: str) -> CTRPrompt:
        dropped = halved = 0
        while True:
            p = (*self.style.head_ids, *self._encode([self.prefix_text(history)])[0])
            s = (*self._encode([self.suffix_text(candidate)])[0], *self.style.tail_ids)
            if len(p) + len(s) <= self.max_len:
                return CTRPrompt(self.prefix_text(history), self.suffix_text(candidate), p, s,
                                 len(history), dropped, halved)
            if len(history) > 1:
                history.pop(0)  # the oldest first
                dropped += 1
                continue
            texts = [*history, candidate]
            sizes = [len(ids) for ids in self._encode(texts)]
            longest = max(range(len(texts)), key=lambda i: (sizes[i], -i))
            shorter = halve(texts[longest])
            if shorter == texts[longest]:
                raise ConfigError(f"max_len {self.max_len}: a prompt does not fit even with "
                                  "its texts cut to nothing; raise max_len")
            if longest == len(history):
                candidate = shorter
            else:
                history[longest] = shorter
            halved += 1

    def _count(self, prompt: CTRPrompt, cut_to_max: bool) -> None:
        st = self.stats
        st.prompts += 1
        st.total_tokens += prompt.n_tokens
        st.max_tokens = max(st.max_tokens, prompt.n_tokens)
        st.history_cut += int(cut_to_max)
        if prompt.dropped or prompt.halved:
            st.truncated += 1
            st.items_dropped += prompt.dropped
            st.texts_halved += prompt.halved


def halve(text: str) -> str:
    """The first half of `text`: by words (rounded up), or by characters for a single word."""
    words = text.split()
    if len(words) > 1:
        return " ".join(words[: (len(words) + 1) // 2])
    return text[: len(text) // 2]


def content_text(history: Sequence[str], candidate: str) -> str:
    """The prompt's content without any template or system prompt (what a chat turn holds)."""
    lines = "".join(f"({i}) {t}\n" for i, t in enumerate(history, 1)) or EMPTY_HISTORY
    return f"{HISTORY_HEADER}{lines}{CANDIDATE_LEAD}{candidate}{ANSWER_CUE}"


def row_texts(rows: Any, texts: Sequence[str]) -> tuple[list[list[str]], list[str]]:
    """(history texts oldest first, candidate texts) of CTR rows (user_id, history, item_id).

    Args:
        rows: a polars DataFrame of CTR rows.
        texts: item text by item id.
    """
    histories = [[texts[i] or "" for i in (h or [])] for h in rows["history"].to_list()]
    return histories, [texts[i] or "" for i in rows["item_id"].to_list()]


def item_texts(items: Any) -> list[str]:
    """Item text by item id (the prepared `items` table: dense ids 0..n-1)."""
    ordered = items.sort("item_id")
    ids = ordered["item_id"].to_list()
    if ids != list(range(len(ids))):
        raise ValueError("items.item_id is not the dense range 0..n-1")
    return [t or "" for t in ordered["text"].to_list()]


def ctr_messages(rows: Any, items: Any, max_history: int = MAX_HISTORY,
                 system: str = SYSTEM_PROMPT) -> list[list[dict[str, str]]]:
    """Chat messages (system turn + user turn) of CTR rows, for API backends.

    The user turn is the same content as the local prompt (last `max_history` items), without
    the answer cue's trailing space (meaningless at the end of a chat turn). No token budget is
    applied: an API model's tokenizer is not known here.
    """
    histories, candidates = row_texts(rows, item_texts(items))
    return [[{"role": "system", "content": system},
             {"role": "user", "content": content_text(h[-max_history:], c).rstrip()}]
            for h, c in zip(histories, candidates, strict=True)]
