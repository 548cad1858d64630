# The quick start: `make run` (the main job) and `make test` (the test suite).
# Both create .venv on first use and install govtrain with CI's pinned torch.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint
run: $(VENV)/.installed
	$(BIN)/govtrain run

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(VENV)/.installed: pyproject.toml constraints/ci.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints/ci.txt -e '.[dev]'
	touch $@
