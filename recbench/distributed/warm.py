"""What the local executor's fork server imports once, before any run is forked from it.

A run in a fresh interpreter spends 4-6 s (more on a loaded machine) importing torch,
Accelerate, polars and recbench before its first line of work: for a 30 s run that is 15-20%
lost to every run, the measured reason the local executor scaled badly
(benchmarks/README.md, sweep_bench). The local executor therefore starts one
`multiprocessing` fork server that imports this module, and forks each run from it: still a
fresh process per run (nothing a run loads, allocates or seeds reaches the next; a crash takes
down only its own run), but with the imports already done.

Nothing here computes: no tensor op, no polars query, no CUDA call, so no thread pool exists
in the server when it forks (a forked OpenMP/rayon pool would deadlock the child). The thread
variables are set to 1 before anything loads so that the pools the libraries create later
start small; each run then pins its own count (`work.pin_threads`: the environment,
threadpoolctl for the loaded BLAS/OpenMP pools, `torch.set_num_threads`).
"""

from __future__ import annotations

import os

from recbench.distributed.work import THREAD_VARS

for _var in THREAD_VARS:
    os.environ[_var] = "1"

import accelerate  # noqa: E402,F401 - imported for the forked runs
import numpy  # noqa: E402,F401
import polars  # noqa: E402,F401
import torch  # noqa: E402,F401

import recbench.evaluation  # noqa: E402,F401
import recbench.runner  # noqa: E402,F401
import recbench.training.loop  # noqa: E402,F401

MODULE = __name__
