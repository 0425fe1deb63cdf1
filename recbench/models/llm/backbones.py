"""Load a catalog entry's weights with transformers: a local folder, a GGUF file or a hub id.

`load_backbone(entry)` returns `(model, tokenizer)`, the model in eval mode on the requested
device and in bf16 on CUDA / float32 on CPU unless told otherwise; `model.recbench_source` is
a `BackboneSource` naming the exact weights (hub id + commit, package version, or a fingerprint
of a local folder) for result records. `source_of(entry)` gives the same without loading, for
cache keys.

Hub ids never hang on a machine without network: with HF_HUB_OFFLINE=1 (or when the hub's host
does not answer within a few seconds) only the local HF cache is read, and a model missing
from it raises one `HubUnreachableError` line that says how to point at local weights.

transformers and torch are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from recbench.core.errors import ConfigError, RecbenchError
from recbench.models.llm.catalog import LLMEntry, resolve

if TYPE_CHECKING:
    import torch

log = logging.getLogger("recbench.models.llm")

Kind = Literal["encoder", "causal", "masked", "seq2seq", "auto"]
KINDS = ("encoder", "causal", "masked", "seq2seq", "auto")
_TRUE = {"1", "true", "yes", "on"}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubUnreachableError(RecbenchError):
    """A hub model was asked for, the hub cannot be reached and no cached copy exists."""


@dataclass(frozen=True)
class BackboneSource:
    """The exact weights behind a loaded model, as stored in records and cache keys.

    Attributes:
        alias: the catalog alias or what the user typed.
        model_id: hub id (or API model name); a local folder's path for ad-hoc local models.
        revision: hub commit hash (None when unknown: a hub model not yet downloaded),
            `pip-name==version` for packaged weights, `local:<hash>` for a local folder.
        path: the local folder the weights were read from, if any.
        gguf_file: the GGUF file inside `path`, if any.
        dtype: the torch dtype of the loaded weights (set by `load_backbone`).
        device: where the model was put (set by `load_backbone`).
    """

    alias: str
    model_id: str
    revision: str | None
    path: str | None = None
    gguf_file: str | None = None
    dtype: str | None = None
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads it at import)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.lru_cache(maxsize=4)
def _host_answers(host: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_reachable() -> bool:
    """Whether the hub endpoint ($HF_ENDPOINT or huggingface.co) accepts a TCP connection."""
    if hub_offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    if not url.hostname:
        return False
    return _host_answers(url.hostname, url.port or (443 if url.scheme == "https" else 80))


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA, float32 elsewhere."""
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def source_of(entry: LLMEntry | str) -> BackboneSource:
    """Name the weights of `entry` without loading them and without network access."""
    entry = resolve(entry) if isinstance(entry, str) else entry
    if entry.backend != "hf":
        return BackboneSource(entry.alias, entry.source, entry.revision)
    if entry.package is not None:
        folder = entry.weights_dir()
        return BackboneSource(entry.alias, entry.source,
                              f"{entry.pip_name}=={entry.package_version() or 'unknown'}",
                              str(folder), entry.gguf_file)
    if entry.local_dir is not None:
        folder = Path(entry.local_dir)
        return BackboneSource(entry.alias, str(folder),
                              f"local:{folder_fingerprint(folder, entry.gguf_file)}",
                              str(folder), entry.gguf_file)
    return BackboneSource(entry.alias, entry.source, _cached_commit(entry))


def _cached_commit(entry: LLMEntry) -> str | None:
    if entry.revision and _COMMIT.match(entry.revision):
        return entry.revision
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with transformers
        return None
    found = try_to_load_from_cache(entry.source, "config.json", revision=entry.revision)
    if not isinstance(found, str):
        return None
    commit = Path(found).parent.name  # .../snapshots/<commit>/config.json
    return commit if _COMMIT.match(commit) else None


def folder_fingerprint(folder: Path, gguf_file: str | None = None) -> str:
    """A cheap identity of a weights folder: names and sizes of every file, contents of the
    small ones (configs, tokenizers). Big weight files are not read."""
    h = hashlib.sha256()
    if not folder.is_dir():
        raise RecbenchError(f"model folder {folder} does not exist")
    files = [folder / gguf_file] if gguf_file else sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith((".", "__pycache__"))
                                   for part in p.relative_to(folder).parts))
    for path in files:
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder)}\0{size}\0".encode())
        if size < (1 << 20):
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _model_class(kind: str, family: str):
    import transformers

    if kind == "auto":
        kind = {"decoder": "causal", "encoder": "masked", "seq2seq": "seq2seq"}[family]
    return {"encoder": transformers.AutoModel,
            "causal": transformers.AutoModelForCausalLM,
            "masked": transformers.AutoModelForMaskedLM,
            "seq2seq": transformers.AutoModelForSeq2SeqLM}[kind]


QUANTIZATIONS = ("none", "8bit", "4bit")


def load_backbone(entry: LLMEntry | str, kind: Kind = "auto", device: str = "cpu",
                  dtype: torch.dtype | None = None, device_map: str | None = None,
                  quantization: str = "none") -> tuple[Any, Any]:
    """Load a model and its tokenizer with transformers.

    Args:
        entry: a catalog entry, or a name for `catalog.resolve`.
        kind: `encoder` = the bare network returning hidden states (any family; what item
            embeddings use); `causal` / `masked` / `seq2seq` = with that LM head; `auto` = the
            LM head of the entry's family.
        device: `cpu`, `cuda` or `cuda:N`.
        dtype: the weights' dtype; default bf16 on CUDA, float32 on CPU.
        device_map: transformers/accelerate placement instead of moving the whole model to
            `device`, e.g. `auto` (layers over every visible GPU, then CPU) for models larger
            than one GPU.
        quantization: `8bit` / `4bit` weights through bitsandbytes (LLM.int8 / NF4 with `dtype`
            compute; CUDA only), for backbones that do not fit in bf16.

    Returns:
        (model, tokenizer): the model in eval mode on `device` with `model.recbench_source` set;
        the tokenizer with a pad token (the EOS token where the checkpoint defines none).

    Raises:
        HubUnreachableError: a hub model with no network and no cached copy.
        RecbenchError: an API-only or off-hub model, missing files, a failed load.
    """
    if kind not in KINDS:
        raise ConfigError(f"backbone kind {kind!r}: expected one of {', '.join(KINDS)}")
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization {quantization!r}: expected one of "
                          f"{', '.join(QUANTIZATIONS)}")
    entry = resolve(entry) if isinstance(entry, str) else entry
    if entry.backend != "hf":
        raise RecbenchError(f"model {entry.alias!r} ({entry.source}) is served over an "
                            f"{entry.backend} API (backend {entry.backend!r}); it has no local "
                            "weights to load")
    if not entry.hub_weights and not entry.offline:
        raise RecbenchError(f"model {entry.alias!r} has no transformers checkpoint on the hub: "
                            f"{entry.notes}")
    check_remote_code(entry)
    import transformers

    cls = _model_class(kind, entry.family)
    dtype = dtype or default_dtype(device)
    source = source_of(entry)
    folder = entry.weights_dir()
    common: dict[str, Any] = {"trust_remote_code": entry.trust_remote_code}
    if quantization != "none":
        common["quantization_config"] = _bitsandbytes(quantization, device, dtype)
        device_map = device_map or device  # bitsandbytes places weights while loading
    if device_map is not None:
        common["device_map"] = device_map
    offline = False
    if folder is not None:
        target = str(folder)
        if not folder.is_dir():
            raise RecbenchError(f"model {entry.alias!r}: weights folder {folder} does not exist")
        if entry.gguf_file:
            if not (folder / entry.gguf_file).is_file():
                raise RecbenchError(f"model {entry.alias!r}: {folder / entry.gguf_file} is "
                                    "missing")
            common["gguf_file"] = entry.gguf_file
        common["local_files_only"] = True
    else:
        target = entry.source
        offline = not hub_reachable()
        common["local_files_only"] = offline
        if entry.revision:
            common["revision"] = entry.revision
    log.info("loading %s (%s) as %s on %s, %s", entry.alias, target, cls.__name__, device,
             dtype)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(target, **common)
        model = cls.from_pretrained(target, dtype=dtype, **common)
    except OSError as err:
        if offline:
            why = "HF_HUB_OFFLINE=1" if hub_offline() else "no connection to the hub"
            raise HubUnreachableError(
                f"model {entry.alias!r} ({entry.source}): the Hugging Face hub is unreachable "
                f"({why}) and no cached copy was found; point at local weights with --model "
                f"/path/to/dir (a transformers checkpoint folder or a .gguf file), or use "
                f"hf:{entry.source} on a machine whose HF cache holds it "
                f"(`hf download {entry.source}`)") from err
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RecbenchError(f"could not load model {entry.alias!r} from {target}: "
                            f"{first}") from err
    if device_map is None:  # else placed by accelerate while loading
        model.to(device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    revision = source.revision
    commit = getattr(model.config, "_commit_hash", None)
    if folder is None and isinstance(commit, str) and _COMMIT.match(commit):
        revision = commit
    placed = str(device) if device_map is None else f"device_map={device_map}"
    precision = str(dtype).removeprefix("torch.") + (
        "" if quantization == "none" else f" compute, {quantization} bitsandbytes weights")
    model.recbench_source = BackboneSource(source.alias, source.model_id, revision,
                                           source.path, source.gguf_file, precision, placed)
    return model, tokenizer


def check_remote_code(entry: LLMEntry) -> None:
    """Refuse a checkpoint that ships its own modelling code unless the user opted in.

    Running a hub repository's Python is running a stranger's code, so it is never on by
    default: the model config's `trust_remote_code` setting (recorded with the run) turns it on.
    `load_backbone` calls this before it loads anything; vLLM gets the same flag.
    """
    if entry.needs_remote_code and not entry.trust_remote_code:
        raise ConfigError(f"model {entry.alias!r} ({entry.source}) runs its own modelling code "
                          "from the checkpoint, which is off by default: read that code, then "
                          "opt in with --set trust_remote_code=true")


def _bitsandbytes(quantization: str, device: str, dtype: torch.dtype) -> Any:
    """transformers' BitsAndBytesConfig for `8bit` (LLM.int8) or `4bit` (NF4, `dtype` compute)."""
    if not str(device).startswith("cuda"):
        raise ConfigError(f"quantization={quantization} needs a CUDA device (bitsandbytes); "
                          f"this run's device is {device}: use --device cuda, or "
                          "quantization=none")
    try:
        import bitsandbytes  # noqa: F401 - transformers needs it installed
    except ImportError as err:
        raise RecbenchError(f"quantization={quantization} needs bitsandbytes, which is not "
                            "installed: pip install bitsandbytes") from err
    import transformers

    if quantization == "8bit":
        return transformers.BitsAndBytesConfig(load_in_8bit=True)
    return transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                           bnb_4bit_compute_dtype=dtype)
