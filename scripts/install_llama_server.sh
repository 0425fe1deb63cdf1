#!/usr/bin/env bash
# Install llama-cpp-python with its OpenAI-compatible server extra, idempotently.
#
# Used by the `llama_server` tests (tests/test_openai_backend.py), which start
# `python -m llama_cpp.server` on 127.0.0.1 with the offline SmolLM2-135M GGUF. The wheel builds
# llama.cpp from source (about 10 minutes on 2 CPU cores); CI calls this script before those tests.
#
# Usage: scripts/install_llama_server.sh [PYTHON]   (default: python on PATH, i.e. the active venv)
# Env:   CMAKE_BUILD_PARALLEL_LEVEL (default: number of cores), LLAMA_CPP_SPEC (pip requirement).
set -euo pipefail

PYTHON="${1:-python}"
SPEC="${LLAMA_CPP_SPEC:-llama-cpp-python[server]==0.3.36}"

if "$PYTHON" -c "import llama_cpp, llama_cpp.server, uvicorn, fastapi, sse_starlette" 2>/dev/null; then
  version="$("$PYTHON" -c 'import llama_cpp; print(llama_cpp.__version__)')"
  echo "llama-cpp-python ${version} with the server extra is already installed; nothing to do."
  exit 0
fi

export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}"
# A CPU-only build; the machine's own instruction set is used (GGML_NATIVE is on by default).
export CMAKE_ARGS="${CMAKE_ARGS:-}"

echo "installing ${SPEC} (builds llama.cpp from source; CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL})"
start=$(date +%s)
# Never let the resolver touch torch or numpy already in the environment.
"$PYTHON" -m pip install --upgrade-strategy only-if-needed "${SPEC}"
end=$(date +%s)
elapsed=$((end - start))
printf 'installed %s in %dm%02ds\n' "${SPEC}" $((elapsed / 60)) $((elapsed % 60))
"$PYTHON" -c "import llama_cpp, llama_cpp.server; print('llama_cpp', llama_cpp.__version__)"
