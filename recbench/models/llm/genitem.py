"""LLMSeqPrompt GenItem (paper 002 §4.1): one generated item name per call, k calls per prompt.

Templates are the authors' (dh-r/LLM-Sequential-Recommendation, `prompt_model/genitem`
notebooks; ../shared/notes/suites-anchors.md §1.6), verbatim:

- system: `SYSTEM_PROMPT`; user: "The user's item list:\\n" + the prompt's item names, one per
  line; assistant (training completion): the last item's name;
- a training pair is a session's names but the last -> the last name (`training_pair`).

At prediction the prompt is sampled `samples` times (k = 20, the paper; the committed notebook
sends one request, see §1.6), each answer cleaned (first line, a trailing "###" cut), the
answers deduplicated and ranked by frequency (ties: first appearance). Each distinct answer is
mapped to a catalogue item: an exact name match (after stripping and case-folding) unless that
item is a prompt item or already recommended, otherwise the nearest catalogue item by the
embedding dot product (unit vectors, so the cosine) with those items excluded (the authors'
hallucination rule, which also replaces duplicates). `GenItemStats` counts what Table 7
reports: the hallucination rate (answers without an exact match), unique recommendations and the
mean similarity of the nearest matches.

Any object with `generate(prompts, max_new_tokens, temperature, seed) -> list[str]` generates
(the `recbench.llm.backends` protocol: llama.cpp GGUF, transformers + LoRA, ...). Wiring a LoRA
fine-tune of SmolLM2 into a registered model is not done yet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SYSTEM_PROMPT = ("Provide a unique item recommendation that is complementary to the user's item "
                 "list. Ensure the recommendation is from items included in the data you are "
                 "fine-tuned with. List only the item name.")
USER_TEMPLATE = "The user's item list:\n{items}"


class Generator(Protocol):
    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[str]: ...


def messages(names: Sequence[str]) -> list[dict[str, str]]:
    """The chat prompt of a session's item names (oldest first)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(items="\n".join(names))}]


def training_pair(names: Sequence[str]) -> tuple[list[dict[str, str]], str]:
    """(prompt messages of all names but the last, completion = the last name)."""
    if len(names) < 2:
        raise ValueError("a GenItem training pair needs a session of at least 2 named items")
    return messages(names[:-1]), names[-1]


def clean(answer: str) -> str:
    """The generated name: its first non-empty line, without the legacy '###' stop marker."""
    lines = [ln.strip() for ln in answer.replace("###", "\n").splitlines() if ln.strip()]
    return lines[0] if lines else ""


def rank_by_frequency(answers: Sequence[str]) -> list[tuple[str, int]]:
    """Distinct non-empty answers by count, ties by first appearance."""
    counts = Counter(a for a in answers if a)
    first = {}
    for i, a in enumerate(answers):
        first.setdefault(a, i)
    return sorted(counts.items(), key=lambda kv: (-kv[1], first[kv[0]]))


@dataclass
class GenItemStats:
    answers: int = 0
    hallucinated: int = 0  # distinct answers without an exact catalogue name
    distinct: int = 0
    similarity_sum: float = 0.0  # of the nearest-match mappings
    recommended: set[int] = field(default_factory=set)

    @property
    def hallucination_rate(self) -> float:
        return self.hallucinated / self.distinct if self.distinct else 0.0

    @property
    def mean_match_similarity(self) -> float | None:
        return self.similarity_sum / self.hallucinated if self.hallucinated else None

    def notes(self) -> list[str]:
        sim = self.mean_match_similarity
        return [f"GenItem: {self.answers} answers, {self.distinct} distinct per-prompt names, "
                f"hallucination rate {self.hallucination_rate:.3f}, "
                f"{len(self.recommended)} unique recommendations, mean nearest-match "
                f"similarity {'n/a' if sim is None else f'{sim:.4f}'}"]


class CatalogueMapper:
    """Generated names -> item ids: exact name, else the nearest item vector (exclusions kept)."""

    def __init__(self, names: Sequence[str], vectors: np.ndarray,
                 embed: Callable[[list[str]], np.ndarray]):
        self.by_name: dict[str, int] = {}
        for i, n in enumerate(names):
            self.by_name.setdefault(n.strip().casefold(), i)
        v = np.asarray(vectors, dtype=np.float64)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.embed = embed

    def map(self, name: str, exclude: set[int], stats: GenItemStats) -> int | None:
        """The item for `name`, never one in `exclude`; None when every item is excluded."""
        stats.distinct += 1
        exact = self.by_name.get(name.strip().casefold())
        if exact is not None and exact not in exclude:
            return exact
        if exact is None:
            stats.hallucinated += 1
            q = np.asarray(self.embed([name]), dtype=np.float64)[0]
            q = q / max(np.linalg.norm(q), 1e-12)
        else:  # a catalogue name already used: its own vector finds the replacement
            q = self.vectors[exact]
        sims = self.vectors @ q
        if exclude:
            sims[list(exclude)] = -np.inf
        best = int(np.argmax(sims))
        if not np.isfinite(sims[best]):
            return None
        if exact is None:
            stats.similarity_sum += float(sims[best])
        return best


def recommend(prompt: str, history: Sequence[int], generator: Generator,
              mapper: CatalogueMapper, stats: GenItemStats, samples: int = 20,
              temperature: float = 0.25, seed: int = 0, max_new_tokens: int = 48) -> list[int]:
    """One prompt's ranked item ids: `samples` generations, by frequency, mapped to items."""
    answers = [clean(generator.generate([prompt], max_new_tokens, temperature,
                                        seed * 1_000_003 + j)[0]) for j in range(samples)]
    stats.answers += len(answers)
    chosen: list[int] = []
    exclude = set(int(h) for h in history)
    for name, _count in rank_by_frequency(answers):
        item = mapper.map(name, exclude | set(chosen), stats)
        if item is not None:
            chosen.append(item)
    stats.recommended.update(chosen)
    return chosen
