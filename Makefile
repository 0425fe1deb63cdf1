# Every target installs what it needs into .venv first, so a fresh machine needs nothing else.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-all lint bench quickstart clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
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
