"""`recbench attributes score|show`: LLM-scored aspect profiles of items and users (paper 003)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, setup_logging, user_errors

attributes_app = typer.Typer(help="Guided-embedding aspect scores (paper 003): score, show.",
                             no_args_is_help=True)
app.add_typer(attributes_app, name="attributes")

Size = Annotated[str, typer.Option("--size", help="Prepared size (tiny, small, paper).")]
Protocol = Annotated[Optional[str], typer.Option(
    "--protocol", help="The prepared protocol (default: the dataset's only one).")]
Home = Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)]
Backbone = Annotated[str, typer.Option("--backbone", help="LLM alias, hub id or local path.")]
Backend = Annotated[str, typer.Option("--backend", help="hf or llamacpp.")]
Extractor = Annotated[str, typer.Option(
    "--extractor", help="expected (sum k p(k), hf) or parsed (generate + the rule).")]
Aspects = Annotated[Optional[str], typer.Option(
    "--aspects", help="movies, clothing, games or a YAML file (default: the dataset domain's).")]


def _load(home, dataset, size, protocol):
    from recbench.core import paths
    from recbench.core.names import check_name
    from recbench.data.prepare import load_manifest, read_split

    check_name(dataset, "dataset name")
    root = paths.home(home)
    manifest = load_manifest(root, dataset, size, protocol)
    proto = manifest["protocol_version"]
    items = read_split(root, dataset, size, "items", proto, manifest=manifest)
    train = read_split(root, dataset, size, "seq/train", proto, manifest=manifest)
    return root, manifest, items, train


def _scores(root, manifest, items, train, backbone, backend, extractor, aspects, users,
            batch_size=16, device="cpu", threads=1):
    from recbench.core import paths
    from recbench.core.artifacts import ArtifactCache
    from recbench.items.attributes.scores import ScorerSettings, score_dataset

    settings = ScorerSettings(backbone=backbone, backend=backend, extractor=extractor,
                              batch_size=batch_size, device=device, threads=threads)
    return score_dataset(items, train, manifest.get("domain"), settings,
                         ArtifactCache(paths.cache_dir(root)), aspects=aspects, users=users)


def _profile_table(title: str, names: list[str], rows: list[tuple[str, list[float],
                                                                  list[int]]]):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("aspect")
    for label, _, _ in rows:
        table.add_column(escape(label), justify="right")
    for j, name in enumerate(names):
        cells = [f"{s[j]:.2f} ({r[j]})  {'#' * round(s[j])}" for _, s, r in rows]
        table.add_row(escape(name), *cells)
    return table


@attributes_app.command("score")
@user_errors
def score(
    dataset: Annotated[str, typer.Argument(help="A prepared dataset.")],
    size: Size = "small",
    protocol: Protocol = None,
    backbone: Backbone = "smollm2-135m",
    backend: Backend = "hf",
    extractor: Extractor = "expected",
    aspects: Aspects = None,
    users: Annotated[bool, typer.Option("--users/--no-users",
                                        help="Also score every training user.")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 16,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", min=1, help="llamacpp threads.")] = 1,
    show: Annotated[int, typer.Option("--show", min=0, help="Item profiles printed.")] = 3,
    home: Home = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score every item (and training user) of DATASET on its aspects; cached, then printed."""
    from rich.markup import escape

    setup_logging(verbose)
    root, manifest, items, train = _load(home, dataset, size, protocol)
    got = _scores(root, manifest, items, train, backbone, backend, extractor, aspects, users,
                  batch_size, device, threads)
    for role, s in (("items", got.items), ("users", got.users)):
        if s is None:
            continue
        facts = s.meta.get("facts", {})
        how = "cache hit" if s.hit else "computed"
        rate = facts.get("prompts_per_s")
        cost = f", {facts.get('seconds', 0):.1f} s, {rate:.3f} prompts/s" if rate else ""
        parse = facts.get("parse")
        fail = f", parse-failure rate {parse['failure_rate']:.4f}" if parse else ""
        console.print(escape(f"{role}: {s.scores.shape[0]} x {s.scores.shape[1]} "
                             f"{got.table.name} aspect scores ({extractor}, {backbone}, "
                             f"{backend}); {how}{cost}{fail}; artefact {s.meta.get('key')}"),
                      highlight=False, soft_wrap=True)
    texts = items.sort("item_id")["text"].to_list()
    rows = [(f"item {i}: {texts[i][:30]}", got.items.scores[i].tolist(),
             got.items.ratings[i].tolist()) for i in range(min(show, len(texts)))]
    if rows:
        console.print(_profile_table(f"{dataset}: aspect profiles (expected or parsed score, "
                                     "integer reading in brackets)", got.table.names, rows))


@attributes_app.command("show")
@user_errors
def show(
    dataset: Annotated[str, typer.Argument(help="A prepared dataset.")],
    item: Annotated[Optional[int], typer.Argument(help="An item id.")] = None,
    user: Annotated[Optional[int], typer.Option("--user", help="A training user id.")] = None,
    size: Size = "small",
    protocol: Protocol = None,
    backbone: Backbone = "smollm2-135m",
    backend: Backend = "hf",
    extractor: Extractor = "expected",
    aspects: Aspects = None,
    home: Home = None,
) -> None:
    """Print an item's or a user's aspect profile (the paper's §4.5 case study) as a table;
    scores come from the cache (computed first if missing)."""
    from recbench.core.errors import ConfigError

    if (item is None) == (user is None):
        raise ConfigError("give an ITEM id or --user USER (one of them)")
    root, manifest, items, train = _load(home, dataset, size, protocol)
    got = _scores(root, manifest, items, train, backbone, backend, extractor, aspects,
                  users=user is not None)
    if item is not None:
        if not 0 <= item < items.height:
            raise ConfigError(f"item {item}: {dataset} has item ids 0..{items.height - 1}")
        text = items.sort("item_id")["text"][item]
        label, s, r = f"item {item}: {text[:40]}", got.items.scores[item], got.items.ratings[item]
    else:
        if user not in got.user_ids:
            raise ConfigError(f"user {user}: not a training user of {dataset} "
                              f"({len(got.user_ids)} users)")
        k = got.user_ids.index(user)
        label, s, r = f"user {user}", got.users.scores[k], got.users.ratings[k]
    console.print(_profile_table(f"{dataset} ({got.table.name} aspects, {extractor})",
                                 got.table.names, [(label, s.tolist(), r.tolist())]))
