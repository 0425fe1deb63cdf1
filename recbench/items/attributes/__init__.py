"""Guided embeddings (paper 003): LLM-scored interpretable aspects of items and users.

- `aspects`: the 12-aspect tables of Appendix C (movies, clothing, games) and user tables;
- `prompts`: the item and user prompt templates of Tables 9-10;
- `extract`: the rule-based parser and the expected extractor (sum_k k p(k));
- `scores`: scoring every item / training user through a backend, cached as artefacts;
- `guided`: normalisation (A.5, or the learned linear map of §3.2.1) and the refined item table
  [base (d - g); gamma * guided (g)] the sequential models train with.

Importing this package imports neither torch nor transformers.
"""
