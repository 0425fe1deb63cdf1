"""GenItem's frequency ranking and hallucination mapping on a stub generator with known outputs."""

from __future__ import annotations

import numpy as np
import pytest

from recbench.models.llm.genitem import (
    SYSTEM_PROMPT,
    CatalogueMapper,
    GenItemStats,
    clean,
    rank_by_frequency,
    recommend,
    training_pair,
)


class ScriptedGenerator:
    """Answers the i-th call with script[i]; records the seeds it was given."""

    def __init__(self, script):
        self.script, self.seeds = list(script), []

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0):
        self.seeds.append(seed)
        return [self.script.pop(0) for _ in prompts]


NAMES = ["Red Lipstick", "Pink Gloss", "Garden Hose", "Lawn Mower", "Matte Lipstick"]
VECTORS = np.array([[1.0, 0.1], [0.9, 0.3], [0.0, 1.0], [0.1, 0.9], [0.95, 0.0]])
EMBED = {"crimson lipstick": [1.0, 0.1], "hose pipe": [0.05, 1.0]}


def _mapper():
    return CatalogueMapper(NAMES, VECTORS, lambda texts: np.array([EMBED[t] for t in texts]))


def test_training_pair_and_template():
    prompt, completion = training_pair(["A", "B", "C"])
    assert prompt[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert prompt[1]["content"] == "The user's item list:\nA\nB" and completion == "C"
    with pytest.raises(ValueError):
        training_pair(["A"])
    assert clean("  Pink Gloss ###\nmore") == "Pink Gloss" and clean("\n\n") == ""


def test_rank_by_frequency_ties_by_first_appearance():
    assert rank_by_frequency(["b", "a", "a", "c", "b", "", "d"]) == \
        [("b", 2), ("a", 2), ("c", 1), ("d", 1)]


def test_recommend_ranks_maps_hallucinations_and_counts():
    script = ["Garden Hose", "crimson lipstick", "Garden Hose ###", "Red Lipstick", "hose pipe",
              "crimson lipstick", "garden hose", "Pink Gloss"]
    gen = ScriptedGenerator(script)
    stats = GenItemStats()
    out = recommend("p", history=[1], generator=gen, mapper=_mapper(), stats=stats, samples=8,
                    seed=3)
    # by count, then first appearance: Garden Hose 2, crimson lipstick 2, Red Lipstick,
    # hose pipe, garden hose, Pink Gloss. Garden Hose -> 2 (exact); crimson lipstick ->
    # nearest = Red Lipstick 0; Red Lipstick (0 taken) -> nearest to item 0 among the rest =
    # Matte Lipstick 4; hose pipe -> the only item left, Lawn Mower 3; garden hose and Pink
    # Gloss (the prompt item) find nothing left.
    assert gen.seeds == [3 * 1_000_003 + j for j in range(8)]
    assert out == [2, 0, 4, 3]
    assert stats.answers == 8 and stats.distinct == 6
    assert stats.hallucinated == 2  # "crimson lipstick", "hose pipe" have no exact name
    assert stats.hallucination_rate == pytest.approx(2 / 6)
    # nearest matches of the hallucinations: crimson -> item 0 (cosine 1), hose pipe -> 3
    h = np.array(EMBED["hose pipe"]) / np.linalg.norm(EMBED["hose pipe"])
    v3 = VECTORS[3] / np.linalg.norm(VECTORS[3])
    assert stats.mean_match_similarity == pytest.approx((1.0 + v3 @ h) / 2)
    assert stats.recommended == {0, 2, 3, 4}
    assert "hallucination rate 0.333" in stats.notes()[0]
