"""Embedding-neighbourhood recommenders of paper 002 (Boz et al.): LLMSeqSim (§3) and the
session embeddings it shares with SKNNEmb. `REGISTRY` lists them for
recbench.models.registry without importing any model module:
(name, "module:Class", groups, tasks, description).
"""

_M = "recbench.models.knn"
_LLMSEQ = ("llm-seq",)
_SEQ = ("seq",)

REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("LLMSeqSim", f"{_M}.llmseqsim:LLMSeqSim", _LLMSEQ, _SEQ,
     "items nearest the session's pooled LLM embedding, full catalogue (paper 002 §3)"),
]
