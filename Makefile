# Continuum: `make run` starts the local platform, `make test` runs the tests.
# Both create .venv and install the pinned lock (requirements.txt) when it is missing or stale.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed

.PHONY: help install run test lint bench lock up-prod clean

help:
	@echo "make run      set everything up and run the local platform (Ctrl-C stops it)"
	@echo "make test     set everything up and run lint and the test suite"
	@echo "make bench    run the benchmarks (writes benchmarks/RESULTS.md)"
	@echo "make up-prod  run the production topology (Celery, Postgres, Redis) without Docker"
	@echo "make lock     re-resolve requirements.in into requirements.txt"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { \
	  echo "continuum: Python 3.11 is required, found '$(PYTHON)' ($$($(PYTHON) --version 2>&1))."; \
	  echo "continuum: install Python 3.11 or run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(STAMP)

run: install
	$(BIN)/continuum platform run

# Without PYTEST_ARGS the suite runs as two pytest processes side by side: tests/integration
# (real platforms and servers: mostly waiting on schedulers and sockets) and everything else
# (mostly CPU). On 2 cores that takes about half an hour less than one process. The
# integration log is printed whole when both are done; either failing fails the target.
INTEGRATION_LOG := .pytest-integration.log

test: install
	$(BIN)/ruff check .
ifeq ($(strip $(PYTEST_ARGS)),)
	@echo "continuum: tests/integration runs beside the rest; its log ($(INTEGRATION_LOG)) is printed at the end"
	@$(BIN)/pytest -p no:cacheprovider tests/integration > $(INTEGRATION_LOG) 2>&1 & integration=$$!; \
	  $(BIN)/pytest --ignore=tests/integration; rest=$$?; \
	  wait $$integration; integration_status=$$?; \
	  echo "continuum: the rest exit $$rest, tests/integration exit $$integration_status; its log follows"; \
	  cat $(INTEGRATION_LOG); \
	  test $$rest -eq 0 -a $$integration_status -eq 0
else
	$(BIN)/pytest $(PYTEST_ARGS)
endif

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks.run

up-prod: install
	$(BIN)/continuum platform run --production

lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
