# Rekam — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[test,bench]'
	touch $@ $(STAMP)

system-deps:
	./scripts/install-system-deps

## run: set up (venv, data directory with demo data) and serve HTTPS on 127.0.0.1:8443
run: $(STAMP)
	$(BIN)/rekam init
	$(BIN)/rekam demo load --if-empty
	$(BIN)/rekam serve

## test: set up everything the tests need and run the whole suite (in a private network namespace)
test: $(TEST_STAMP) system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	./scripts/run-tests $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

bench: $(TEST_STAMP) system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
