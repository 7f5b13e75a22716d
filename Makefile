# Developer entry points. Every target sets up .venv from nothing when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format typecheck bench soak leak-soak setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade "pip>=25.1"
	$(PY) -m pip install -qq -e ".[sandbox,langgraph,aiohttp]" --group dev
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m langchain_coasty.demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check langchain_coasty tests cookbook benchmarks
	$(BIN)/ruff format --check langchain_coasty tests cookbook benchmarks
	$(BIN)/mypy langchain_coasty

typecheck: $(STAMP)
	$(BIN)/mypy langchain_coasty

format: $(STAMP)
	$(BIN)/ruff format langchain_coasty tests cookbook benchmarks
	$(BIN)/ruff check --fix langchain_coasty tests cookbook benchmarks

bench: $(STAMP)
	$(PY) -m benchmarks.run $(ARGS)

soak: $(STAMP)
	$(PY) -m tests.reliability.soak $(ARGS)

leak-soak: $(STAMP)
	$(PY) -m tests.reliability.leak_soak $(ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
