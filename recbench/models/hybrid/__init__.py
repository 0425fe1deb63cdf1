"""Hybrids of registered models (paper 002 §6): LLMSeqSim&Sequential and LLMSeqSim&Popularity,
registered as `LLMSeqSim-Sequential` and `LLMSeqSim-Popularity` (model names become paths:
"&" is not a safe name).
`REGISTRY` lists them for recbench.models.registry without importing any model module.
"""

_M = "recbench.models.hybrid"
_LLMSEQ = ("llm-seq",)
_SEQ = ("seq",)

REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("LLMSeqSim-Sequential", f"{_M}.popularity:LLMSeqSimSequential", _LLMSEQ, _SEQ,
     "LLMSeqSim for prompts whose last item is unpopular, a sequential model otherwise "
     "(paper 002 §6.1)"),
    ("LLMSeqSim-Popularity", f"{_M}.popularity:LLMSeqSimPopularity", _LLMSEQ, _SEQ,
     "LLMSeqSim's top-100 without items below a popularity quantile, cut to 20 "
     "(paper 002 §6.2)"),
]
