"""`recbench prepare`, `recbench ls datasets`, `recbench info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, ls_app, setup_logging, user_errors
from recbench.core.errors import ConfigError, quote
from recbench.core.names import path_component
from recbench.core.progress import printable

SizeOpt = Annotated[str, typer.Option("--size", help="tiny | small | paper (split sizes).")]
HomeOpt = Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)]


def parse_key_values(pairs: list[str], flag: str) -> dict[str, object]:
    """`key=value` strings -> dict; values parsed as YAML scalars (numbers, booleans)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {quote(pair)}: expected key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:  # a tag (!!python/...), an unclosed [, a control byte
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{flag} {quote(pair)}: the value is not a plain YAML scalar or "
                              f"list ({quote(problem)})") from None
    return out


@app.command()
@user_errors
def prepare(
    name: Annotated[str, typer.Argument(help="Dataset name (see `recbench ls datasets`).")],
    raw: Annotated[Optional[Path], typer.Option(
        "--raw", help="Folder with the raw files; without it the official files are downloaded."
    )] = None,
    size: SizeOpt = "small",
    seed: Annotated[int, typer.Option(help="Seeds every sampling step.")] = 0,
    home: HomeOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild an existing dataset.")] = False,
    option: Annotated[list[str], typer.Option(
        "--option", "-o", help="Source option key=value (column names, layout), repeatable.")] = [],  # noqa: B006
    as_name: Annotated[Optional[str], typer.Option(
        "--as", help="Save under this name (for your own csv/recbole data).")] = None,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="Evaluation protocol: recbench (RecBench: CTR + SeqRec), loo "
                           "(leave-one-out per user) or temporal (paper 002 time split).")
    ] = "recbench",
    protocol_option: Annotated[list[str], typer.Option(
        "--protocol-option", "-p", help="Protocol option key=value, repeatable (loo: k, "
        "user_k, item_k, filter, min_seq_len, max_len; temporal: k, max_len, test_fraction).")
    ] = [],  # noqa: B006
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Turn a public dataset's raw files into frozen Parquet splits under one protocol."""
    setup_logging(verbose)
    from recbench.data.prepare import prepare as run_prepare

    with console.status("preparing") as status:
        result = run_prepare(
            name, raw=raw, size=size, seed=seed, home=home, force=force,
            options=parse_key_values(option, "--option"), output_name=as_name,
            protocol=protocol,
            protocol_options=parse_key_values(protocol_option, "--protocol-option"),
            stage=lambda msg: status.update(f"[bold]{name}[/]: {printable(msg)}"),
            show_progress=console.is_terminal,
        )
    _print_summary(result.manifest, result.path)


def _print_summary(manifest: dict, path: Path) -> None:
    from rich.table import Table

    stats = manifest["stats"]
    table = Table(title=printable(f"{manifest['name']} ({manifest['parameters']['size']}, "
                               f"{manifest['protocol_version']}) -> {path}"))
    for col in ("task", "split", "rows", "users", "items", "positives"):
        table.add_column(col, justify="right" if col not in ("task", "split") else "left")
    splits = [(task, split, s) for task in ("ctr", "seq")
              for split, s in stats.get(task, {}).items()]
    splits += [("seq", f"{fold} {split}", s) for fold, parts in stats.get("folds", {}).items()
               for split, s in parts.items()]
    for task, split, s in splits:
        table.add_row(task, split, f"{s['rows']:,}", f"{s['users']:,}", f"{s['items']:,}",
                      f"{s['positives']:,}" if "positives" in s else "")
    console.print(table)
    time_source = (manifest.get("protocol") or {}).get("time")
    if time_source:
        console.print(f"time: {printable(str(time_source))}", highlight=False)
    console.print(f"items: {stats['n_items']:,}  users: {stats['n_users']:,}  "
                  f"interactions: {stats['n_events']:,}  version: {manifest['content_hash']}")
    for note in manifest["notes"]:
        style = "yellow" if "scaled down" in note or "dropped" in note else "dim"
        console.print(f"[{style}]note:[/] {printable(note)}", highlight=False)


@ls_app.command("datasets")
@user_errors
def ls_datasets(home: HomeOpt = None) -> None:
    """List the datasets `prepare` knows, and which sizes are prepared."""
    from rich.table import Table

    from recbench.core import paths
    from recbench.data.catalog import catalog

    root = paths.home(home)
    table = Table(title="datasets (also amazon-<category> for any published Amazon category)")
    for col in ("name", "domain", "text", "prepared", "description"):
        table.add_column(col)
    for spec in catalog().values():
        ddir = paths.dataset_dir(root, spec.name)
        by_protocol: dict[str, list[str]] = {}
        for found in sorted(ddir.glob("*/*/manifest.json")):
            by_protocol.setdefault(found.parent.parent.name, []).append(found.parent.name)
        prepared = "; ".join(f"{p}: {','.join(sizes)}" for p, sizes in by_protocol.items())
        table.add_row(spec.name, spec.domain, spec.text, prepared, spec.description)
    console.print(table)


@app.command()
@user_errors
def info(
    name: Annotated[str, typer.Argument(help="A prepared dataset.")],
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """Show a prepared dataset's manifest: sources, parameters, counts, notes."""
    from recbench.core import paths
    from recbench.core.errors import DataError

    root = paths.home(home)
    found = sorted(paths.dataset_dir(root, name).glob("*/*/manifest.json"))
    if not found:
        from recbench.data.catalog import known_names, not_prepared_error
        from recbench.data.prepare import check_old_layout

        if name not in known_names():  # a typo: the close prepared or catalog names
            raise not_prepared_error(name, "", root, paths.prepared_datasets(root))
        for old in sorted(paths.dataset_dir(root, name).glob("*/manifest.json")):
            check_old_layout(root, name, old.parent.name)  # raises: the re-prepare command
        raise DataError(f"dataset {name!r} is not prepared under {root}: run "
                        f"`recbench prepare {name} --raw DIR` first")
    tokenizers = _cached_semantic_ids(paths.cache_dir(root), name)
    versions = set()
    from recbench.data.verify import read_manifest, rebuild_command

    for path in found:  # datasets/NAME/PROTOCOL/SIZE/manifest.json; damaged: one line
        manifest = read_manifest(path, rebuild_command(name, path.parent.name,
                                                       path.parent.parent.name))
        versions.add(manifest.get("content_hash"))
        if as_json:
            console.print_json(data=manifest)
            continue
        p = manifest["parameters"]
        console.rule(f"[bold]{name}[/] size={p['size']} seed={p['seed']} "
                     f"protocol={manifest['protocol_version']}")
        console.print(printable(f"source: {manifest['source']}  domain: {manifest['domain']}  "
                                f"text attribute: {manifest['text_attribute']}  "
                                f"prepared: {manifest['prepared_at']}  "
                                f"recbench {manifest['recbench_version']}"))
        for raw in manifest["raw_files"]:
            console.print(printable(f"  raw {raw['file']}  {raw['bytes']:,} B  sha256 "
                                    f"{raw['sha256'][:16]}…"), highlight=False)
        _print_summary(manifest, path.parent)
        _print_extra_info(path.parent)
        _print_semantic_ids([t for t in tokenizers
                             if t.get("dataset_version") == manifest.get("content_hash")])
    others = [t for t in tokenizers if t.get("dataset_version") not in versions]
    if others and not as_json:
        console.rule(f"[bold]{name}[/] semantic IDs of other dataset versions")
        _print_semantic_ids(others)


def _print_extra_info(dataset_path: Path) -> None:
    """Diagnostics that later stages cache beside a dataset (e.g. semantic-ID tokenizers)."""
    for diag in sorted(dataset_path.glob("derived/*/diagnostics.json")):
        console.print(f"[bold]{printable(diag.parent.name)}[/]: "
                      f"{printable(diag.read_text().strip())}", highlight=False)


def _cached_semantic_ids(cache: Path, name: str) -> list[dict]:
    """The `<key>.json` of every semantic-ID tokenizer cached for dataset `name`.

    The folder is `recbench.items.semantic_ids.sid_cache_dir`; it is spelled out here because
    importing `recbench.items` would import torch.
    """
    folder = cache / "semantic_ids" / path_component(name)
    found = []
    for meta_path in sorted(folder.glob("*.json")):
        if not meta_path.with_suffix(".parquet").is_file():
            continue  # an entry counts once both files are whole
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("diagnostics"), dict):
            found.append(meta)
    return sorted(found, key=lambda m: (str(m.get("task")), str(m.get("created"))))


def _print_semantic_ids(tokenizers: list[dict]) -> None:
    """Diagnostics of cached semantic-ID tokenizers (`recbench.items.semantic_ids.diagnose`)."""

    def levels(values, fmt) -> str:
        return " ".join(fmt.format(v) for v in values or [])

    for meta in tokenizers:
        d, sid = meta["diagnostics"], meta.get("sid", {})
        strategy = d.get("strategy_used", sid.get("sid_collisions", "?"))
        console.print(
            "[bold]semantic IDs[/] " + printable(
                f"{meta.get('key')}  task {meta.get('task')}  encoder "
                f"{meta.get('encoder')} ({meta.get('pooling')}, {meta.get('revision')})  "
                f"{d.get('n_levels')}x{d.get('codebook_size')} codes  seed {meta.get('seed')}"),
            highlight=False)
        console.print(
            f"  {d.get('n_items', 0):,} items, RQ-VAE fitted on {d.get('fit_items', 0):,} "
            f"training items, {d.get('epochs')} epochs in {d.get('train_seconds', 0):.1f} s, "
            f"final loss {d.get('final_loss', float('nan')):.4g}", highlight=False)
        console.print(
            f"  collisions before {100 * d.get('collision_rate_before', 0):.2f}% "
            f"({d.get('colliding_items_before', 0):,} items) -> after "
            f"{100 * d.get('collision_rate_after', 0):.2f}% ({printable(strategy)})",
            highlight=False)
        console.print(f"  utilisation per level: {levels(d.get('utilisation'), '{:.1%}')}",
                      highlight=False)
        console.print(f"  perplexity per level: {levels(d.get('perplexity'), '{:.1f}')}",
                      highlight=False)
        if "reconstruction_mse" in d:
            console.print(f"  reconstruction: mse {d['reconstruction_mse']:.4g}, "
                          f"{d['reconstruction_rel']:.1%} of the vectors' variance unexplained",
                          highlight=False)
        prefixes = "  ".join(f"{p['length']}: {p['mean']:.2f}/{p['max']}"
                             for p in d.get("items_per_prefix", []))
        console.print(f"  items per prefix (length: mean/max): {prefixes}", highlight=False)
