# alertnet: `make install`, then `make demo`; `make test` before every commit.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: help install run demo test lint format bench clean

install: $(BIN)/alertnet

help:
	@echo "make install   create .venv and install alertnet with its dev tools"
	@echo "make demo      run the demo: SQLite, console SMS, a seeded neighbourhood"
	@echo "make run       alertnet serve (ALERTNET_* settings from the environment)"
	@echo "make test      the tests, on SQLite and PostgreSQL, on two workers"
	@echo "make lint      ruff and mypy --strict;  make format  fix formatting"
	@echo "make bench     throughput and latency figures (a report, not a test)"
	@echo "make clean     remove .venv and caches"

$(BIN)/alertnet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@
	@echo "installed: run 'make demo' to try it, 'make test' to test it"

run: install
	$(BIN)/alertnet serve

demo: install
	$(BIN)/alertnet demo

test: install
	$(BIN)/pytest -n 2

lint: install
	$(BIN)/ruff check alertnet tests bench
	$(BIN)/ruff format --check alertnet tests bench
	$(BIN)/mypy

format: install
	$(BIN)/ruff format alertnet tests bench
	$(BIN)/ruff check --fix alertnet tests bench

# Figures, not a timed test: exits 0 when a target is missed, non-zero only when something broke.
bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
