"""`recbench sweep --executor ray` on a local multi-node Ray cluster (loopback only).

One cluster for the module: a head with 0 CPUs (it runs nothing) and two worker nodes of one
CPU each, all on 127.0.0.1, so every run lands on a worker node. One worker node is removed
mid-run (its raylet and workers killed, as when a machine dies) and replaced; Ray retries the
lost task, which takes over the dead run's lease and resumes from its epoch checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

# Loopback only: without this Ray "resolves" 127.0.0.1 to the machine's outward address when a
# driver connects (services.resolve_ip_for_localhost); read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'recbench[ray]')")

from recbench.distributed.executors import RayExecutor  # noqa: E402
from recbench.distributed.grid import expand, grid_from_dict  # noqa: E402
from recbench.distributed.sweep import SweepEvents, plan_sweep, read_attempts, run_sweep  # noqa: E402
from recbench.results.store import ResultStore  # noqa: E402

pytestmark = pytest.mark.ray
GRU = {"epochs": 8, "patience": 20, "dim": 16, "latency_samples": 10, "latency_warmup": 2}
LOOPBACK = {"node_ip_address": "127.0.0.1", "include_dashboard": False}


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True,
                head_node_args={"num_cpus": 0, "object_store_memory": 80 * 2**20, **LOOPBACK})
    workers = [c.add_node(num_cpus=1, object_store_memory=80 * 2**20, **LOOPBACK)
               for _ in range(2)]
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c, workers
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-home")


def grid(seeds):
    return grid_from_dict({"name": "ray", "groups": ["G"], "models": ["GRU4Rec"],
                           "datasets": ["synthetic"], "seeds": seeds, "size": "tiny",
                           "settings": GRU, "resources": {"default": {"cpus": 1}}})


def _raylet_of(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _node_running(pid: int, nodes):
    """The cluster node whose raylet is an ancestor of `pid`."""
    import psutil

    try:
        ancestors = {p.pid for p in psutil.Process(pid).parents()}
    except psutil.NoSuchProcess:
        return None
    for node in nodes:
        if _raylet_of(node) in ancestors:
            return node
    return None


def remove_node_mid_run(root: Path, cluster, nodes, done: threading.Event) -> str | None:
    """When a run has an epoch checkpoint, kill its worker and remove its node (as when a
    machine dies), then add a replacement node. Runs in the main thread (Ray's node start
    installs signal handlers). Returns the key of the run that was on the removed node."""
    while not done.is_set():
        for ckpt in root.glob("results/*/*/*/*.work/checkpoint.pt"):
            try:
                pid = json.loads(ckpt.parent.with_suffix(".lease").read_text())["pid"]
            except (OSError, ValueError, KeyError):
                continue
            node = _node_running(pid, nodes)
            if node is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)  # the machine dies with its processes
            except ProcessLookupError:
                continue
            cluster.remove_node(node, allow_graceful=False)
            cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20, **LOOPBACK)
            return ckpt.parent.name.removesuffix(".work")
        time.sleep(0.01)
    return None


def test_ray_spreads_over_nodes_and_survives_a_node_loss(cluster, home):
    c, nodes = cluster
    g = grid([0, 1, 2, 3])
    plan = plan_sweep(expand(g, home=home), "ray", home, "ray")
    assert len(plan.specs) == 4
    done, box = threading.Event(), {}

    def sweep():
        try:
            box["result"] = run_sweep(plan, RayExecutor(address=c.address, max_retries=2),
                                      SweepEvents())
        finally:
            done.set()

    driver = threading.Thread(target=sweep, daemon=True)
    driver.start()
    killed_key = remove_node_mid_run(home, c, nodes, done)
    driver.join(timeout=400)
    result = box["result"]
    assert killed_key is not None, "no run was caught mid-training"
    assert sorted(o.status for o in result.outcomes) == ["done"] * 4

    records = {r.key: r for r in ResultStore(home).records()}
    assert set(records) == {s.key for s in plan.specs}
    assert all(r.executor == "ray" for r in records.values())
    assert len({r.node for r in records.values()}) >= 2  # spread over worker nodes
    killed = records[killed_key]
    assert killed.resumed_from_epoch is not None and killed.resumed_from_epoch >= 1
    starts = [e for e in read_attempts(Path(plan.specs[0].sweep_dir)) if e["event"] == "start"]
    assert sum(e["key"] == killed_key for e in starts) == 2  # Ray retried it once
    assert len(starts) == 5
    res = home / "results"
    assert not [p for pat in ("**/*.lease", "**/.*.tmp", "**/*.work") for p in res.glob(pat)]

    again = plan_sweep(expand(g, home=home), "ray", home, "ray")
    assert again.specs == [] and len(again.finished) == 4
