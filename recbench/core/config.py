"""Typed, closed configs and the one place their precedence is stated.

Precedence (lowest to highest): a component's defaults < the YAML file (--config) < `--set
key=value` < explicit CLI flags. Keys are flat; each is routed to the one config that declares
it, and a key no config declares fails with close matches, before any data is loaded.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from recbench.core.errors import ConfigError
from recbench.core.hashing import stable_hash


class ClosedConfig(BaseModel):
    """Base of every component config: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class EvalConfig(ClosedConfig):
    """How a run is evaluated and timed (shared by every model)."""

    eval_batch_size: int = 256
    latency_samples: int = 1000
    latency_warmup: int = 20
    latency_threads: int = 1
    exclude_history: bool = False  # full-ranking: mask history items (off: repeats may recur)
    topk: int = 20


def load_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value")
    return data


def resolve(configs: dict[str, type[ClosedConfig]], *layers: dict[str, Any]
            ) -> dict[str, ClosedConfig]:
    """Merge `layers` (lowest precedence first) and route each key to the config declaring it.

    Args:
        configs: config name -> class, e.g. {"model": SASRecConfig, "eval": EvalConfig}.
        layers: flat key -> value mappings, in precedence order.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    owners = {}
    for name, cls in configs.items():
        for field in cls.model_fields:
            owners.setdefault(field, name)
    values: dict[str, dict[str, Any]] = {name: {} for name in configs}
    for key, value in merged.items():
        if key not in owners:
            close = difflib.get_close_matches(key, owners, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown setting {key!r}.{hint} Valid: {', '.join(sorted(owners))}")
        values[owners[key]][key] = value
    out = {}
    for name, cls in configs.items():
        try:
            out[name] = cls(**values[name])
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"setting {loc!r}: {err['msg']} (got {err.get('input')!r})") from None
    return out


def config_hash(configs: dict[str, ClosedConfig]) -> str:
    return stable_hash({name: cfg.model_dump(mode="json") for name, cfg in configs.items()})
