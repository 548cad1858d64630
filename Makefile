# The quick start: `make run` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install govtrain with CI's pinned torch.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-integration test-all lint
run: $(VENV)/.installed
	$(BIN)/govtrain run

# The fast suite, under 2 minutes on 2 cores: tests/unit/, the slow tests left out. These
# are exactly the tests marked neither integration nor slow (pyproject.toml's markers,
# tests/conftest.py); naming the folder spares importing the integration modules.
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" tests/unit

# The integration tests (tests/integration/): training runs, subprocesses, torchrun, TLC,
# HF, Lightning, reports; the slow ones left out.
test-integration: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "integration and not slow"

# Everything, slow tests included (bounded; GOVTRAIN_SLOW=1 runs them at full size).
test-all: $(VENV)/.installed
	$(BIN)/python -m pytest -q

# pyright reads [tool.pyright] in pyproject.toml; build/imports is its view of the package.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/link_imports.py
	$(BIN)/pyright --pythonpath $(BIN)/python

$(VENV)/.installed: pyproject.toml constraints/ci.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/ci.txt -e '.[dev]'
	$(BIN)/python tools/link_imports.py
	touch $@
