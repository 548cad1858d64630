# The quick start: `make run` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install govtrain with CI's pinned torch.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-all lint
run: $(VENV)/.installed
	$(BIN)/govtrain run

# The fast suite: everything but the tests marked slow (see pyproject.toml's markers).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

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
