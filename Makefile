# Two entry points on a fresh machine:
#   make demo   - create .venv, install neurowire, run the main job on its built-in default
#   make test   - create .venv, install neurowire with test extras, run the test suite
# and: make docs (build the manual into site/), make topomap, make test-all, make lint
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch (served from a local file on the project's machines). Installed before
# neurowire so that pip does not pull a multi-GB CUDA build to satisfy "torch>=2.3".
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo topomap test test-all lint docs install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"

# the core install (what the demo needs) and the install with the test extras
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@ $(VENV)/.core

install: $(VENV)/.installed

demo: $(VENV)/.core
	$(BIN)/neurowire classify --compare --out runs/demo --overwrite

topomap: $(VENV)/.core
	$(BIN)/neurowire topomap --out runs/topomap --overwrite

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

# the manual: Markdown in docs/, API pages from the docstrings (mkdocstrings), into site/
$(VENV)/.docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@ $(VENV)/.core

docs: $(VENV)/.docs
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site .pytest_cache
