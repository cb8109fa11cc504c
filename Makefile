# octomon's front door. `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv flux-checker setup demo run test test-fast coverage lint format bench test-slack test-influx verify-config clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install octomon with its dev tools

flux-checker: ## install InfluxData's Flux checker (npm) so the tests check every shipped Flux query
	npm install --silent --no-save --no-audit --no-fund --prefix .flux @influxdata/flux-lsp-node@0.8.40

setup: $(STAMP) ## venv + the configuration wizard + the online checks
	$(BIN)/octomon configure
	$(BIN)/octomon verify-config --online

demo: $(STAMP) ## run against the simulated Home Mini (no account needed; Ctrl-C to stop)
	$(BIN)/octomon run --demo

run: $(STAMP) ## run the monitor with ./.env
	$(BIN)/octomon run

test: $(STAMP) ## the whole test suite (real VictoriaMetrics where installed)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP) ## unit and CLI tests only
	$(BIN)/python -m pytest -q -m "not integration and not slow"

coverage: $(STAMP) ## the suite with a coverage report
	$(BIN)/python -m pytest -q --cov=octomon --cov-report=term-missing

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check octomon tests bench
	$(BIN)/ruff format --check octomon tests bench
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format octomon tests bench
	$(BIN)/ruff check --fix octomon tests bench

bench: $(STAMP) ## the performance benchmarks of SPEC §7 (ratios against baselines)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sync.py

test-slack: $(STAMP) ## send a test message to SLACK_WEBHOOK_URL
	$(BIN)/octomon test-slack

test-influx: $(STAMP) ## check the InfluxDB connection
	$(BIN)/octomon test-influx

verify-config: $(STAMP) ## validate .env and show each setting's source
	$(BIN)/octomon verify-config

clean: ## remove the venv and caches
	rm -rf $(VENV) .flux .pytest_cache .mypy_cache .ruff_cache .hypothesis
