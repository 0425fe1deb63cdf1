"""Sequential recommenders (group G and the LLM-enhanced variants of paper 002). `REGISTRY`
lists them for recbench.models.registry without importing torch."""

REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = []
