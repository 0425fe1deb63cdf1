"""The `openai` backend: YES/NO click probabilities from any OpenAI-compatible endpoint.

One client for OpenAI itself, `vllm serve` and llama.cpp's server (`python -m llama_cpp.server`).
A CTR prompt is sent with `max_tokens=1, logprobs, top_logprobs=20`, and the click probability is
read from the logprobs of the first answer token, never from generated prose:

    P(YES) = softmax(l_yes, l_no)[0] = 1 / (1 + exp(l_no - l_yes))

where l_yes is the log-sum-exp of the logprobs of every YES spelling among the top logprobs
("Yes", " Yes", "YES", "yes", ...; one model may list several) and l_no likewise. A spelling
absent from the top list gets the smallest listed logprob as an upper bound; how often that
happened is counted in `LogprobStats` and lands in the record's notes.

Endpoints: chat messages go to `/chat/completions` (the server applies the model's chat template);
raw strings go to the legacy `/completions` (no template). `endpoint="chat"` wraps raw strings
as one user turn instead. Both response shapes (chat `content[].top_logprobs` lists and legacy
`top_logprobs` dicts) are read from either endpoint, since llama.cpp returns the legacy shape.

Only the standard library is used (urllib + json, a thread pool for concurrency); the `openai`
package is not needed. The API key is read from the environment at call time, sent only in the
Authorization header, and redacted from every message this module raises or logs. Redirects are
followed only within the base URL's origin (scheme, host, port): a redirect to any other host
is refused with an error naming that host, so the key never travels to a server the user did
not name. Errors name the URL that actually answered.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import Field

from recbench.core.config import ClosedConfig
from recbench.core.errors import RecbenchError
from recbench.models.base import Recommender, RunContext, TaskData

log = logging.getLogger("recbench.models.llm.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
Prompt = str | Sequence[dict[str, Any]]  # a raw prompt, or chat messages [{"role", "content"}]
_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
# Byte-level BPE and SentencePiece mark a leading space with these; servers usually decode them.
_SPACE_MARKS = str.maketrans({"\u0120": " ", "\u2581": " ", "\u010a": "\n"})


class OpenAIConfig(ClosedConfig):
    """How to reach an OpenAI-compatible server and how to ask it for YES/NO logprobs.

    Attributes:
        base_url: the API root (`.../v1`): OpenAI, `http://127.0.0.1:8000/v1` for `vllm serve`,
            llama.cpp's server, or any other compatible server.
        model: the model name the server knows (`gpt-3.5-turbo`, a vLLM model id, ...).
        api_key_env: the environment variable holding the key; required for api.openai.com,
            optional elsewhere (sent when set). The key itself is never stored in a config.
        concurrency: requests in flight at once.
        max_retries: retries of one request on 429/5xx/timeouts/dropped connections.
        timeout_s: per-request timeout in seconds.
        backoff_s: first retry delay; doubles each retry (with jitter), `Retry-After` wins.
        max_backoff_s: cap on one retry delay.
        top_logprobs: alternatives per position to ask for (OpenAI allows at most 20).
        endpoint: `auto` (messages -> chat, strings -> completions), `chat` or `completions`.
    """

    base_url: str = DEFAULT_BASE_URL
    model: str = "gpt-3.5-turbo"
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1, le=512)
    max_retries: int = Field(5, ge=0, le=50)
    timeout_s: float = Field(60.0, gt=0)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)
    top_logprobs: int = Field(20, ge=1, le=100)
    endpoint: Literal["auto", "chat", "completions"] = "auto"


@dataclass
class LogprobStats:
    """Counts kept while scoring, for the record's notes (thread-safe through `add`)."""

    prompts: int = 0
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    yes_missing: int = 0  # no YES spelling among the top logprobs (upper bound used)
    no_missing: int = 0
    both_missing: int = 0  # neither: P(YES) = 0.5
    endpoints: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def add_endpoint(self, endpoint: str) -> None:
        with self._lock:
            self.endpoints.add(endpoint)

    def notes(self) -> list[str]:
        if not self.prompts:
            return []
        out = [f"openai backend: {self.prompts} prompts, {self.requests} requests "
               f"({self.retries} retries), endpoint(s) {', '.join(sorted(self.endpoints))}"]
        if self.yes_missing or self.no_missing:
            out.append(f"YES absent from the top logprobs in {self.yes_missing}/{self.prompts} "
                       f"prompts, NO absent in {self.no_missing}/{self.prompts} (the smallest "
                       f"listed logprob was used as an upper bound; both absent, P=0.5: "
                       f"{self.both_missing})")
        return out


def score_yes_no(prompts: Sequence[Prompt], cfg: OpenAIConfig, *,
                 stats: LogprobStats | None = None, label: str | None = None) -> np.ndarray:
    """P(YES) for each prompt, from the server's first-token logprobs.

    Args:
        prompts: chat message lists (`[{"role": "user", "content": ...}]`) or raw prompt strings.
        cfg: server, model, concurrency and retry settings.
        stats: counters to update (missing YES/NO tokens, requests, retries).
        label: the model as the user named it (`gpt-3.5`), for error messages.

    Returns:
        float64 array of shape (len(prompts),), each value in (0, 1) (0.5 when neither YES
        nor NO is among the top logprobs).

    Raises:
        RecbenchError: missing key, unreachable server, rejected request, no logprobs returned.
    """
    return OpenAIClient(cfg, label=label).score_yes_no(prompts, stats=stats)


class OpenAIClient:
    """A small synchronous client: retries, a thread pool, key redaction."""

    def __init__(self, cfg: OpenAIConfig, *, label: str | None = None):
        self.cfg = cfg
        self.label = label or cfg.model
        self.base_url = cfg.base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RecbenchError(f"base_url {public_url(cfg.base_url)!r}: expected "
                                "http(s)://HOST[:PORT]/v1")
        if parts.username is not None or parts.password is not None:
            raise RecbenchError(f"base_url {public_url(cfg.base_url)!r}: leave credentials "
                                f"out of the URL; put the key in ${cfg.api_key_env}")
        self._key = os.environ.get(cfg.api_key_env, "").strip() if cfg.api_key_env else ""
        if not self._key and parts.hostname.endswith("openai.com"):
            raise RecbenchError(f"{self.label} needs {cfg.api_key_env or 'OPENAI_API_KEY'} in "
                                "the environment (or --set base_url=... for a local server)")
        # Loopback servers never go through a proxy, whatever HTTP(S)_PROXY says.
        handlers: list[urllib.request.BaseHandler] = [_SameOriginRedirects(self._redact)]
        if parts.hostname in _LOOPBACK:
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)
        self._abort = threading.Event()

    # ---- public ---------------------------------------------------------------------------

    def score_yes_no(self, prompts: Sequence[Prompt], *,
                     stats: LogprobStats | None = None) -> np.ndarray:
        stats = stats if stats is not None else LogprobStats()
        prompts = list(prompts)
        out = np.empty(len(prompts), dtype=np.float64)
        if not prompts:
            return out
        self._abort.clear()
        workers = min(self.cfg.concurrency, len(prompts))
        if workers == 1:
            for i, prompt in enumerate(prompts):
                out[i] = self._score_one(prompt, stats)
            return out
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai")
        try:
            futures = [pool.submit(self._score_one, p, stats) for p in prompts]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                raise failed.exception()  # type: ignore[misc]
            out[:] = [f.result() for f in futures]
        except BaseException:
            # A failure or Ctrl-C: queued prompts never start, in-flight ones stop retrying.
            self._abort.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return out

    def models(self) -> list[str]:
        """The model ids the server lists at GET /models (also a reachability check)."""
        data = self._request("GET", "/models", None, LogprobStats())
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    # ---- one prompt -----------------------------------------------------------------------

    def _score_one(self, prompt: Prompt, stats: LogprobStats) -> float:
        if self._abort.is_set():
            raise RecbenchError("scoring aborted after an earlier request failed")
        path, body = self._body(prompt)
        data = self._request("POST", path, body, stats)
        top = first_token_logprobs(data)
        if top is None:
            raise RecbenchError(
                f"the server at {public_url(self.base_url)} returned no logprobs for "
                f"{self.cfg.model!r} on {path}: YES/NO cannot be scored without them (use a "
                "server that returns logprobs: OpenAI, `vllm serve`, llama-cpp-python's server)")
        p_yes, yes_missing, no_missing = yes_probability(top)
        stats.add(prompts=1, yes_missing=int(yes_missing), no_missing=int(no_missing),
                  both_missing=int(yes_missing and no_missing))
        stats.add_endpoint(path)
        return p_yes

    def _body(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        cfg = self.cfg
        common = {"model": cfg.model, "max_tokens": 1, "temperature": 0.0, "n": 1,
                  "stream": False}
        is_text = isinstance(prompt, str)
        if not is_text and not (isinstance(prompt, Sequence) and all(
                isinstance(m, dict) and "role" in m and "content" in m for m in prompt)):
            raise RecbenchError("a prompt must be a string or a list of chat messages "
                                "{'role': ..., 'content': ...}")
        use_chat = cfg.endpoint == "chat" or (cfg.endpoint == "auto" and not is_text)
        if use_chat:
            messages = [{"role": "user", "content": prompt}] if is_text else list(prompt)
            return "/chat/completions", {**common, "messages": messages, "logprobs": True,
                                         "top_logprobs": cfg.top_logprobs}
        if not is_text:
            raise RecbenchError("endpoint 'completions' takes raw prompt strings, not chat "
                                "messages (apply the chat template first, or use endpoint "
                                "'chat' / 'auto')")
        return "/completions", {**common, "prompt": prompt, "logprobs": cfg.top_logprobs}

    # ---- HTTP -----------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None,
                 stats: LogprobStats) -> dict[str, Any]:
        cfg = self.cfg
        url = self.base_url + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        where = f"{public_url(self.base_url)}{path}"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                stats.add(retries=1)
            stats.add(requests=1)
            retry_after: float | None = None
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with self._opener.open(req, timeout=cfg.timeout_s) as resp:
                    raw = resp.read()
                    answered = self._answered(resp.geturl(), where)
                try:
                    return json.loads(raw)
                except ValueError:
                    raise RecbenchError(f"{answered} answered with something other than JSON: "
                                        f"{self._redact(raw[:200].decode(errors='replace'))!r}"
                                        ) from None
            except urllib.error.HTTPError as exc:
                detail = self._error_detail(exc)
                if exc.code not in _RETRY_STATUS:
                    raise RecbenchError(self._http_message(
                        exc.code, self._answered(exc.geturl(), where), detail)) from None
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
                problem = f"HTTP {exc.code} {detail}".strip()
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, ConnectionRefusedError | socket.gaierror):
                    raise RecbenchError(
                        f"cannot reach {public_url(self.base_url)} ({self._redact(str(reason))}):"
                        " is the server running and is base_url right?") from None
                if not isinstance(reason, TimeoutError | OSError):
                    raise RecbenchError(f"{where}: {self._redact(str(reason))}") from None
                problem = f"{type(reason).__name__}: {reason}"
            except (TimeoutError, ConnectionError, HTTPException, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt == cfg.max_retries or self._abort.is_set():
                break
            delay = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** attempt * random.uniform(0.5, 1))
            if retry_after is not None:
                delay = min(cfg.max_backoff_s, max(delay, retry_after))
            log.warning("%s: %s; retry %d/%d in %.1fs", where, self._redact(problem)[:200],
                        attempt + 1, cfg.max_retries, delay)
            if self._abort.wait(delay):
                break
        raise RecbenchError(f"{where} still failing after {cfg.max_retries} retries: "
                            f"{self._redact(problem)[:300]}")

    def _answered(self, url: str | None, where: str) -> str:
        """The URL that actually answered (after same-origin redirects), fit for a message."""
        return self._redact(public_url(url)) if url else where

    def _error_detail(self, exc: urllib.error.HTTPError) -> str:
        try:
            raw = exc.read()[:2000].decode(errors="replace")
        except (OSError, HTTPException):
            return ""
        try:
            payload = json.loads(raw)
        except ValueError:
            return self._redact(" ".join(raw.split()))[:300]
        err = payload.get("error", payload) if isinstance(payload, dict) else payload
        msg = err.get("message", err) if isinstance(err, dict) else err
        if not isinstance(msg, str):
            msg = json.dumps(msg)
        return self._redact(" ".join(msg.split()))[:300]

    def _http_message(self, code: int, where: str, detail: str) -> str:
        hint = ""
        if code in (401, 403):
            hint = f" (check {self.cfg.api_key_env})"
        elif code == 404:
            hint = f" (is model {self.cfg.model!r} served there, and does base_url end in /v1?)"
        elif code in (400, 422) and "logprob" in detail.lower():
            hint = " (try --set top_logprobs=5)"
        return f"{where} rejected the request: HTTP {code} {detail}{hint}".rstrip()

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return re.sub(r"sk-[A-Za-z0-9_\-]{8,}", "sk-***", text)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port; refuse any other.

    urllib would resend every header, Authorization included, to whatever host a `Location`
    names; refusing keeps the API key with the server the user configured.
    """

    def __init__(self, redact):
        super().__init__()
        self._redact = redact

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        target = urllib.parse.urljoin(req.full_url, newurl)
        if _origin(target) != _origin(req.full_url):
            fp.close()
            host = urlsplit(target).netloc.rpartition("@")[2] or "?"
            raise RecbenchError(
                f"{self._redact(public_url(req.full_url))} redirected (HTTP {code}) to "
                f"{self._redact(public_url(target))}: a redirect to another host ({host}) is "
                "refused so the API key is not sent there; set base_url to the server that "
                "answers")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# ---- response parsing (pure functions, unit-tested) ---------------------------------------

def first_token_logprobs(response: dict[str, Any]) -> dict[str, float] | None:
    """{token: logprob} at the first generated position (top alternatives + the chosen token).

    Reads the chat shape (`choices[0].logprobs.content[0].top_logprobs` = [{token, logprob}])
    and the legacy completions shape (`choices[0].logprobs.top_logprobs[0]` = {token: logprob});
    None when the response carries no logprobs.
    """
    choices = response.get("choices") if isinstance(response, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None
    lp = choices[0].get("logprobs")
    if not isinstance(lp, dict):
        return None
    out: dict[str, float] = {}

    def put(token: Any, value: Any) -> None:
        if isinstance(token, str) and isinstance(value, int | float) and math.isfinite(value):
            # The same string can come from two token ids: their probabilities add up.
            out[token] = float(np.logaddexp(out[token], value)) if token in out else float(value)

    content = lp.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        for alt in first.get("top_logprobs") or []:
            if isinstance(alt, dict):
                put(alt.get("token"), alt.get("logprob"))
        if first.get("token") not in out:
            put(first.get("token"), first.get("logprob"))
    else:
        tops = lp.get("top_logprobs")
        if isinstance(tops, list) and tops and isinstance(tops[0], dict):
            for token, value in tops[0].items():
                put(token, value)
        tokens, values = lp.get("tokens"), lp.get("token_logprobs")
        if (isinstance(tokens, list) and isinstance(values, list) and tokens and values
                and tokens[0] not in out):
            put(tokens[0], values[0])
    return out or None


def answer_word(token: str) -> str | None:
    """'yes' / 'no' for a spelling of the answer (`Yes`, ` YES`, `\u0120no`), else None."""
    word = token.translate(_SPACE_MARKS).strip().lower()
    return word if word in ("yes", "no") else None


def yes_probability(top: dict[str, float]) -> tuple[float, bool, bool]:
    """P(YES) = softmax(l_yes, l_no)[0] from a {token: logprob} map.

    Returns:
        (p_yes, yes_missing, no_missing): a side absent from the map is bounded by the smallest
        listed logprob (its true logprob is at most that); both absent gives 0.5.
    """
    sides: dict[str, list[float]] = {"yes": [], "no": []}
    for token, value in top.items():
        word = answer_word(token)
        if word is not None:
            sides[word].append(value)
    floor = min(top.values())
    l_yes = float(np.logaddexp.reduce(sides["yes"])) if sides["yes"] else floor
    l_no = float(np.logaddexp.reduce(sides["no"])) if sides["no"] else floor
    p_yes = 0.5 * (1.0 + math.tanh(0.5 * (l_yes - l_no)))  # = sigmoid(l_yes - l_no), stable
    return p_yes, not sides["yes"], not sides["no"]


def public_url(url: str) -> str:
    """`url` without user:password@ (never print credentials embedded in a URL)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff


# ---- the group-E recommender over an API ----------------------------------------------------

class APISettings(ClosedConfig):
    """The `--set` keys of a model scored through an OpenAI-compatible API.

    A model config that may hold an API backbone includes these fields (by inheriting this
    class), so `--set base_url=http://127.0.0.1:8000/v1` reaches the client.
    The key is never a setting: it is read from the variable `api_key_env` names.

    Attributes:
        base_url, api_key_env, concurrency, max_retries, timeout_s, backoff_s, max_backoff_s,
            top_logprobs: as in `OpenAIConfig`.
        api_model: the served model name; empty = the backbone's (`gpt-3.5` ->
            `gpt-3.5-turbo`, `openai:NAME` -> `NAME`).
        max_item_chars: cut every item text to this many characters (for servers with a short
            context); None = whole texts.
    """

    base_url: str = DEFAULT_BASE_URL
    api_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = Field(8, ge=1, le=512)
    max_retries: int = Field(5, ge=0, le=50)
    timeout_s: float = Field(60.0, gt=0)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(60.0, ge=0)
    top_logprobs: int = Field(20, ge=1, le=100)
    max_item_chars: int | None = Field(None, ge=8)

    def openai_config(self, backbone: str) -> OpenAIConfig:
        """The client config for `backbone` (chat endpoint: the server applies the template)."""
        fields = {k: getattr(self, k) for k in OpenAIConfig.model_fields
                  if k in APISettings.model_fields}
        return OpenAIConfig(**fields, model=self.api_model or api_model_name(backbone))


class OpenAITextConfig(APISettings):
    """`OpenAIText`: the backbone (`gpt-3.5`, `openai:NAME`) plus the API settings."""

    backbone: str = "gpt-3.5"


def ctr_messages(history: Sequence[str], candidate: str, *, system_turn: bool = True,
                 max_item_chars: int | None = None) -> list[dict[str, str]]:
    """The RecBench CTR prompt (`recbench.models.llm.prompts`) as chat messages for an API.

    The texts are those of the transformers path: the same system prompt, header, numbered
    last-20 history, candidate line and answer cue; the server applies the chat template and the
    first assistant token is read. There is no token budget here (API models have long
    contexts); `max_item_chars` cuts every item text for servers with a short context.
    """
    from recbench.models.llm import prompts

    def cut(text: str) -> str:
        return text if max_item_chars is None or len(text) <= max_item_chars \
            else text[:max_item_chars].rstrip() + "..."

    shown = list(history)[-prompts.MAX_HISTORY:]
    lines = "".join(f"({i}) {cut(t)}\n" for i, t in enumerate(shown, 1)) or prompts.EMPTY_HISTORY
    content = (f"{prompts.HISTORY_HEADER}{lines}{prompts.CANDIDATE_LEAD}{cut(candidate)}"
               f"{prompts.ANSWER_CUE}").rstrip()
    if system_turn:
        return [{"role": "system", "content": prompts.SYSTEM_PROMPT},
                {"role": "user", "content": content}]
    return [{"role": "user", "content": f"{prompts.SYSTEM_PROMPT}\n\n{content}"}]


def api_model_name(backbone: str) -> str:
    """The server-side model name of an API backbone: `openai:NAME` or an `openai` alias."""
    if backbone.startswith("openai:"):
        name = backbone[len("openai:"):].strip()
        if not name:
            raise RecbenchError("model 'openai:': give the served model name, e.g. "
                                "openai:gpt-4o-mini")
        return name
    from recbench.models.llm import catalog

    entry = catalog.resolve(backbone)
    if entry.backend != "openai":
        raise RecbenchError(f"backbone {backbone!r} is not an API model; to score it through "
                            f"an OpenAI-compatible server use --model openai:NAME with "
                            f"--set base_url=...")
    return entry.source


def _system_turn(backbone: str) -> bool:
    """Whether the backbone takes a system turn (catalog `system_prompt`; yes when unknown)."""
    if backbone.startswith("openai:"):
        return True
    from recbench.models.llm import catalog

    return catalog.resolve(backbone).system_prompt == "system"


class OpenAIText(Recommender):
    """Zero-shot CTR through an OpenAI-compatible API (RecBench group E, e.g. GPT-3.5).

    Prompts are the group-E CTR prompts (`recbench.models.llm.prompts`), sent as chat messages;
    P(YES) comes from the first answer token's top logprobs (see the module docstring).
    """

    Config = OpenAITextConfig
    tasks = ("ctr",)
    mode = "zero-shot"

    def __init__(self, config: OpenAITextConfig, ctx: RunContext):
        super().__init__(config, ctx)
        self.api = config.openai_config(config.backbone)
        self.system_turn = _system_turn(config.backbone)
        self.stats = LogprobStats()
        # Built now so a missing key or a malformed base_url fails before any data is scored.
        self._client = OpenAIClient(self.api, label=config.backbone)
        self._items: Any = None

    @classmethod
    def from_settings(cls, backbone: str, settings: ClosedConfig, ctx: RunContext
                      ) -> OpenAIText:
        """Build from any config carrying (some of) the `APISettings` fields, such as group E's
        `LLM-text` config; fields it lacks keep their defaults."""
        values = {k: getattr(settings, k) for k in APISettings.model_fields
                  if hasattr(settings, k)}
        return cls(OpenAITextConfig(backbone=backbone, **values), ctx)

    @property
    def model_id(self) -> str:
        return self.api.model

    def fit(self, data: TaskData) -> None:
        # Zero-shot: nothing is trained; keep the item texts the prompts are built from.
        self._items = data.items

    def predict_ctr(self, rows) -> np.ndarray:
        if self._items is None:
            raise RecbenchError("OpenAIText.predict_ctr called before fit()")
        return self._client.score_yes_no(self._prompts(rows), stats=self.stats)

    def _prompts(self, rows) -> list[Prompt]:
        texts = [t or "" for t in self._items["text"].to_list()]
        cut = self.config.max_item_chars
        return [ctr_messages([texts[i] for i in history], texts[item],
                             system_turn=self.system_turn, max_item_chars=cut)
                for history, item in zip(rows["history"].to_list(), rows["item_id"].to_list(),
                                         strict=True)]

    def notes(self) -> list[str]:
        cut = self.config.max_item_chars
        return [f"P(YES) = softmax(l_yes, l_no) over the first token's top-{self.api.top_logprobs}"
                f" logprobs from {public_url(self.api.base_url)} (model {self.api.model})",
                "RecBench CTR prompt as chat messages (the server applies the chat template; "
                f"system prompt in {'a system turn' if self.system_turn else 'the user turn'}"
                f"{f'; item texts cut to {cut} characters' if cut else ''})",
                *self.stats.notes()]
