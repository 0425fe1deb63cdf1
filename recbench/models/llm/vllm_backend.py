"""The optional `vllm` backend: batched YES/NO scoring with vLLM's in-process engine.

The same rule as the `openai` backend (`recbench.models.llm.openai_backend`): one generated
token (`SamplingParams(max_tokens=1, logprobs=20)`), and P(YES) = softmax(l_yes, l_no) over the
YES/NO spellings among that token's top logprobs; a side missing from the top list is bounded by
the smallest listed logprob and counted. vLLM computes these logprobs from the raw logits
(before temperature or other processing), so the score does not depend on sampling settings.

vLLM is imported only when a `VLLMScorer` is built, so this module imports anywhere; where vLLM is
not installed, building one raises a one-line `RecbenchError` naming the install command.
Chat messages go through `LLM.chat` (the model's own chat template), raw strings through
`LLM.generate` (no template). Outputs come back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from recbench.core.config import ClosedConfig, NonNegativeInt
from recbench.core.errors import RecbenchError
from recbench.models.llm.openai_backend import LogprobStats, Prompt, yes_probability

INSTALL_HINT = ("the vllm backend needs vLLM (Linux with a CUDA GPU), which is not installed: "
                "pip install 'recbench[vllm]' (or pip install vllm)")


class VLLMConfig(ClosedConfig):
    """The engine (`vllm.LLM`) arguments recbench sets, and the logprobs to ask for.

    Attributes:
        model: a hub id or a local folder with transformers weights.
        revision: a pinned hub revision.
        dtype: `auto`, `bfloat16`, `float16`, `float32`.
        tensor_parallel_size: GPUs to shard the model over.
        gpu_memory_utilization: the share of GPU memory vLLM may reserve.
        max_model_len: context length (None: the model's).
        top_logprobs: alternatives per position (vLLM's default cap, `max_logprobs`, is 20;
            the engine is started with a higher cap when more are asked for).
        seed: the engine's seed.
        trust_remote_code: run the checkpoint's own modelling code.
    """

    model: str
    revision: str | None = None
    dtype: str = "auto"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, ge=1)
    top_logprobs: int = Field(20, ge=1)
    seed: NonNegativeInt = 0
    trust_remote_code: bool = False


class VLLMScorer:
    """An in-process vLLM engine that scores prompts with P(YES)."""

    def __init__(self, cfg: VLLMConfig):
        try:
            import vllm
        except ImportError:
            raise RecbenchError(INSTALL_HINT) from None
        self.cfg = cfg
        self.llm = vllm.LLM(
            model=cfg.model, revision=cfg.revision, dtype=cfg.dtype,
            tensor_parallel_size=cfg.tensor_parallel_size,
            gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len,
            seed=cfg.seed, trust_remote_code=cfg.trust_remote_code,
            max_logprobs=max(20, cfg.top_logprobs))
        self.params = vllm.SamplingParams(max_tokens=1, temperature=0.0, n=1,
                                          logprobs=cfg.top_logprobs)
        self.version = getattr(vllm, "__version__", None)

    def score_yes_no(self, prompts: Sequence[Prompt], *,
                     stats: LogprobStats | None = None) -> np.ndarray:
        """P(YES) per prompt (chat message lists or raw strings, not mixed), shape (n,)."""
        prompts = list(prompts)
        if not prompts:
            return np.empty(0, dtype=np.float64)
        if all(isinstance(p, str) for p in prompts):
            outputs = self.llm.generate(prompts, sampling_params=self.params, use_tqdm=False)
            endpoint = "vllm:generate"
        elif not any(isinstance(p, str) for p in prompts):
            outputs = self.llm.chat(messages=[list(p) for p in prompts],
                                    sampling_params=self.params, use_tqdm=False)
            endpoint = "vllm:chat"
        else:
            raise RecbenchError("vllm backend: give either chat message lists or raw prompt "
                                "strings, not a mix of both")
        stats = stats if stats is not None else LogprobStats()
        out = np.empty(len(prompts), dtype=np.float64)
        for i, request in enumerate(outputs):
            top = self._first_token_logprobs(request)
            out[i], yes_missing, no_missing = yes_probability(top)
            stats.add(prompts=1, requests=1, yes_missing=int(yes_missing),
                      no_missing=int(no_missing), both_missing=int(yes_missing and no_missing))
        stats.add_endpoint(endpoint)
        return out

    def _first_token_logprobs(self, request: Any) -> dict[str, float]:
        """{decoded token: logprob} of the first generated position of one RequestOutput."""
        completion = request.outputs[0]
        if not completion.logprobs:
            raise RecbenchError(f"vLLM returned no logprobs for {self.cfg.model!r}")
        top: dict[str, float] = {}
        # position 0: {token_id: Logprob(logprob, rank, decoded_token)}, the top-k + the sample
        for token_id, lp in completion.logprobs[0].items():
            token = lp.decoded_token
            if token is None:
                token = self.llm.get_tokenizer().decode([token_id])
            top[token] = float(np.logaddexp(top[token], lp.logprob)) if token in top \
                else float(lp.logprob)
        return top
