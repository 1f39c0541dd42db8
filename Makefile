# The customer ML platform. `make demo` runs the main job; `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_CUSTOMERS ?= 3000
DEMO_SEED ?= 42
# `make test` runs on this many pytest-xdist workers (0: all in one process)
PYTEST_WORKERS ?= 2
STAMP := $(VENV)/.installed
EMULATOR_STAMP := .venv-bqemulator/.installed

.DEFAULT_GOAL := help
.PHONY: help setup demo test test-fast lock bench clean up down status

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv

$(STAMP): requirements.txt pyproject.toml | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# The local BigQuery emulator the BigQuery tests start (own virtualenv: it pins DuckDB 1.5.5).
$(EMULATOR_STAMP): requirements-bqemulator.txt | $(STAMP)
	$(BIN)/python -c "from ml.ops import emulator; emulator.install()"
	touch $@

# Debian's Chromium for the browser tests (as root, or sudo without a password; otherwise a
# message says what to install, and only the browser tests need it).
BROWSER_STAMP := $(VENV)/.browser
$(BROWSER_STAMP): scripts/install_browser.sh | $(STAMP)
	@if bash scripts/install_browser.sh; then touch $@; else \
		echo "make setup: Chromium not installed (the browser tests need it): run 'sudo make setup' or 'apt-get install chromium'" >&2; fi

setup: $(STAMP) $(EMULATOR_STAMP) $(BROWSER_STAMP) ## Create .venv (+ the BigQuery emulator's), install the pinned stack and Chromium, compile the dbt manifest, init Airflow
	$(BIN)/ml init

lock: | $(BIN)/uv ## Re-resolve requirements.txt from requirements.in
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements.in -o requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 requirements-bqemulator.in -o requirements-bqemulator.txt

demo: setup ## Generate a retail history (if none) and run the whole pipeline in-process
	$(BIN)/ml generate --customers $(DEMO_CUSTOMERS) --seed $(DEMO_SEED) --keep-existing
	$(BIN)/ml run

test: setup ## Run every test (unit, dbt, DAGs end to end) on PYTEST_WORKERS processes
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS)

test-fast: setup ## Only the tests that run no dbt or Airflow end to end
	$(BIN)/python -m pytest -m "not slow"

bench: setup ## Benchmarks that print figures (see bench/)
	$(BIN)/python bench/features.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/import.py
	$(BIN)/python bench/e2e.py
	$(BIN)/python bench/warehouse.py
	$(BIN)/python bench/learners.py

up: setup ## Start Airflow (127.0.0.1:8080) and MLflow (127.0.0.1:5000); print URLs and login
	$(BIN)/ml server up

down: ## Stop the servers `make up` started
	$(BIN)/ml server down

status: ## Are the servers up? URLs and PIDs
	$(BIN)/ml server status

clean: ## Remove all local state (.local/); keeps .venv
	rm -rf .local
