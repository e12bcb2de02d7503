# Two entry points: `make demo` (train + evaluate on Oxford-IIIT Pet) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_OXFORD := ../shared/data/oxford-iiit-pet-mini
DOWNLOADED_OXFORD := data/oxford-iiit-pet

.PHONY: demo test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	@$(BIN)/python scripts/demo.py $(if $(DATA),--data "$(DATA)")

lint: install-dev
	$(BIN)/ruff check src tests benchmarks scripts

test: lint
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) runs
