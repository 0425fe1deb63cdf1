"""Deep CTR models (groups A, B, C). `REGISTRY` lists them for recbench.models.registry without
importing torch: (name, "module:Class", groups, tasks, description)."""

REGISTRY: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = []
