"""Benchmark groups as declarative specs (RecBench Fig. 2, plus baselines and later suites).

A group says which task(s) it covers, how items are represented, which model family runs in it
and in which mode. Models register separately (`recbench.models.registry`) with the groups they
belong to; `recbench ls groups|models` lists both without importing any model code.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbench.core.errors import UnknownNameError


@dataclass(frozen=True)
class GroupSpec:
    name: str
    tasks: tuple[str, ...]  # "ctr", "seq"
    representation: str  # none | id | text | embedding | id-tokens | semantic-id
    family: str  # baseline | conventional | llm
    modes: tuple[str, ...]  # none | train | zero-shot | finetune
    description: str
    order: int  # position in leaderboards (RecBench's A-J order)


GROUPS: dict[str, GroupSpec] = {g.name: g for g in [
    GroupSpec("baseline", ("ctr", "seq"), "none", "baseline", ("none",),
              "Non-personalised reference points: MostPopular and Random.", 0),
    GroupSpec("A", ("ctr",), "id", "conventional", ("train",),
              "Deep CTR models over unique item IDs (user = mean of history item embeddings).", 1),
    GroupSpec("B", ("ctr",), "text", "conventional", ("train",),
              "Deep CTR models over item text (mean of learned word embeddings).", 2),
    GroupSpec("C", ("ctr",), "embedding", "conventional", ("train",),
              "Deep CTR models with item embeddings initialised from an LLM encoder.", 3),
    GroupSpec("D", ("ctr",), "id-tokens", "llm", ("finetune",),
              "LLM with one new token per item (P5-style), LoRA fine-tuned.", 4),
    GroupSpec("E", ("ctr",), "text", "llm", ("zero-shot", "finetune"),
              "LLM reading item text; P(YES) = softmax(l_yes, l_no); zero-shot or LoRA.", 5),
    GroupSpec("F", ("ctr",), "semantic-id", "llm", ("finetune",),
              "LLM with semantic-ID tokens (RQ-VAE codes), LoRA fine-tuned.", 6),
    GroupSpec("G", ("seq",), "id", "conventional", ("train",),
              "Sequential recommenders over unique IDs (SASRec and kin).", 7),
    GroupSpec("H", ("seq",), "semantic-id", "conventional", ("train",),
              "SASRec over semantic-ID codes, beam search with/without CBS.", 8),
    GroupSpec("I", ("seq",), "id-tokens", "llm", ("finetune",),
              "LLM with one new token per item, next-item cross-entropy.", 9),
    GroupSpec("J", ("seq",), "semantic-id", "llm", ("finetune",),
              "LLM with semantic IDs, conditional beam search.", 10),
    GroupSpec("llm-seq", ("seq",), "embedding", "llm", ("none",),
              "Paper 002 (Boz et al.): LLMSeqSim and its popularity hybrids over LLM item "
              "embeddings (temporal-v1).", 11),
    GroupSpec("feature-extractor", ("seq",), "embedding", "conventional", ("train",),
              "Paper 000 (RecXplore): SASRec over LLM-extracted, adapted item features "
              "(loo-v1).", 12),
    GroupSpec("guided", ("seq",), "id", "conventional", ("train",),
              "Paper 003: SASRec, BERT4Rec, GRU4Rec (Base) vs their guided variants (Ref.): "
              "ID embeddings refined with LLM-scored interpretable aspects (loo-v1).", 13),
]}


def get_group(name: str) -> GroupSpec:
    if name in GROUPS:
        return GROUPS[name]
    upper = name.upper()
    if upper in GROUPS:
        return GROUPS[upper]
    raise UnknownNameError("group", name, GROUPS)


def group_order(name: str) -> int:
    """Leaderboard position; unknown (future) groups sort after the known ones."""
    return GROUPS[name].order if name in GROUPS else len(GROUPS)
