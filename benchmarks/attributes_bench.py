"""Benchmark of guided-embedding scoring (paper 003): items/s for 12 aspects per item on CPU.

    python benchmarks/attributes_bench.py --home /tmp/rb --dataset ml-latest-small --size tiny
    python benchmarks/attributes_bench.py --items 8 --threads 1     # synthetic movie items

Methods, each from the same prompts (Table 9, SmolLM2-135M, its chat template) to 12 scores:
(a) hf generate + parse: greedy generation of the whole reply (`max_new_tokens` = the format's
    length + 8), then the rule `^aspect: (\\d+)$`;
(b) hf expected: the expected extractor (one forward per aspect over a KV cache, the system
    prompt's cache shared by every item);
(c) llamacpp generate + parse: the same ids through llama.cpp (if llama-cpp-python is
    installed); llama.cpp exposes no full logits through the Backend protocol, so it has no (b).
Printed: items/s per method, the ratio (b)/(a) (goal >= 3), the parse-failure rate of (a) and
(c), and the mean |score difference| between (b) and the parsed integers of (a). Model loading
is excluded (warm-up on one item first). The machine's other load is not controlled: run it
when nothing else does for numbers to quote.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import polars as pl


def items_frame(args) -> pl.DataFrame:
    if args.home:
        from recbench.data.prepare import read_split

        return read_split(Path(args.home), args.dataset, args.size, "items").head(args.items)
    genres = ["Action|Thriller", "Comedy|Romance", "Drama", "Animation|Children", "Sci-Fi"]
    return pl.DataFrame({"item_id": list(range(args.items)),
                         "item_key": [str(i) for i in range(args.items)],
                         "text": [f"Movie number {i} ({1980 + i})" for i in range(args.items)],
                         "genres": [genres[i % len(genres)] for i in range(args.items)]})


def timed(scorer, system, messages, names):
    scorer.score(system, messages[:1], names)  # warm-up (and the model load)
    t = time.perf_counter()
    scores, ratings, facts = scorer.score(system, messages, names)
    return scores, ratings, facts, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home")
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--size", default="tiny")
    p.add_argument("--items", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--skip-generate", action="store_true")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from recbench.items.attributes import prompts
    from recbench.items.attributes.aspects import load_table
    from recbench.items.attributes.scores import AspectScorer, ScorerSettings, item_messages

    table = load_table("movies")
    messages = item_messages(items_frame(args), table)
    system = prompts.item_system_prompt(table)
    print(f"{len(messages)} movie items x {len(table.aspects)} aspects, SmolLM2-135M, CPU, "
          f"{args.threads} thread(s), batch {args.batch_size}")
    rows = []
    expected = AspectScorer(ScorerSettings(extractor="expected", batch_size=args.batch_size))
    exp = timed(expected, system, messages, table.names)
    rows.append(("hf expected", exp))
    if not args.skip_generate:
        parsed = AspectScorer(ScorerSettings(extractor="parsed", batch_size=args.batch_size))
        parsed._model, parsed._tokenizer = expected.model(), expected.tokenizer()  # loaded once
        rows.append(("hf generate + parse", timed(parsed, system, messages, table.names)))
        if importlib.util.find_spec("llama_cpp") is not None:
            rows.append(("llamacpp generate + parse", timed(AspectScorer(ScorerSettings(
                backend="llamacpp", extractor="parsed", threads=args.threads)), system,
                messages, table.names)))
    rate = {}
    for name, (scores, _ratings, facts, seconds) in rows:
        rate[name] = len(messages) / seconds
        parse = facts.get("parse")
        extra = f", parse-failure rate {parse['failure_rate']:.3f}" if parse else \
            f", digit mass {facts.get('digit_mass_mean', 0):.3f}"
        if parse:
            extra += f", |expected - parsed| {np.abs(exp[0] - scores).mean():.2f}"
        print(f"{name:28s} {rate[name]:8.3f} items/s ({seconds:.1f} s){extra}")
    for name in rate:
        if name != "hf expected":
            print(f"hf expected / {name}: {rate['hf expected'] / rate[name]:.2f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
