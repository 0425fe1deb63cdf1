"""Recommenders: baselines, conventional models, LLM recommenders (see registry.py)."""
