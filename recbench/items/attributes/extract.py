"""From an LLM to aspect scores: the rule-based parser (paper 003 §4.2.1) and the expected
extractor (beyond the paper).

**parsed** (the paper): the model generates its reply to the prompt and each aspect's score is
read with the rule `^<aspect>: (\\d+)$` (on the reply's lines with surrounding whitespace
stripped; the first matching line wins), clamped to 1-10. An aspect with no matching line is a
parse failure: counted (`ParseStats`) and filled with that aspect's mean over the replies where
it parsed (5.5, the scale's middle, when it parsed nowhere).

**expected**: the reply is teacher-forced in the required format, aspect by aspect over one
KV cache: the model reads `<aspect 1>: ` and the next-token distribution q over the digit
tokens "1".."9" is taken there; one probe token "1" is appended to read r = p("0" | ... "1"),
which splits q_1 into the ratings 1 (q_1 (1 - r)) and 10 (q_1 r), as "10" is the two tokens
"1" "0" for the tokenizers here. With p normalised over the ten ratings (mass Z = q_1 + ... +
q_9, recorded as the format's digit mass), the score is E = sum_k k p(k), in [1, 10]; it never
fails to parse and is differentiable in the logits. The most probable rating is then written
into the reply (the probe is kept when it starts that rating, else masked out of the cache) and
`\\n<aspect 2>: ` follows, and so on: one forward call per aspect for a whole batch of items.
Items of a batch share the system prompt's KV cache (computed once) and are ragged: each step
left-pads its new tokens, with the attention mask and explicit position ids making every row
exactly its own sequence. The argmax profile is returned as well (the teacher-forced reading
of the integer scores).
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recbench.core.errors import ConfigError

MIN_RATING, MAX_RATING = 1, 10
FALLBACK = (MIN_RATING + MAX_RATING) / 2


# -- parsed ------------------------------------------------------------------------------------

@dataclass
class ParseStats:
    """Parse outcomes of a set of replies."""

    replies: int = 0
    aspects: int = 0
    missing: int = 0  # aspect scores with no matching line (filled by the fallback)
    clamped: int = 0  # values outside 1-10, clamped
    unparsed_replies: int = 0  # replies where no aspect parsed at all

    @property
    def failure_rate(self) -> float:
        """Missing aspect scores / all aspect scores asked for."""
        total = self.replies * self.aspects
        return self.missing / total if total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"replies": self.replies, "aspects": self.aspects, "missing": self.missing,
                "clamped": self.clamped, "unparsed_replies": self.unparsed_replies,
                "failure_rate": self.failure_rate}


def _patterns(names: Sequence[str]) -> list[re.Pattern[str]]:
    return [re.compile(rf"^{re.escape(n)}: (\d+)$") for n in names]


def parse_reply(reply: str, names: Sequence[str], stats: ParseStats | None = None
                ) -> np.ndarray:
    """One reply's scores (len(names),) float64; NaN where an aspect did not parse."""
    lines = [line.strip() for line in reply.splitlines()]
    out = np.full(len(names), np.nan)
    for j, pattern in enumerate(_patterns(names)):
        for line in lines:
            match = pattern.match(line)
            if match:
                value = int(match.group(1))
                clamped = min(max(value, MIN_RATING), MAX_RATING)
                if stats is not None and clamped != value:
                    stats.clamped += 1
                out[j] = clamped
                break
    if stats is not None:
        stats.replies += 1
        stats.aspects = len(names)
        missing = int(np.isnan(out).sum())
        stats.missing += missing
        stats.unparsed_replies += int(missing == len(names))
    return out


def parse_replies(replies: Sequence[str], names: Sequence[str]
                  ) -> tuple[np.ndarray, ParseStats]:
    """Scores (n, g) of every reply with failures filled by the aspect's mean (see module)."""
    stats = ParseStats(aspects=len(names))
    scores = np.stack([parse_reply(r, names, stats) for r in replies]) if replies else \
        np.zeros((0, len(names)))
    for j in range(scores.shape[1]):
        col = scores[:, j]
        ok = ~np.isnan(col)
        col[~ok] = col[ok].mean() if ok.any() else FALLBACK
    return scores, stats


# -- expected ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RatingTokens:
    """The token ids the expected extractor reads: the digits "1".."9" and "0"."""

    digits: tuple[int, ...]  # ids of "1", ..., "9"
    zero: int

    def __post_init__(self) -> None:
        if len(self.digits) != 9:
            raise ConfigError("RatingTokens: expected the 9 ids of the digits 1-9")

    def rating_ids(self, k: int) -> list[int]:
        return [self.digits[0], self.zero] if k == 10 else [self.digits[k - 1]]


def rating_tokens(tokenizer) -> RatingTokens:
    """The digit ids of a tokenizer that writes every digit as its own token.

    Raises:
        ConfigError: "1".."9", "0" are not single tokens, or "10" is not "1" "0".
    """
    ids = []
    for d in "1234567890":
        got = tokenizer(d, add_special_tokens=False)["input_ids"]
        if len(got) != 1:
            raise ConfigError(f"expected extractor: the tokenizer writes {d!r} as {len(got)} "
                              "tokens; it needs one token per digit")
        ids.append(got[0])
    if tokenizer("10", add_special_tokens=False)["input_ids"] != [ids[0], ids[9]]:
        raise ConfigError("expected extractor: the tokenizer does not write '10' as '1' '0'")
    return RatingTokens(tuple(ids[:9]), ids[9])


@dataclass
class ExpectedResult:
    """Expected scores (n, g), the argmax ratings (n, g) and the digit mass Z (n, g)."""

    expected: np.ndarray
    argmax: np.ndarray
    digit_mass: np.ndarray
    tokens_run: int = 0
    forward_calls: int = 0
    notes: list[str] = field(default_factory=list)


def rating_distribution(q: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p over the ratings 1..10 (..., 10) from the digit probabilities q (..., 9) of "1".."9"
    and r (...,) = p("0" | "1"); and Z (...,) = sum(q)."""
    z = q.sum(-1)
    p = np.concatenate([(q[..., :1] * (1 - r[..., None])), q[..., 1:],
                        (q[..., :1] * r[..., None])], axis=-1)  # ratings 1, 2..9, 10
    return p / np.maximum(z, 1e-30)[..., None], z


RATINGS = np.arange(MIN_RATING, MAX_RATING + 1, dtype=np.float64)


def expected_from_ids(model, shared_ids: Sequence[int], rows: Sequence[Sequence[int]],
                      pieces: Sequence[Sequence[int]], rating: RatingTokens,
                      batch_size: int = 16, pad_id: int = 0) -> ExpectedResult:
    """The expected extractor over token ids (see the module docstring).

    Args:
        model: a causal LM (transformers; `model(input_ids, attention_mask, position_ids,
            past_key_values, use_cache)` returning `.logits` and `.past_key_values`).
        shared_ids: the prompt start every row shares (chat template + system prompt).
        rows: each row's own prompt tokens (its user message + the assistant header).
        pieces: per aspect, the tokens written before its rating (`<aspect 1>: `, then
            `\\n<aspect j>: `).
        rating: the digit token ids.
        batch_size: rows per batch.
        pad_id: the id placed in padding columns (masked; never read).
    """
    import torch
    from transformers import DynamicCache

    cache_arg = _cache_argument(model)
    n, g = len(rows), len(pieces)
    expected, argmax, mass = np.zeros((n, g)), np.zeros((n, g), np.int64), np.zeros((n, g))
    device = next(model.parameters()).device
    digits = torch.tensor(rating.digits, device=device)
    result = ExpectedResult(expected, argmax, mass)
    with torch.inference_mode():
        shared = torch.tensor([list(shared_ids)], device=device)
        base = model(input_ids=shared, use_cache=True, **{cache_arg: DynamicCache()})
        result.tokens_run += len(shared_ids)
        result.forward_calls += 1
        for start in range(0, n, batch_size):
            idx = list(range(start, min(start + batch_size, n)))
            b = len(idx)
            cache = copy.deepcopy(_cache_of(base))
            cache.batch_repeat_interleave(b)
            mask = torch.ones(b, len(shared_ids), dtype=torch.long, device=device)
            pos = torch.full((b,), len(shared_ids), dtype=torch.long, device=device)
            pending = [list(rows[i]) for i in idx]  # tokens each row reads next
            for j in range(g):
                chunk = [p + list(pieces[j]) + [rating.digits[0]] for p in pending]  # + probe
                width = max(len(c) for c in chunk)
                ids = torch.full((b, width), pad_id, dtype=torch.long, device=device)
                new = torch.zeros(b, width, dtype=torch.long, device=device)
                for r, c in enumerate(chunk):
                    ids[r, width - len(c):] = torch.tensor(c, device=device)
                    new[r, width - len(c):] = 1
                positions = pos[:, None] + new.cumsum(1) - 1  # pads: a position never read
                positions = positions.clamp(min=0)
                mask = torch.cat([mask, new], dim=1)
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            use_cache=True, **{cache_arg: cache})
                cache = _cache_of(out)
                result.tokens_run += int(new.sum())
                result.forward_calls += 1
                logits = out.logits[:, -2:].float()  # rating position, probe position
                probs = torch.softmax(logits, dim=-1)
                q = probs[:, 0, digits].double().cpu().numpy()  # (b, 9)
                r_zero = probs[:, 1, rating.zero].double().cpu().numpy()  # (b,)
                p, z = rating_distribution(q, r_zero)
                expected[idx, j] = p @ RATINGS
                best = p.argmax(-1) + 1
                argmax[idx, j] = best
                mass[idx, j] = z
                pos = pos + new.sum(1)
                pending = []
                for r in range(b):
                    k = int(best[r])
                    if k == 1:
                        pending.append([])  # the probe "1" is this row's rating
                    elif k == 10:
                        pending.append([rating.zero])  # "1" (the probe) then "0"
                    else:  # the probe is not part of the reply: masked out of the cache
                        mask[r, -1] = 0
                        pos[r] -= 1
                        pending.append(list(rating.rating_ids(k)))
                    if j + 1 == g:
                        pending[-1] = []
    return result


def _cache_argument(model) -> str:
    """transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` before)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else \
        "past_key_values"


def _cache_of(out):
    for name in ("cache", "past_key_values"):
        if name in out and out[name] is not None:
            return out[name]
    raise RuntimeError("the language model returned no KV cache")
