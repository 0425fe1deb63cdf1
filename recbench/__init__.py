"""recbench: when does an LLM beat a conventional recommender, by how much, at what cost."""

__version__ = "0.1.0"
