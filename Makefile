# Two commands matter: `make run` (Dagster UI + daemon; syncs your Home Assistant) and `make test`.
# `make demo` does the same against the labelled demo Home Assistant; `make sync` syncs once, no Dagster.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run demo sync status test bench
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: install
	$(BIN)/homeiq-pipeline run

demo: install
	$(BIN)/homeiq-pipeline run --demo

sync: install
	$(BIN)/homeiq-pipeline sync

status: install
	$(BIN)/homeiq-pipeline status

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/sync_bench.py
