# Two entry points: `make demo` (train + evaluate on Oxford-IIIT Pet) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_OXFORD := ../shared/data/oxford-iiit-pet-mini
DOWNLOADED_OXFORD := data/oxford-iiit-pet

.PHONY: demo test lint docs transcripts install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# `make demo` leaves every command the README shows working: the web service and ONNX export included (Ray stays opt-in)
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[serve,export]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-demo

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed-demo
	@$(BIN)/python scripts/demo.py $(if $(DATA),--data "$(DATA)")

lint: install-dev
	$(BIN)/ruff check src tests benchmarks scripts

# The site into site/; --strict: a broken link or a docstring mkdocstrings cannot render fails the build.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Re-run every shell example in README.md and docs/ (the slow ones too, dated); tests/test_docs.py checks the quick ones.
transcripts: install-dev
	$(BIN)/python scripts/transcripts.py --slow

test: lint docs
	$(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) runs site .cache/mkdocs-jupyter
