"""Item-embedding extraction throughput on CPU: recbench's encoder vs the usual alternatives.

    python benchmarks/extract_bench.py [--n 256] [--threads 2] [--models minilm-l6,smollm2-135m]
                                       [--items PATH/items.parquet]

Issue 14 ("Performance"): items/s and peak memory of `recbench.items.encoders.TextEncoder`
(length-sorted batches of `--batch`, right padding, masked mean pooling) against

- sentence-transformers' `SentenceTransformer.encode` (same batch size, its own length
  sorting; MiniLM only: the SmolLM2 weights are a GGUF, which sentence-transformers cannot
  load), compared after L2 normalisation since the checkpoint's pipeline ends with Normalize;
- a plain per-item Hugging Face loop (one text per forward, no padding, the same pooling),

on the same texts (SAC strings of a prepared dataset's items with `--items`, else generated
product titles of 3-40 words) and the same max length. The vectors must agree to `--atol`
(checked and printed). Goals: >= 1.0x sentence-transformers for MiniLM, >= 5x the per-item
loop for SmolLM2. Peak memory is the peak resident set size above the process's size before
the case, sampled every 2 ms by a thread. Each case runs once after a warm-up batch; the
numbers are for one machine and thread count (printed first). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import numpy as np
import psutil
import torch

WORDS = ("matte lipstick shampoo conditioner serum cream mascara palette brush nail polish "
         "remover lotion cleanser toner gel spray oil mask scrub balm eyeliner foundation "
         "concealer primer blush bronzer highlighter perfume deodorant razor dryer curler "
         "straightener vitamin organic natural professional travel size pack ounce").split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"title: {' '.join(rng.choice(WORDS, size=rng.integers(3, 41)))}; brand: "
            f"{rng.choice(WORDS).title()}" for _ in range(n)]


class PeakRSS:
    """Peak resident memory above the starting size while the block runs (MiB)."""

    def __enter__(self):
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self):
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.mib = (self.peak - self.base) / 2 ** 20


def timed(fn):
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - t0
    return out, seconds, mem.mib


def per_item_loop(encoder, texts: list[str], max_length: int) -> np.ndarray:
    """One text per forward pass: no padding at all, the same masked mean."""
    tok, model = encoder.tokenizer, encoder.model
    out = []
    with torch.inference_mode():
        for text in texts:
            batch = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state.float()
            out.append(hidden.mean(1)[0].numpy())
    return np.stack(out)


def bench(name: str, texts: list[str], args) -> None:
    from recbench.items.encoders.encode import TextEncoder
    from recbench.models.llm import catalog

    enc = TextEncoder(name)
    enc.encode(texts[: args.batch], "mean", args.max_length, args.batch)  # warm-up
    ours, t_ours, m_ours = timed(lambda: enc.encode(texts, "mean", args.max_length, args.batch))
    loop, t_loop, m_loop = timed(lambda: per_item_loop(enc, texts, args.max_length))
    n = len(texts)
    print(f"\n{name}: {n} texts, max_length {args.max_length}, batch {args.batch}")
    print(f"  recbench TextEncoder   {n / t_ours:8.1f} items/s  peak +{m_ours:7.1f} MiB")
    print(f"  per-item HF loop       {n / t_loop:8.1f} items/s  peak +{m_loop:7.1f} MiB  "
          f"-> recbench is {t_loop / t_ours:.2f}x  (max |diff| "
          f"{np.abs(ours - loop).max():.2e}, equal to {args.atol}: "
          f"{np.allclose(ours, loop, atol=args.atol)})")
    if name == "minilm-l6":
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(catalog.resolve(name).weights_dir()), device="cpu")
        st.max_seq_length = args.max_length
        st.encode(texts[: args.batch], batch_size=args.batch)
        ref, t_st, m_st = timed(lambda: st.encode(texts, batch_size=args.batch,
                                                  convert_to_numpy=True))
        unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
        diff = np.abs(unit - ref / np.linalg.norm(ref, axis=1, keepdims=True)).max()
        print(f"  sentence-transformers  {n / t_st:8.1f} items/s  peak +{m_st:7.1f} MiB  "
              f"-> recbench is {t_st / t_ours:.2f}x  (max |diff| after L2 {diff:.2e}, "
              f"equal to {args.atol}: {diff <= args.atol})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--models", default="minilm-l6,smollm2-135m")
    parser.add_argument("--items", default=None, help="a prepared items.parquet (SAC texts)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.items:
        import polars as pl

        from recbench.items.text import sac_texts

        texts = sac_texts(pl.read_parquet(args.items))[: args.n]
    else:
        texts = synthetic_texts(args.n)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {args.threads} thread(s)")
    for name in args.models.split(","):
        bench(name.strip(), texts, args)


if __name__ == "__main__":
    main()
