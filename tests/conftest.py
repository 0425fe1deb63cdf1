"""Shared fixtures: a throwaway recbench home, the real-data folder (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recbench.core.paths import shared_data_dir


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """Tiny tensors: a second torch thread only adds contention (10x slower on a busy 2-core
    box). Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty $RECBENCH_HOME for one test."""
    root = tmp_path / "home"
    root.mkdir()
    return root


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (or $RECBENCH_SHARED_DATA); the test is skipped when it is absent."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("real data folder ../shared/data is absent (set RECBENCH_SHARED_DATA)")
    return root


def shared_subdir(shared: Path, name: str) -> Path:
    path = shared / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path
