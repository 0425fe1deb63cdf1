"""The one keyed, versioned, atomic artefact cache (DESIGN habit 12, issue 18).

Every derived artefact (generated item text, item vectors, fitted adapters, LoRA adapters,
semantic IDs) is stored once under

    <root>/<kind>/<key>/            root = $RECBENCH_HOME/cache unless given
        payload files               arrays (.npy, allow_pickle=False), tables (.parquet),
                                    JSON, or whole folders (a peft adapter) -- never pickles
        meta.json                   provenance, written last: an entry without it is absent

where `key` is a stable hash of everything that determines the artefact: its kind, its
`version` (bump it when the computation changes: old entries then miss), the content hashes
of its inputs, the model id and revision that made it and its settings (`ArtifactSpec`). An
entry is written in a temporary sibling folder and renamed into place whole
(`recbench.core.atomic.atomic_dir`), so a crash or a full disk leaves no partial entry and two
writers of one key both end with one whole entry (the first rename wins; the second writer's
copy is discarded). A damaged entry (unreadable meta, missing or unreadable payload) is logged
as a warning and rebuilt.

Use::

    cache = ArtifactCache()
    spec = ArtifactSpec("item_vectors", version=1, inputs={"texts": texts_hash(texts)},
                        model={"id": "sentence-transformers/all-MiniLM-L6-v2", "revision": rev},
                        settings={"pooling": "mean", "max_length": 64})
    vectors = cache.array(spec, lambda: encode(texts))      # computed once, then loaded
    record_field = cache.provenance()                       # what this run used, hit or miss

The existing item-embedding and semantic-ID caches can move onto `ArtifactCache.array` /
`ArtifactCache.get_or_build` with their current key material as `inputs`/`settings`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recbench.core import paths
from recbench.core.atomic import atomic_dir, write_bytes, write_json
from recbench.core.errors import ConfigError
from recbench.core.hashing import stable_hash
from recbench.core.names import check_name, within

log = logging.getLogger("recbench.core.artifacts")

META = "meta.json"
KEY_LENGTH = 24  # hex digits of sha256: collisions are not a concern at cache sizes


def content_hash(obj: Any) -> str:
    """A content hash for an input: bytes, a str, a numpy array (dtype, shape and bytes) or
    anything JSON-serialisable (canonical form). Use it for `ArtifactSpec.inputs` values."""
    h = hashlib.sha256()
    if isinstance(obj, bytes):
        h.update(b"b:" + obj)
    elif isinstance(obj, str):
        h.update(b"s:" + obj.encode("utf-8", "surrogatepass"))
    elif isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"a:{arr.dtype.str}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    else:
        h.update(b"j:" + json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                    default=str).encode())
    return h.hexdigest()[:KEY_LENGTH]


def texts_hash(texts: list[str]) -> str:
    """The content hash of a list of texts (order matters; NUL-separated)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class ArtifactSpec:
    """Everything that determines one artefact; its `key` is their stable hash.

    Attributes:
        kind: what the artefact is, a safe name (`item_text`, `item_vectors`, `adapter`,
            `lora`): the folder under the cache root.
        version: the computation's version; bump it when the code that builds the kind
            changes meaning, so old entries miss.
        inputs: name -> content hash of each input (`content_hash`, `texts_hash`, another
            artefact's key, a dataset's content hash).
        model: the model that made it (`id`, `revision`, ...), empty when none did.
        settings: every other setting that changes the result (pooling, prompt, seed, ...).
    """

    kind: str
    version: int
    inputs: Mapping[str, str] = field(default_factory=dict)
    model: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.kind, "artifact kind")
        if not isinstance(self.version, int) or self.version < 0:
            raise ConfigError(f"artifact {self.kind}: version {self.version!r} must be an "
                              "integer >= 0")

    @property
    def key(self) -> str:
        return stable_hash(self.as_dict(), length=KEY_LENGTH)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": self.version, "inputs": dict(self.inputs),
                "model": dict(self.model), "settings": dict(self.settings)}


@dataclass
class ArtifactUse:
    """One artefact a run used: for the record's provenance."""

    kind: str
    key: str
    hit: bool
    path: str
    version: int
    inputs: dict[str, str]
    model: dict[str, Any]
    settings: dict[str, Any]
    created: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Entry:
    """An entry on disk: its folder (payload files inside) and its meta."""

    path: Path
    meta: dict[str, Any]


class ArtifactCache:
    """Keyed artefacts under `root/<kind>/<key>/`, counted as hits and misses.

    Args:
        root: the cache folder; default `$RECBENCH_HOME/cache`.
    """

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else paths.cache_dir(paths.home())
        self.hits = 0
        self.misses = 0
        self.rebuilt = 0  # damaged entries found and rebuilt (also counted as misses)
        self.used: list[ArtifactUse] = []

    # -- paths -------------------------------------------------------------------------------
    def entry_dir(self, spec: ArtifactSpec) -> Path:
        return within(self.root, spec.kind, spec.key)

    # -- the core operation ------------------------------------------------------------------
    def get_or_build(self, spec: ArtifactSpec, build: Callable[[Path], Mapping[str, Any] | None],
                     check: Callable[[Entry], None] | None = None) -> Entry:
        """The entry of `spec`, built by `build(folder)` on a miss.

        `build` writes its payload files into `folder` (a temporary folder renamed into place
        whole afterwards) and may return extra meta fields. `check(entry)` validates a found
        entry's payload and raises (OSError, ValueError, KeyError) when it is damaged, which
        turns the hit into a rebuild with a warning.
        """
        target = self.entry_dir(spec)
        found = self._read(target, spec, check)
        if found is not None:
            self.hits += 1
            self._note(spec, found, hit=True)
            return found
        self.misses += 1
        if target.exists() or target.is_symlink():  # damaged: remove, then rebuild
            self.rebuilt += 1
            if target.is_symlink() or not target.is_dir():
                target.unlink()
            else:
                shutil.rmtree(target, ignore_errors=True)
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        try:
            with atomic_dir(target) as tmp:
                extra = dict(build(tmp) or {})
                meta = {**spec.as_dict(), "key": spec.key, "created": created,
                        "payload": sorted(p.name for p in tmp.iterdir()), **extra}
                write_json(tmp / META, meta)  # last: an entry without it does not count
        except FileExistsError:  # another writer published the same key first: theirs wins
            log.info("artifact %s/%s was written concurrently; using the first copy",
                     spec.kind, spec.key)
        entry = self._read(target, spec, check)
        if entry is None:
            raise OSError(f"artifact {spec.kind}/{spec.key}: written but unreadable at {target}")
        self._note(spec, entry, hit=False)
        return entry

    def _read(self, target: Path, spec: ArtifactSpec,
              check: Callable[[Entry], None] | None) -> Entry | None:
        if not target.is_dir():
            if target.exists() or target.is_symlink():
                log.warning("artifact %s is not a folder; rebuilding it", target)
            return None
        try:
            meta = json.loads((target / META).read_text())
            if meta.get("key") != spec.key or meta.get("kind") != spec.kind:
                raise ValueError(f"meta names key {meta.get('key')!r}, expected {spec.key!r}")
            for name in meta.get("payload", []):
                if not (target / name).exists():
                    raise FileNotFoundError(f"payload {name} is missing")
            entry = Entry(target, meta)
            if check is not None:
                check(entry)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("damaged artifact %s (%s); rebuilding it", target, err)
            return None
        return entry

    def _note(self, spec: ArtifactSpec, entry: Entry, hit: bool) -> None:
        self.used.append(ArtifactUse(spec.kind, spec.key, hit, str(entry.path), spec.version,
                                     dict(spec.inputs), dict(spec.model), dict(spec.settings),
                                     str(entry.meta.get("created", ""))))

    # -- typed payloads ----------------------------------------------------------------------
    def array(self, spec: ArtifactSpec, build: Callable[[], np.ndarray]) -> np.ndarray:
        """A numpy array artefact (`array.npy`, loaded with allow_pickle=False)."""
        def write(folder: Path) -> dict[str, Any]:
            arr = np.asarray(build())
            if arr.dtype == object:
                raise ConfigError(f"artifact {spec.kind}: object arrays cannot be cached "
                                  "(they would need pickle)")
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
            write_bytes(folder / "array.npy", buf.getvalue())
            return {"shape": list(arr.shape), "dtype": arr.dtype.str}

        def check(entry: Entry) -> None:
            arr = np.load(entry.path / "array.npy", allow_pickle=False, mmap_mode="r")
            if list(arr.shape) != entry.meta.get("shape"):
                raise ValueError(f"array shape {arr.shape} != meta {entry.meta.get('shape')}")

        entry = self.get_or_build(spec, write, check)
        return np.load(entry.path / "array.npy", allow_pickle=False)

    def arrays(self, spec: ArtifactSpec, build: Callable[[], Mapping[str, np.ndarray]]
               ) -> dict[str, np.ndarray]:
        """Several named arrays (`<name>.npy` each), e.g. a fitted adapter's parameters."""
        def write(folder: Path) -> dict[str, Any]:
            shapes = {}
            for name, value in build().items():
                check_name(name, "array name")
                arr = np.asarray(value)
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
                write_bytes(folder / f"{name}.npy", buf.getvalue())
                shapes[name] = list(arr.shape)
            return {"shapes": shapes}

        def check(entry: Entry) -> None:
            for name, shape in entry.meta["shapes"].items():
                arr = np.load(entry.path / f"{name}.npy", allow_pickle=False, mmap_mode="r")
                if list(arr.shape) != shape:
                    raise ValueError(f"{name}.npy shape {arr.shape} != meta {shape}")

        entry = self.get_or_build(spec, write, check)
        return {name: np.load(entry.path / f"{name}.npy", allow_pickle=False)
                for name in entry.meta["shapes"]}

    def json_value(self, spec: ArtifactSpec, build: Callable[[], Any]) -> Any:
        """A JSON-serialisable artefact (`value.json`), e.g. a list of generated texts."""
        def write(folder: Path) -> None:
            write_json(folder / "value.json", {"value": build()})

        def check(entry: Entry) -> None:
            json.loads((entry.path / "value.json").read_text())["value"]

        entry = self.get_or_build(spec, write, check)
        return json.loads((entry.path / "value.json").read_text())["value"]

    def folder(self, spec: ArtifactSpec, build: Callable[[Path], Mapping[str, Any] | None],
               required: tuple[str, ...] = ()) -> Path:
        """A folder artefact (a peft adapter: `adapter_config.json` + safetensors); `required`
        names files whose absence marks the entry damaged."""
        def check(entry: Entry) -> None:
            for name in required:
                if not (entry.path / name).is_file():
                    raise FileNotFoundError(f"{name} is missing")

        return self.get_or_build(spec, build, check).path

    # -- the record --------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """What this cache served: counters and every artefact used (kind, key, hit, inputs,
        model, settings), for the run's record."""
        return {"root": str(self.root), "hits": self.hits, "misses": self.misses,
                "rebuilt": self.rebuilt, "artifacts": [u.as_dict() for u in self.used]}
