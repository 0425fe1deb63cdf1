"""The `llamacpp` backend: llama-cpp-python in process on a GGUF file, on CPU.

- `score_yes_no`: each prompt's token ids are evaluated (`logits_all=False`, so only the last
  position is projected onto the vocabulary) and P(YES) = softmax(l_yes, l_no)[0] =
  sigmoid(l_yes - l_no) is read from that position's logits (RecBench Eq. 6). The ids and the
  YES/NO tokens come from the caller: group E builds them with the same prompt builder and
  `choose_answer_tokens` as the `hf` path, over the transformers tokenizer of the same GGUF
  (`gguf_tokenizer`: its vocabulary is the file's, which llama.cpp reads too), so both backends
  read the same ids and compare the same two logits. The weights are the file's Q4_1 blocks
  as they are (transformers dequantises the same blocks to float32); llama.cpp's CPU kernels
  also round activations to 8 bits inside its matmuls, so the scores differ from `hf` a little
  (measured in `benchmarks/llm_scoring_bench.py`).
- Prefix reuse: within one call the prompts run in lexicographic token order and each keeps the
  KV cache of its longest common prefix with the prompt before it (one user's candidates share
  the system prompt and history), so only the rest is evaluated. Nothing is kept between calls:
  a timed single row pays its whole prefill, as on the `hf` path.
- `encode`: a context with `embedding=True` per pooling, llama.cpp's own `mean` (over the
  tokens) or `last` (the last token) pooling of the last hidden states (after the final norm,
  as transformers' `last_hidden_state`); several texts share one decode call. (Pooling `none`
  is avoided: llama-cpp-python 0.3.36 reads the per-token vectors of the second and later
  texts of a batch at the wrong offsets.)
- `generate`: greedy at temperature 0, else llama.cpp's top-k / top-p / min-p sampler with the
  given seed; the state is reset per prompt, so an output depends on (prompt, settings, seed)
  only.

llama-cpp-python is imported when a model is first needed; where it is missing, building a
backend raises one `BackendMissingError` line with the install command.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recbench.core.config import ClosedConfig, Count
from recbench.core.errors import ConfigError, RecbenchError
from recbench.llm.backends import POOLINGS, Pooling, TokenPrompt, require

log = logging.getLogger("recbench.llm.llamacpp")


class LlamaCppConfig(ClosedConfig):
    """How llama.cpp is run.

    Attributes:
        model_path: the GGUF file.
        n_threads: CPU threads for prompt evaluation and for generation (1: the latency
            protocol's count).
        n_ctx: the context length in tokens (a prompt plus what is generated must fit).
        n_batch: tokens per llama.cpp decode call (longer prompts run in several).
        prefix_reuse: keep the KV cache of the common prefix of consecutive prompts in a call.
    """

    model_path: str
    n_threads: Count = 1
    n_ctx: Count = 2048
    n_batch: Count = 512
    prefix_reuse: bool = True


@dataclass
class LlamaCppStats:
    """Counts for the record's notes."""

    prompts: int = 0
    tokens_run: int = 0  # prompt tokens evaluated
    tokens_reused: int = 0  # prompt tokens whose KV cache was kept from the prompt before
    texts_encoded: int = 0
    generated: int = 0  # tokens generated


@functools.lru_cache(maxsize=4)
def gguf_tokenizer(path: str) -> Any:
    """The transformers tokenizer stored in a GGUF file (vocabulary, merges, chat template),
    with the EOS token as pad where none is set: what the `hf` path tokenises with."""
    import transformers

    file = Path(path)
    if not file.is_file():
        raise RecbenchError(f"GGUF file {file} does not exist")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name,
                                                           local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlamaCppBackend:
    """llama-cpp-python on one GGUF file: YES/NO scores, embeddings, generation.

    Args:
        cfg: how llama.cpp runs.
        yes_no: the YES and NO token ids `score_yes_no` compares (None: scoring unavailable).

    Raises:
        BackendMissingError: llama-cpp-python is not installed.
        RecbenchError: the GGUF file does not exist.
    """

    name = "llamacpp"

    def __init__(self, cfg: LlamaCppConfig, yes_no: tuple[int, int] | None = None):
        require("llamacpp")
        if not Path(cfg.model_path).is_file():
            raise RecbenchError(f"llamacpp backend: GGUF file {cfg.model_path} does not exist")
        self.cfg = cfg
        self.yes_no = yes_no
        self.stats = LlamaCppStats()
        self._lm: Any = None  # the scoring / generation context
        self._embedders: dict[str, Any] = {}  # pooling -> embedding context (on first use)

    # -- models --------------------------------------------------------------------------------
    def _load(self, pooling: Pooling | None = None) -> Any:
        import llama_cpp

        cfg = self.cfg
        extra = {}
        if pooling is not None:  # an embedding context; a sequence must fit one micro-batch
            kind = {"mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST}[pooling]
            extra = {"embedding": True, "pooling_type": kind, "n_ubatch": cfg.n_batch}
        log.info("llama.cpp: loading %s (%d thread(s), n_ctx %d%s)", cfg.model_path,
                 cfg.n_threads, cfg.n_ctx, f", {pooling}-pooled embeddings" if pooling else "")
        return llama_cpp.Llama(model_path=cfg.model_path, n_ctx=cfg.n_ctx, n_batch=cfg.n_batch,
                     n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads,
                     logits_all=False, verbose=False, **extra)

    @property
    def lm(self) -> Any:
        if self._lm is None:
            self._lm = self._load()
        return self._lm

    def embedder(self, pooling: Pooling = "mean") -> Any:
        """The embedding context of one pooling (loaded on first use)."""
        if pooling not in POOLINGS:
            raise ConfigError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
        if pooling not in self._embedders:
            self._embedders[pooling] = self._load(pooling)
        return self._embedders[pooling]

    # -- YES/NO --------------------------------------------------------------------------------
    def click_logits(self, prompts: Sequence[TokenPrompt]) -> np.ndarray:
        """l_yes - l_no at each prompt's last position, (n,) float64 (P(YES) = sigmoid)."""
        if self.yes_no is None:
            raise RecbenchError("llamacpp backend: built without YES/NO token ids, so it "
                                "cannot score")
        import llama_cpp

        seqs = [(*p.prefix_ids, *p.suffix_ids) for p in prompts]
        out = np.empty(len(seqs), dtype=np.float64)
        if not seqs:
            return out
        too_long = max(range(len(seqs)), key=lambda i: len(seqs[i]))
        if len(seqs[too_long]) > self.cfg.n_ctx:
            raise ConfigError(f"llamacpp backend: a prompt of {len(seqs[too_long])} tokens "
                              f"exceeds n_ctx {self.cfg.n_ctx}")
        if min(len(s) for s in seqs) == 0:
            raise RecbenchError("llamacpp backend: an empty prompt has no answer position")
        lm, (yes, no) = self.lm, self.yes_no
        order = sorted(range(len(seqs)), key=seqs.__getitem__) if self.cfg.prefix_reuse \
            else range(len(seqs))
        previous: tuple[int, ...] = ()
        lm.reset()  # nothing is reused from an earlier call
        for i in order:
            seq = seqs[i]
            # at least the last token runs: its logits are the ones read
            keep = min(common_prefix(previous, seq), len(seq) - 1) if self.cfg.prefix_reuse \
                else 0
            lm.n_tokens = keep  # `eval` drops the KV cache from here on
            lm.eval(seq[keep:])
            logits = llama_cpp.llama_get_logits_ith(lm.ctx, -1)  # (n_vocab,) of the last token
            out[i] = float(logits[yes]) - float(logits[no])
            previous = seq
            self.stats.tokens_run += len(seq) - keep
            self.stats.tokens_reused += keep
        self.stats.prompts += len(seqs)
        return out

    def score_yes_no(self, prompts: Sequence[TokenPrompt]) -> np.ndarray:
        """P(YES) = softmax(l_yes, l_no)[0] at the answer position of each prompt, (n,)."""
        return 1.0 / (1.0 + np.exp(-self.click_logits(prompts)))

    # -- embeddings ----------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], pooling: Pooling = "mean") -> np.ndarray:
        """(n, d) float32: the last hidden states of each text, mean- or last-pooled.

        Texts are tokenised by llama.cpp (its BOS rule) and cut to `n_batch` tokens; an empty
        text is embedded as a single space (a sequence needs one token).
        """
        emb = self.embedder(pooling)
        if not texts:
            return np.zeros((0, emb.n_embd()), dtype=np.float32)
        vectors = emb.embed([t if t else " " for t in texts], normalize=False, truncate=True)
        self.stats.texts_encoded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    # -- generation ----------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str | Sequence[int]], max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0) -> list[str]:
        """Each prompt's continuation, up to `max_new_tokens` or an end-of-generation token.

        Args:
            prompts: texts (tokenised by llama.cpp with special tokens parsed, so a rendered
                chat template reads as it was trained) or token ids.
            max_new_tokens: the most tokens generated per prompt.
            temperature: 0 = greedy; above 0: top-k 40, top-p 0.95, min-p 0.05 sampling.
            seed: the sampler's seed (the same seed gives the same text).
        """
        if temperature < 0:
            raise ConfigError(f"temperature {temperature}: expected >= 0")
        import llama_cpp

        lm = self.lm
        vocab = lm._model.vocab  # llama-cpp-python exposes no public end-of-generation test
        outputs = []
        for prompt in prompts:
            ids = list(prompt) if not isinstance(prompt, str) else \
                lm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            if len(ids) + max_new_tokens > self.cfg.n_ctx:
                raise ConfigError(f"llamacpp backend: {len(ids)} prompt tokens + "
                                  f"{max_new_tokens} new ones exceed n_ctx {self.cfg.n_ctx}")
            lm.reset()
            lm.set_seed(seed)
            new: list[int] = []
            if max_new_tokens > 0:
                for token in lm.generate(ids, temp=temperature, top_k=40, top_p=0.95,
                                         min_p=0.05, repeat_penalty=1.0):
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        break
                    new.append(token)
                    if len(new) >= max_new_tokens:
                        break
            self.stats.prompts += 1
            self.stats.tokens_run += len(ids)
            self.stats.generated += len(new)
            outputs.append(lm.detokenize(new).decode("utf-8", errors="replace"))
        return outputs

    # -- records -------------------------------------------------------------------------------
    def describe(self) -> str:
        st, cfg = self.stats, self.cfg
        try:
            version = importlib.metadata.version("llama-cpp-python")
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - required above
            version = "unknown"
        reuse = "on" if cfg.prefix_reuse else "off"
        return (f"backend llamacpp: llama-cpp-python {version} in process on CPU, "
                f"{cfg.n_threads} thread(s), GGUF {Path(cfg.model_path).name} (its own "
                f"quantized weights), n_ctx {cfg.n_ctx}; {st.prompts} prompts, "
                f"{st.tokens_run} prompt tokens evaluated, {st.tokens_reused} reused from the "
                f"previous prompt's KV cache (prefix reuse {reuse}), {st.generated} generated, "
                f"{st.texts_encoded} texts encoded")
