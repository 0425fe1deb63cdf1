"""Typed, closed configs and the one place their precedence is stated.

Precedence (lowest to highest): a component's defaults < the YAML file (--config) < `--set
key=value` < explicit CLI flags. Keys are flat; each is routed to the one config that declares
it, and a key no config declares fails with close matches, before any data is loaded.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recbench.core.errors import ConfigError, quote
from recbench.core.hashing import stable_hash

# Bounded field types: every numeric setting of every config declares its range (a test walks
# the registry to check), so `--set epochs=-1` fails in `resolve`, before any data loads.
Count = Annotated[int, Field(ge=1)]  # sizes, widths, layers, epochs, samples
NonNegativeInt = Annotated[int, Field(ge=0)]  # patience, warm-up rows, a seed
PositiveFloat = Annotated[float, Field(gt=0)]  # learning rates, scales, clipping norms
NonNegativeFloat = Annotated[float, Field(ge=0)]  # weight decay, loss weights
Probability = Annotated[float, Field(ge=0, le=1)]
Dropout = Annotated[float, Field(ge=0, lt=1)]  # 1 would zero every activation
Widths = tuple[Count, ...]  # hidden layer widths (empty: no layers)


class ClosedConfig(BaseModel):
    """Base of every component config: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


MAX_THREADS = 1024  # an upper bound for any thread-count setting (a typo guard)


class EvalConfig(ClosedConfig):
    """How a run is evaluated and timed (shared by every model)."""

    eval_batch_size: Count = 256
    latency_samples: Count = 1000
    latency_warmup: NonNegativeInt = 20
    latency_threads: int = Field(1, ge=1, le=MAX_THREADS)
    # Training (and evaluation) runs at this many torch/BLAS threads, pinned before the model is
    # built; part of the key, since the float reduction order, hence the result, depends on it.
    # 1 by measurement (2-core machine shared with other jobs, synthetic small): DCNv2 3 epochs
    # 6.5 s at 1 thread vs 51 s at 2, SASRec-3L 2 epochs 20 s vs 183 s; with one more busy
    # process 6.1 vs 82.5 s and 37 vs 415 s. Each count is bit-identical from run to run.
    train_threads: int = Field(1, ge=1, le=MAX_THREADS)
    exclude_history: bool = False  # full-ranking: mask history items (off: repeats may recur)
    topk: Count = 20


def load_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not a UTF-8 text file (byte {exc.start}); expected "
                          "a YAML mapping of key: value") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config {path}: not valid YAML "
                          f"({quote(str(exc).splitlines()[0] if str(exc) else exc)})") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror})") from None
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
            if not err["loc"]:  # a check across settings (a model validator): its own words
                reason = err["msg"].removeprefix("Value error, ")
                raise ConfigError(f"settings of {cls.__name__}: {reason}") from None
            loc = ".".join(str(p) for p in err["loc"])
            got = repr(err.get("input"))
            got = got if len(got) <= 80 else got[:77] + "..."
            raise ConfigError(f"setting {loc!r}: {err['msg']} (got {got})") from None
    return out


def config_hash(configs: dict[str, ClosedConfig]) -> str:
    return stable_hash({name: cfg.model_dump(mode="json") for name, cfg in configs.items()})


M = TypeVar("M", bound=BaseModel)


def read_yaml_mapping(path: Path, what: str, expected: str = "a mapping of key: value"
                      ) -> dict[str, Any]:
    """A YAML file (a grid, a study, a suite) as a mapping, or one ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"{what} file {path}: not found")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({quote(str(exc).splitlines()[0])})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {expected}")
    return data


def validate_as(model: type[M], raw: Any, where: str) -> M:
    """`model.model_validate(raw)`, its first error as one line naming the field and the value."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = repr(err.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        raise ConfigError(f"{where}: field {loc!r}: {err['msg']} (got {got})") from None
