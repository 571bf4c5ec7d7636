PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint format bench mutation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m akd_tools.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not e2e"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/accuracy.py

# Mutation score of the method's core (not part of `test`: about half an hour on 2 cores).
# Runs on a copy of the tree (MUTATION_DIR, default a new temp folder); writes docs/testing.md.
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py $(if $(MUTATION_DIR),--workdir $(MUTATION_DIR))

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
