# octomon's front door. `make help` lists the targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.run-installed
# setuptools prints a boxed "Editable installation … be careful" warning on every editable
# install; it is meant for package authors, not for someone trying the demo.
QUIET_BUILD := PYTHONWARNINGS=ignore::UserWarning

.DEFAULT_GOAL := help
.PHONY: help install venv flux-checker setup demo run test test-fast coverage lint docs format bench test-slack test-influx verify-config clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(QUIET_BUILD) $(BIN)/pip install -q -e .
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(QUIET_BUILD) $(BIN)/pip install -q -e '.[dev,docs]'
	@touch $(STAMP) $(RUN_STAMP)

install: ## put `octomon` on your PATH (pipx, else uv): runs in any new shell
	@if command -v pipx >/dev/null 2>&1; then \
	  pipx install --force . && pipx ensurepath; \
	elif $(PY) -m pipx --version >/dev/null 2>&1; then \
	  $(PY) -m pipx install --force . && $(PY) -m pipx ensurepath; \
	elif command -v uv >/dev/null 2>&1; then \
	  uv tool install --force . && uv tool update-shell; \
	else \
	  echo "make install needs pipx or uv: 'apt install pipx' (or 'python3 -m pip install --user pipx'), then run it again" >&2; exit 1; \
	fi
	@echo "octomon installed: open a new terminal (or log in again) and run 'octomon --help'"

venv: $(STAMP) ## create .venv and install octomon with its dev tools (for development)

flux-checker: ## install InfluxData's Flux checker (npm) so the tests check every shipped Flux query
	npm install --silent --no-save --no-audit --no-fund --prefix .flux @influxdata/flux-lsp-node@0.8.40

setup: $(RUN_STAMP) ## venv + the configuration wizard + the online checks
	$(BIN)/octomon configure
	$(BIN)/octomon verify-config --online

demo: $(RUN_STAMP) ## run against the simulated Home Mini (no account needed; Ctrl-C to stop)
	$(BIN)/octomon run --demo

run: $(RUN_STAMP) ## run the monitor with ./.env
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

docs: $(STAMP) ## build the documentation site into site/ (mkdocs --strict: no broken link)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

format: $(STAMP) ## apply ruff's formatting and fixes
	$(BIN)/ruff format octomon tests bench
	$(BIN)/ruff check --fix octomon tests bench

bench: $(STAMP) ## the performance benchmarks (ratios against baselines)
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/sync.py

test-slack: $(RUN_STAMP) ## send a test message to SLACK_WEBHOOK_URL
	$(BIN)/octomon test-slack

test-influx: $(RUN_STAMP) ## check the InfluxDB connection
	$(BIN)/octomon test-influx

verify-config: $(RUN_STAMP) ## validate .env and show each setting's source
	$(BIN)/octomon verify-config

clean: ## remove the venv and caches
	rm -rf $(VENV) site .flux .pytest_cache .mypy_cache .ruff_cache .hypothesis
