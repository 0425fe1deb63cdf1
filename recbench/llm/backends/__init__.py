"""One protocol for every way of calling an LLM: score YES/NO, encode texts, generate.

| backend | runs | YES/NO read from | install |
|---|---|---|---|
| `hf` | transformers in process (CPU/GPU, LoRA) | the 2 logits at the last position | core |
| `openai` | any OpenAI-compatible server | the first token's top logprobs | core |
| `vllm` | vLLM in process (CUDA GPU) | the first token's top logprobs | `recbench[vllm]` |
| `llamacpp` | llama-cpp-python, GGUF, CPU | the 2 logits at the last position | `[llamacpp]` |

A backend's prompts for `score_yes_no` are `TokenPrompt`s (the group-E `CTRPrompt`: prefix and
suffix token ids, built by one prompt builder for every local backend, so that all of them read
the same ids); the YES/NO token ids are given to the backend when it is built, chosen once by the
caller from the tokenizer. `encode` maps texts to one vector each; `generate` continues prompts.

Only `llamacpp` implements the protocol today (`recbench.llm.backends.llamacpp`); `hf`, `openai`
and `vllm` still live in `recbench.models.llm` and move behind it later. Importing this module is
cheap (no torch, no llama-cpp-python).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from recbench.core.errors import RecbenchError

BackendName = Literal["hf", "openai", "vllm", "llamacpp"]
BACKENDS: tuple[str, ...] = ("hf", "openai", "vllm", "llamacpp")
Pooling = Literal["mean", "last"]
POOLINGS: tuple[str, ...] = ("mean", "last")

# Where the package an optional backend needs is missing: one line, with the command.
INSTALL_HINTS = {
    "llamacpp": ("the llamacpp backend needs llama-cpp-python, which is not installed (it "
                 "compiles llama.cpp, ~10 minutes): pip install 'recbench[llamacpp]' or "
                 "make llama-server"),
    "vllm": ("the vllm backend needs vLLM (Linux with a CUDA GPU), which is not installed: "
             "pip install 'recbench[vllm]' (or pip install vllm)"),
}
_MODULES = {"llamacpp": "llama_cpp", "vllm": "vllm"}


class BackendMissingError(RecbenchError):
    """An optional backend's package is not installed."""


def require(backend: str) -> None:
    """Fail with the one-line install hint where `backend`'s package is missing.

    Found without importing it (importing llama_cpp loads a shared library; vllm, CUDA).

    Raises:
        BackendMissingError: the package is not importable.
    """
    module = _MODULES.get(backend)
    if module is not None and importlib.util.find_spec(module) is None:
        raise BackendMissingError(INSTALL_HINTS[backend])


class TokenPrompt(Protocol):
    """A prompt as token ids: the model reads `prefix_ids + suffix_ids` and answers next.

    The split marks where prompts of one user stop sharing tokens (a backend may reuse the
    prefix's KV cache); it never changes a score.
    """

    @property
    def prefix_ids(self) -> tuple[int, ...]: ...

    @property
    def suffix_ids(self) -> tuple[int, ...]: ...


@runtime_checkable
class Backend(Protocol):
    """What every LLM backend does (`name` is one of `BACKENDS`)."""

    name: str

    def score_yes_no(self, prompts: Sequence[TokenPrompt]) -> np.ndarray:
        """P(YES) = softmax(l_yes, l_no)[0] at the answer position of each prompt, (n,)."""
        ...

    def encode(self, texts: Sequence[str], pooling: Pooling = "mean") -> np.ndarray:
        """One vector per text from the last hidden states, pooled: (n, d) float32."""
        ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Each prompt's continuation (greedy at temperature 0, else sampled with `seed`)."""
        ...

    def describe(self) -> str:
        """One line for the record: backend, version, weights, threads, counts."""
        ...
