# Two commands matter: `make sync` (one sync of your Home Assistant) and `make test`.
# `make demo` syncs the labelled demo instead of a real Home Assistant.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install sync demo status test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

sync: install
	$(BIN)/homeiq-pipeline sync

demo: install
	$(BIN)/homeiq-pipeline demo

status: install
	$(BIN)/homeiq-pipeline status

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/sync_bench.py
