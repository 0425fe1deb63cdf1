"""Scale-out: many independent `recbench run`s over a process pool, Ray or Slurm, and tuning.

- `grid`: a GRID.yaml file (groups x models x datasets x seeds x setting lists, resources per
  model pattern) expanded into ordinary `RunRequest`s, one per cell.
- `work`: what travels to a worker (`RunSpec`, exactly one run key) and what comes back
  (`Outcome`); `run_spec` is the one worker entry point every executor calls.
- `executors`: `local` (a standard-library pool of spawned processes, one fresh process per
  run, the default), `ray` (Ray core tasks), `slurm` (submitit job arrays) behind one interface.
- `sweep`: plan (keys, finished cells skipped), dispatch, attempts log, `sweep status`.
- `tune`: Optuna studies (TPE, percentile pruning, no-improvement stop) over shared storage.
- `multigpu`: `accelerate launch` for K-GPU runs and row sharding for data-parallel inference.

Every engine delivers at-least-once; exactly-once comes from the results store (first-writer-
wins records, per-key leases), so retries and duplicates are safe by construction.
Nothing here imports Ray, submitit, Optuna or torch at module level.
"""
