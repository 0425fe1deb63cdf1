"""The LLM layer: calling a language model, below the recommenders that use one.

Its target contents (DESIGN.md): the catalog, loading (hf, GGUF, quantization), LoRA, prompts,
the YES/NO and [CLS] heads, the batch scorer and KV-cache decoders, with the backends under
`recbench.llm.backends` behind one `Backend` protocol. Today it holds the protocol and the
`llamacpp` backend; the rest still lives in `recbench.models.llm` and moves here later.

Nothing here imports a recommender (`recbench.models`), and importing this package imports
neither torch nor llama-cpp-python.
"""
