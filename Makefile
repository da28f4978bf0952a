# Two commands matter: `make run` (Dagster UI + daemon; syncs your Home Assistant) and `make test`.
# `make demo` does the same against the labelled demo Home Assistant; `make sync` syncs once, no Dagster.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run demo sync status test bench
install: $(VENV)/.installed

# pip is quiet, so each step says what it does; the whole takes about a minute the first time.
$(VENV)/.installed: pyproject.toml
	@echo "make install: setting up $(VENV) (Dagster, SQLAlchemy and the test tools); about a minute the first time"
	@echo "  1/3 creating the virtual environment"
	@$(PYTHON) -m venv $(VENV)
	@echo "  2/3 upgrading pip"
	@$(BIN)/pip install --quiet --upgrade pip
	@echo "  3/3 installing homeiq-pipeline and its dependencies (the longest step)"
	@$(BIN)/pip install --quiet -e '.[test]'
	@touch $@
	@echo "make install: done; the commands are in $(BIN) (homeiq-pipeline --help)"

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
