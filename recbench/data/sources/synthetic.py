"""`synthetic`: the embedded default dataset, generated offline from a seed.

Items have a latent genre and a popularity; their titles are built from genre-specific words, so
the text reveals the genre. Users like two genres; each step of a user's sequence stays in the
previous item's genre with probability `stay`, otherwise jumps to a liked genre (or, rarely, any
genre). Items in a liked genre are rated 4-5 (positive), others 1-2 (real negative). So text- and
embedding-aware models can generalise across items of a genre, and sequential models can learn
the genre transitions, while ID-only models must learn each item from its clicks.

The generator writes raw files (`interactions.csv`: user,item,rating,timestamp; `items.csv`:
item,title,genre) which are then loaded by the generic tabular importer, like any user data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recbench.core.atomic import write_text
from recbench.data.raw import RawTables
from recbench.data.sources import tabular

GENRE_WORDS = [
    "harbor tide sail anchor reef gull", "ember forge anvil iron smoke coal",
    "orchard pear blossom honey meadow bee", "comet orbit nebula rocket lunar quasar",
    "violin sonata chord choir opus tempo", "glacier frost tundra husky aurora snow",
    "dune oasis caravan mirage camel nomad", "circuit pixel robot laser code byte",
    "castle knight dragon sword throne quest", "jungle parrot vine jaguar canopy monsoon",
    "bakery bread crust butter oven flour", "detective clue alibi motive witness case",
    "garden tulip fern moss pebble trowel", "pirate cannon parrot treasure map plank",
    "racing engine turbo pit lap throttle", "wizard potion spell rune wand tome",
]
ADJECTIVES = ("little great silent golden hidden bright quiet wild ancient modern lost brave "
              "crimson gentle rapid lonely").split()
FORMS = "story guide kit collection edition set album journal".split()


@dataclass(frozen=True)
class Scale:
    n_users: int
    n_items: int
    n_genres: int
    length: tuple[int, int]  # min, max interactions per user


SCALES = {
    "tiny": Scale(n_users=700, n_items=400, n_genres=8, length=(6, 16)),
    "small": Scale(n_users=6_000, n_items=3_000, n_genres=16, length=(6, 24)),
    "paper": Scale(n_users=60_000, n_items=30_000, n_genres=16, length=(8, 30)),
}


def simulate(n_users: int, n_items: int, n_genres: int, length: tuple[int, int], seed: int,
             stay: float = 0.6, explore: float = 0.1) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Items (item, title, genre) and interactions (user, item, rating, timestamp)."""
    rng = np.random.default_rng(seed)
    n_genres = min(n_genres, len(GENRE_WORDS))
    genre = np.sort(rng.integers(0, n_genres, n_items))
    vocab = [g.split() for g in GENRE_WORDS[:n_genres]]
    w1, w2 = rng.integers(0, 6, n_items), rng.integers(0, 6, n_items)
    adj, form = rng.integers(0, len(ADJECTIVES), n_items), rng.integers(0, len(FORMS), n_items)
    titles = [f"{ADJECTIVES[a].title()} {vocab[g][x]} {vocab[g][y]} {FORMS[f]}"
              for a, g, x, y, f in zip(adj, genre, w1, w2, form, strict=True)]
    items = pl.DataFrame({"item": np.arange(n_items), "title": titles, "genre": genre})

    # Zipf-like popularity inside each genre.
    pop = 1.0 / (1 + rng.permutation(n_items)) ** 0.8
    members = [np.flatnonzero(genre == g) for g in range(n_genres)]
    cdfs = [np.cumsum(pop[m]) / pop[m].sum() for m in members]

    likes = np.stack([rng.choice(n_genres, 2, replace=False) for _ in range(n_users)])
    lengths = rng.integers(length[0], length[1] + 1, n_users)
    steps = int(lengths.max())
    current = likes[np.arange(n_users), rng.integers(0, 2, n_users)]
    chosen = np.empty((n_users, steps), dtype=np.int64)
    for t in range(steps):
        u = rng.random(n_users)
        jump_like = likes[np.arange(n_users), rng.integers(0, 2, n_users)]
        jump_any = rng.integers(0, n_genres, n_users)
        current = np.where(u < stay, current, np.where(u < 1 - explore, jump_like, jump_any))
        draw = rng.random(n_users)
        for g in range(n_genres):
            who = current == g
            chosen[who, t] = members[g][np.searchsorted(cdfs[g], draw[who])]
    mask = np.arange(steps)[None, :] < lengths[:, None]
    users = np.broadcast_to(np.arange(n_users)[:, None], chosen.shape)[mask]
    item_seq = chosen[mask]
    liked = (likes[users] == genre[item_seq][:, None]).any(axis=1)
    noise = rng.random(len(item_seq)) < 0.05
    liked ^= noise
    rating = np.where(liked, rng.integers(4, 6, len(liked)), rng.integers(1, 3, len(liked)))
    start = rng.integers(1_500_000_000, 1_600_000_000, n_users)
    ts = start[users] + np.broadcast_to(np.arange(steps)[None, :] * 3600, chosen.shape)[mask]
    inter = pl.DataFrame({"user": users, "item": item_seq, "rating": rating, "timestamp": ts})
    return items, inter


def generate(raw_dir: Path, size: str = "small", seed: int = 0, show_progress: bool = True,
             scale: Scale | None = None) -> None:
    """Write the raw files for `size` into `raw_dir` (marked complete by a DONE file)."""
    s = scale or SCALES[size]
    items, inter = simulate(s.n_users, s.n_items, s.n_genres, s.length, seed)
    raw_dir.mkdir(parents=True, exist_ok=True)
    write_text(raw_dir / "items.csv", items.write_csv())
    write_text(raw_dir / "interactions.csv", inter.write_csv())
    write_text(raw_dir / "DONE", f"size={size} seed={seed}\n")


def load(raw_dir: Path, options: dict[str, Any]) -> RawTables:
    tables = tabular.load(raw_dir, options)
    tables.notes.insert(0, "synthetic data: genres drive titles and clicks (see "
                           "recbench.data.sources.synthetic)")
    return tables
