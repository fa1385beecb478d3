# Loved CRM — two commands on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the API on the embedded default (SQLite under ./var), demo organization seeded.
run: install
	$(VENV)/bin/crm migrate
	$(VENV)/bin/crm seed-demo
	$(VENV)/bin/crm serve --host 127.0.0.1 --port 8000

## Lint, format check, types, layering, then the whole suite (SQLite and PostgreSQL).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy domain application projections interfaces
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest

## Benchmarks against PostgreSQL (127.0.0.1:5432), ratios to a raw baseline measured in the same run.
bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
