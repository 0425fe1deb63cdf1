"""`recbench compare RUN_A RUN_B`: paired t-test and Wilcoxon on per-user metric values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from recbench.cli.app import HOME_HELP, app, console, user_errors
from recbench.core.progress import printable


@app.command()
@user_errors
def compare(
    run_a: Annotated[str, typer.Argument(help="Run key (prefix) or model name.")],
    run_b: Annotated[str, typer.Argument(help="Run key (prefix) or model name.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d")] = None,
    task: Annotated[Optional[str], typer.Option(help="ctr | seq")] = None,
    metric: Annotated[str, typer.Option(help="SeqRec per-row metric, e.g. ndcg@10, hr@20, mrr."
                                        )] = "ndcg@10",
    protocol: Annotated[str, typer.Option(help="full | sampled100")] = "full",
    home: Annotated[Optional[Path], typer.Option("--home", help=HOME_HELP)] = None,
) -> None:
    """Is B different from A? Paired tests over the same users / test rows."""
    from recbench.core import paths
    from recbench.results.compare import compare as run_compare
    from recbench.results.compare import find_run
    from recbench.results.store import ResultStore

    store = ResultStore(paths.home(home))
    a = find_run(store, run_a, dataset, task)
    b = find_run(store, run_b, dataset or a.dataset, task or a.task)
    result = run_compare(store, a, b, metric=metric, protocol=protocol)
    s = result.stats
    console.print(f"[bold]{printable(f'{a.group}/{a.model_id}')}[/] vs "
                  f"[bold]{printable(f'{b.group}/{b.model_id}')}[/] on "
                  + printable(f"{a.dataset} ({a.task}), {s['n']} paired {result.unit} values of "
                              f"{result.metric}"), highlight=False)
    console.print(f"  mean A {s['mean_a']:.4f}  mean B {s['mean_b']:.4f}  "
                  f"diff {s['mean_diff']:+.4f}")
    console.print(f"  paired t-test p = {s['t_pvalue']:.3g}   Wilcoxon p = "
                  f"{s['wilcoxon_pvalue']:.3g}   significant (p < 0.05): "
                  f"{'yes' if s['significant'] else 'no'}")
