"""Item vectors from any OpenAI-compatible `POST /v1/embeddings` endpoint (paper 002 §3.1).

OpenAI's `text-embedding-3-small` / `text-embedding-ada-002` (the paper's ada), a local
`python -m llama_cpp.server --embedding true`, `vllm serve --task embed`, ... The transport is
the `openai` backend's client (same retries, key from the environment, key redaction,
same-origin redirects only). A server that answers one vector per token (llama.cpp for a
causal LM without a pooling layer) has them mean-pooled here. Vectors are cached like the
encoder pipeline's, under `<cache>/item_embeddings/<dataset>/<key>.npy` keyed by the endpoint,
the model name and a hash of the item texts, so a rerun sends no request. An empty item text
is sent as one space (servers reject empty input).
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from recbench.core.atomic import write_bytes, write_json
from recbench.core.errors import RecbenchError
from recbench.core.hashing import stable_hash
from recbench.core.names import path_component

if TYPE_CHECKING:
    from recbench.models.base import RunContext, TaskData

log = logging.getLogger("recbench.models.knn.api_embeddings")
CACHE_VERSION = 1


def embed_texts(texts: list[str], model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY",
                batch_size: int = 64, timeout_s: float = 120.0) -> np.ndarray:
    """(len(texts), D) float32 vectors from `{base_url}/embeddings`, in input order.

    Raises:
        RecbenchError: unreachable server, a rejected request, or a malformed answer.
    """
    from recbench.models.llm.openai_backend import LogprobStats, OpenAIClient, OpenAIConfig

    client = OpenAIClient(OpenAIConfig(base_url=base_url, model=model, api_key_env=api_key_env,
                                       timeout_s=timeout_s, concurrency=1))
    out: list[np.ndarray] = []
    for lo in range(0, len(texts), batch_size):
        batch = [t if t.strip() else " " for t in texts[lo:lo + batch_size]]
        # The client's request method carries the retry/redaction rules of the backend.
        answer = client._request("POST", "/embeddings", {"model": model, "input": batch},
                                 LogprobStats())
        out.append(_vectors(answer, len(batch), base_url))
    if not out:
        raise RecbenchError("no item texts to embed")
    return np.concatenate(out).astype(np.float32)


def _vectors(answer: Any, n: int, base_url: str) -> np.ndarray:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or len(data) != n:
        raise RecbenchError(f"{base_url}/embeddings answered without {n} embeddings in 'data'")
    rows = sorted(data, key=lambda d: d.get("index", 0) if isinstance(d, dict) else 0)
    try:
        vecs = [np.asarray(d["embedding"], dtype=np.float64) for d in rows]
    except (KeyError, TypeError, ValueError):
        raise RecbenchError(f"{base_url}/embeddings: an entry has no numeric 'embedding'"
                            ) from None
    # llama.cpp's server returns one vector per token for models without a pooling layer
    # (a causal LM's GGUF): those are mean-pooled here, the pipeline's `mean` pooling.
    vecs = [v.mean(axis=0) if v.ndim == 2 and v.shape[0] > 0 else v for v in vecs]
    if any(v.ndim != 1 for v in vecs) or len({v.shape for v in vecs}) != 1:
        raise RecbenchError(f"{base_url}/embeddings returned embeddings of differing shapes "
                            f"{sorted({v.shape for v in vecs})}; expected one vector per input")
    return np.stack(vecs)


def api_item_vectors(data: TaskData, model: str, base_url: str, api_key_env: str,
                     ctx: RunContext | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Every item's vector (row = item id) through the cache; returns (vectors, provenance)."""
    from recbench.items.embeddings import cache_root, item_texts, texts_hash
    from recbench.models.llm.openai_backend import public_url

    texts = item_texts(data)
    spec = {"v": CACHE_VERSION, "api": public_url(base_url).rstrip("/"), "model": model,
            "texts": texts_hash(texts), "n_items": len(texts)}
    key = "api-" + stable_hash(spec)
    root = cache_root(ctx) / "item_embeddings" / path_component(data.dataset or "_")
    npy, meta_path = root / f"{key}.npy", root / f"{key}.json"
    if npy.is_file() and meta_path.is_file():
        try:
            vectors = np.load(npy, allow_pickle=False)
            if vectors.ndim == 2 and vectors.shape[0] == len(texts):
                return vectors.astype(np.float32), {**spec, "key": key, "hit": True}
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable embedding cache %s: %s", npy, err)
    vectors = embed_texts(texts, model, base_url, api_key_env)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
    write_bytes(npy, buf.getvalue())
    write_json(meta_path, {**spec, "key": key, "dim": int(vectors.shape[1]),
                           "dataset": data.dataset})
    return vectors, {**spec, "key": key, "hit": False}


